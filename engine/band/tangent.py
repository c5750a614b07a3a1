"""Local tangents of the band at the interior pivots: the strategies of NEB.

Each takes pivots (N, D) and their losses (N,) and returns unit tangents
(N-2, D) for pivots 1 .. N-2. A step that has the band's ``Segments`` already
(the springs and the re-spacing read them too) passes them, so that the
segment vectors and their lengths are computed once; the result is the same
bit for bit.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from engine.band.geometry import Segments
from engine.band.choices import TANGENT_NAMES

TangentFn = Callable[[Tensor, Tensor, Optional[Segments]], Tensor]


def _unit(v: Tensor) -> Tensor:
    return v / torch.linalg.vector_norm(v, dim=1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)


def paper_tangent(pivots: Tensor, losses: Tensor, segments: Segments | None = None) -> Tensor:
    """The paper's text: point to the neighbour with the higher loss."""
    units = (segments or Segments(pivots)).units  # (N-1, D)
    forward, backward = units[1:], units[:-1]  # tau+, tau-  (N-2, D)
    higher_next = (losses[2:] > losses[:-2]).unsqueeze(1)
    return torch.where(higher_next, forward, backward)


def _mixed(forward: Tensor, backward: Tensor, losses: Tensor, lower_gets_more: bool) -> Tensor:
    """Henkelman & Jonsson's case analysis; at an extremum the two segments are
    mixed with weights dVmax / dVmin (swapped when ``lower_gets_more``)."""
    v_prev, v_here, v_next = losses[:-2], losses[1:-1], losses[2:]
    rising = (v_next > v_here) & (v_here > v_prev)
    falling = (v_next < v_here) & (v_here < v_prev)
    d_next, d_prev = (v_next - v_here).abs(), (v_prev - v_here).abs()
    d_max, d_min = torch.maximum(d_next, d_prev), torch.minimum(d_next, d_prev)
    next_is_higher = v_next > v_prev
    if lower_gets_more:
        w_forward = torch.where(next_is_higher, d_min, d_max)
    else:
        w_forward = torch.where(next_is_higher, d_max, d_min)
    w_backward = d_max + d_min - w_forward
    flat = (d_max == 0).unsqueeze(1)  # no energy difference: plain bisector
    mixed = torch.where(
        flat,
        forward + backward,
        w_forward.unsqueeze(1).to(forward.dtype) * forward + w_backward.unsqueeze(1).to(forward.dtype) * backward,
    )
    tangent = torch.where(rising.unsqueeze(1), forward, torch.where(falling.unsqueeze(1), backward, mixed))
    return _unit(tangent)


def improved_tangent(pivots: Tensor, losses: Tensor, segments: Segments | None = None) -> Tensor:
    """Henkelman & Jonsson (2000): the segment towards the higher neighbour where the
    loss is monotone; at a local extremum the segments weighted by the energy
    differences, the larger weight towards the higher neighbour. Raw segment vectors."""
    vectors = (segments or Segments(pivots)).vectors  # (N-1, D)
    forward, backward = vectors[1:], vectors[:-1]
    return _mixed(forward, backward, losses, lower_gets_more=False)


def reference_tangent(pivots: Tensor, losses: Tensor, segments: Segments | None = None) -> Tensor:
    """The authors' public code: segment vectors normalised first, and at a local
    extremum the segment towards the LOWER neighbour gets the larger weight.

    Where a pivot's loss equals a neighbour's, that code's strict comparisons
    find no extremum and take one segment: towards the previous pivot if its
    loss is higher than the next one's, else towards the next. The mixed case
    analysis would weigh the segments there ([1, 1, 2] -> backward, [2, 1, 1] ->
    forward, [1, 1, 1] -> the bisector); this follows the code instead
    ([1, 1, 2], [1, 2, 2], [1, 1, 1] -> forward; [2, 1, 1], [2, 2, 1] -> backward)."""
    units = (segments or Segments(pivots)).units  # (N-1, D)
    forward, backward = units[1:], units[:-1]
    tangent = _mixed(forward, backward, losses, lower_gets_more=True)
    v_prev, v_here, v_next = losses[:-2], losses[1:-1], losses[2:]
    monotone = ((v_next > v_here) & (v_here > v_prev)) | ((v_next < v_here) & (v_here < v_prev))
    extremum = ((v_prev < v_here) & (v_here > v_next)) | ((v_prev > v_here) & (v_here < v_next))
    tie = (~monotone & ~extremum).unsqueeze(1)  # a neighbour's loss equals this pivot's
    segment = torch.where((v_prev > v_next).unsqueeze(1), backward, forward)
    return torch.where(tie, segment, tangent)


TANGENTS: dict[str, TangentFn] = dict(
    zip(TANGENT_NAMES, (paper_tangent, improved_tangent, reference_tangent), strict=True)
)

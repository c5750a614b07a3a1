"""The band: a chain of pivots (N, D) with fixed end points, seen as a
piecewise-linear path. Arc length, re-spacing, interpolation, dense points."""

from __future__ import annotations

import bisect
import itertools
import math

import torch
from torch import Tensor


def linear_path(start: Tensor, end: Tensor, count: int) -> Tensor:
    """``count`` points equally spaced on the segment start -> end, ends included: (count, D)."""
    if count < 2:
        raise ValueError(f"a path needs at least 2 points, got {count}")
    alphas = torch.linspace(0.0, 1.0, count, dtype=start.dtype, device=start.device)
    path = start.unsqueeze(0) + alphas.unsqueeze(1) * (end - start).unsqueeze(0)
    path[0], path[-1] = start, end  # exact end points, no rounding
    return path


def segment_lengths(pivots: Tensor) -> Tensor:
    """Euclidean length of each segment between neighbouring pivots: (N-1,)."""
    return torch.linalg.vector_norm(pivots[1:] - pivots[:-1], dim=1)


def arc_fractions(pivots: Tensor) -> Tensor:
    """Each pivot's position along the path as a fraction of its total length: (N,), 0 .. 1.

    A path of zero length (all pivots equal) gets equal fractions."""
    lengths = segment_lengths(pivots).to(torch.float64)
    cumulative = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])  # (N,)
    total = cumulative[-1]  # the same sum as the cumulative one: fractions stay <= 1 and ordered
    if total <= 0:
        return torch.linspace(0.0, 1.0, pivots.shape[0], dtype=torch.float64, device=pivots.device)
    fractions = cumulative / total
    fractions[-1] = 1.0
    return fractions


def points_at(pivots: Tensor, fractions: Tensor) -> Tensor:
    """Points at the given arc-length fractions (0 .. 1) along the piecewise-linear path: (M, D)."""
    fractions = fractions.to(device=pivots.device, dtype=torch.float64).clamp(0.0, 1.0)
    lengths = segment_lengths(pivots).to(torch.float64)  # (N-1,)
    cumulative = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])  # (N,)
    targets = fractions * cumulative[-1]  # (M,)
    # segment k holds targets in [cumulative[k], cumulative[k+1])
    segment = torch.searchsorted(cumulative, targets, right=True) - 1
    segment = segment.clamp(0, pivots.shape[0] - 2)
    alpha = (targets - cumulative[segment]) / lengths[segment].clamp_min(torch.finfo(torch.float64).tiny)
    alpha = alpha.clamp(0.0, 1.0).to(pivots.dtype).unsqueeze(1)  # (M, 1)
    return pivots[segment] + alpha * (pivots[segment + 1] - pivots[segment])


def respace(pivots: Tensor, fractions: Tensor | None = None) -> Tensor:
    """Move the pivots along the path to the given arc-length fractions (N,), equal
    spacing when ``fractions`` is None (the string method). End points are kept exactly."""
    count = pivots.shape[0]
    if fractions is None:
        fractions = torch.linspace(0.0, 1.0, count, dtype=torch.float64)
    if fractions.shape[0] != count:
        raise ValueError(f"need one fraction per pivot ({count}), got {fractions.shape[0]}")
    moved = points_at(pivots, fractions)
    moved[0], moved[-1] = pivots[0], pivots[-1]
    return moved


def dense_alphas(between: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Positions within a segment of the ``between`` evaluation points: (between,), in (0, 1)."""
    return torch.arange(1, between + 1, dtype=dtype) / (between + 1)


def dense_points(pivots: Tensor, between: int) -> Tensor:
    """The pivots with ``between`` equally spaced points inserted in every segment:
    ((N-1) * (between + 1) + 1, D). Row (between + 1) * i is pivot i."""
    starts = pivots[:-1].unsqueeze(1)  # (N-1, 1, D)
    steps = (pivots[1:] - pivots[:-1]).unsqueeze(1)  # (N-1, 1, D)
    alphas = torch.arange(0, between + 1, dtype=pivots.dtype, device=pivots.device) / (between + 1)
    inner = starts + alphas.view(1, -1, 1) * steps  # (N-1, between+1, D)
    return torch.cat([inner.reshape(-1, pivots.shape[1]), pivots[-1:]], dim=0)


def dense_fractions(pivots: Tensor, between: int) -> Tensor:
    """Arc-length fractions of the rows of ``dense_points(pivots, between)``."""
    fractions = arc_fractions(pivots)  # (N,)
    widths = fractions[1:] - fractions[:-1]  # (N-1,)
    alphas = torch.arange(0, between + 1, dtype=torch.float64, device=pivots.device) / (between + 1)
    inner = fractions[:-1].unsqueeze(1) + alphas.unsqueeze(0) * widths.unsqueeze(1)
    return torch.cat([inner.reshape(-1), fractions[-1:]])


class Segments:
    """The band's segments p_{i+1} - p_i (N-1, D) and their lengths (N-1,), computed
    once per band and shared by the tangents, the springs and the re-spacing."""

    def __init__(self, pivots: Tensor):
        self.vectors = pivots[1:] - pivots[:-1]  # (N-1, D)
        self.lengths = torch.linalg.vector_norm(self.vectors, dim=1)  # (N-1,), as .norm(dim=1) without its Python layers
        self._units: Tensor | None = None

    @property
    def units(self) -> Tensor:
        """Unit segment vectors (N-1, D); a segment of zero length stays zero."""
        if self._units is None:
            tiny = torch.finfo(self.vectors.dtype).tiny
            self._units = self.vectors / self.lengths.unsqueeze(1).clamp_min(tiny)
        return self._units


def equal_fraction_table(count: int, device: torch.device | str | None = None) -> Tensor:
    """Row m holds ``linspace(0, 1, m)`` (the equal spacing of a path of m pivots),
    padded with zeros: (count + 1, count), float64. The re-spacing of a band split at a
    climbing image reads each part's equal fractions from it without leaving the device."""
    table = torch.zeros(count + 1, count, dtype=torch.float64)
    for m in range(1, count + 1):
        table[m, :m] = torch.linspace(0.0, 1.0, m, dtype=torch.float64)
    return table.to(device)


def respaced_interior(
    pivots: Tensor,  # (N, D)
    segments: Segments,  # of these pivots
    fractions: Tensor | None,  # (N,) target fractions, float64 on the pivots' device; None: equal spacing
    table: Tensor,  # equal_fraction_table(N) on the pivots' device
    split: Tensor | None = None,  # () index of the pivot the band is split at, on the device; None: not split
    on_host: bool | None = None,
    out: Tensor | None = None,  # (N-2, D) where to write the result, e.g. pivots[1:-1] itself
) -> Tensor:
    """The interior pivots (N-2, D) moved to their target spacing along the path, the
    two parts either side of pivot ``split`` (a climbing image) each re-spaced on its
    own and ``split`` kept where it is: what ``respace`` gives for each part, bit for
    bit on the CPU, in a few operations on the whole band with no read-back to the host.

    Part one is pivots 0 .. split, part two split .. N-1. A part's arc length is the
    cumulative sum of its own segments only (the other part's are masked to zero, which
    leaves every partial sum as it is), and a part of m pivots takes the equal fractions
    ``linspace(0, 1, m)`` or its share of ``fractions``.

    ``on_host`` (default: for a band on the CPU) works out each row's segment and
    position on it in Python floats instead, the same double-precision operations
    in the same order (the same bits), so that the band itself sees a handful of
    tensor operations; on the CPU reading a few dozen numbers back costs less than
    the small operations it saves."""
    count = pivots.shape[0]
    device = pivots.device
    if on_host if on_host is not None else device.type == "cpu":
        plan = _respace_plan(segments.lengths, fractions, table, split, count)
        if plan is not None:
            segment, alpha, kept = plan
            segment_t = torch.tensor(segment, device=device)
            alpha_t = torch.tensor(alpha, dtype=pivots.dtype).unsqueeze(1)  # (N-2, 1), rounded as .to() rounds
            kept_row = None if kept is None else pivots[kept].clone()  # ``out`` may be the pivots' own rows
            along = segments.vectors.index_select(0, segment_t).mul_(alpha_t)  # alpha * vector, as below
            moved = torch.add(pivots.index_select(0, segment_t), along, out=out)
            if kept_row is not None:
                moved[kept - 1] = kept_row
            return moved
    lengths = segments.lengths.to(torch.float64)  # (N-1,)
    if split is None:  # one part, as respace(pivots, fractions)
        cumulative = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])  # (N,)
        targets = (table[count] if fractions is None else fractions)[1:-1]
        targets = targets.clamp(0.0, 1.0) * cumulative[-1]  # (N-2,)
        # the last k with cumulative[k] <= target: searchsorted(right=True) - 1, in two small operations
        segment = ((cumulative.unsqueeze(0) <= targets.unsqueeze(1)).sum(dim=1) - 1).clamp(0, count - 2)
        alpha = (targets - cumulative[segment]) / lengths[segment].clamp_min(torch.finfo(torch.float64).tiny)
        alpha = alpha.clamp(0.0, 1.0).to(pivots.dtype).unsqueeze(1)  # (N-2, 1)
        moved = pivots.index_select(0, segment) + alpha * segments.vectors.index_select(0, segment)
        return moved if out is None else out.copy_(moved)
    rows = torch.arange(1, count - 1, device=device)  # (N-2,) the interior pivots
    first = rows < split  # (N-2,) in part one
    in_first = torch.arange(count - 1, device=device) < split  # (N-1,) segment in part one
    zero = lengths.new_zeros(())
    start = lengths.new_zeros(1)
    cumulative = torch.stack(
        [
            torch.cat([start, torch.where(in_first, lengths, zero).cumsum(0)]),
            torch.cat([start, torch.where(in_first, zero, lengths).cumsum(0)]),
        ]
    )  # (2, N): each part's arc length from its own first pivot
    part = torch.where(first, 0, 1)  # (N-2,)
    row_cumulative = cumulative[part]  # (N-2, N)
    begin = torch.where(first, 0, split)  # (N-2,) each row's part: pivots begin .. end
    end = torch.where(first, split, count - 1)
    if fractions is None:
        # linspace(0, 1, end - begin + 1)[row - begin]
        targets = table[end - begin + 1, rows - begin]
    else:
        targets = (fractions[rows] - fractions[begin]) / (fractions[end] - fractions[begin])
    totals = row_cumulative.gather(1, end.unsqueeze(1)).squeeze(1)  # (N-2,)
    targets = targets.clamp(0.0, 1.0) * totals
    # the part's segment k holds targets in [cumulative[k], cumulative[k+1])
    segment = (row_cumulative <= targets.unsqueeze(1)).sum(dim=1) - 1  # searchsorted(right=True) - 1
    segment = torch.minimum(torch.maximum(segment, begin), end - 1)
    below = row_cumulative.gather(1, segment.unsqueeze(1)).squeeze(1)
    alpha = (targets - below) / lengths[segment].clamp_min(torch.finfo(torch.float64).tiny)
    alpha = alpha.clamp(0.0, 1.0).to(pivots.dtype).unsqueeze(1)  # (N-2, 1)
    moved = pivots.index_select(0, segment) + alpha * segments.vectors.index_select(0, segment)  # (N-2, D)
    return torch.where((rows == split).unsqueeze(1), pivots[1:-1], moved, out=out)


_TINY64 = torch.finfo(torch.float64).tiny


def _respace_plan(
    lengths: Tensor, fractions: Tensor | None, table: Tensor, split: Tensor | None, count: int
) -> tuple[list[int], list[float], int | None] | None:
    """``respaced_interior``'s arithmetic on the host: for each interior pivot the
    segment it moves to and its position on it (float64, before the cast to the
    pivots' dtype), and the split pivot that keeps its place (None: none). The
    same IEEE double operations as the tensor form: sequential sums as cumsum,
    bisect_right on the sorted partial sums as counting those <= the target.
    None where a length is not finite (a diverged band: the tensor form decides)."""
    lengths_ = lengths.tolist()  # float32 -> Python float is exact
    if not all(map(math.isfinite, lengths_)):
        return None
    where = 0 if split is None else max(int(split), 0)  # a split at pivot 0 leaves one part, 0 .. N-1
    targets_of = fractions.tolist() if fractions is not None else None
    # each part's arc length from its own first pivot: part one pivots 0 .. where, part two where .. N-1
    # (sequential sums, as cumsum on the CPU; adding the other part's zeros changes no sum)
    first_cumulative = list(itertools.accumulate(lengths_[:where] + [0.0] * (count - 1 - where), initial=0.0))
    second_cumulative = list(itertools.accumulate([0.0] * where + lengths_[where:], initial=0.0))
    equal_rows: dict[int, list[float]] = {}  # m -> linspace(0, 1, m), read from the table once per call
    segments: list[int] = []
    alphas: list[float] = []
    for row in range(1, count - 1):
        if row < where:
            cumulative, begin, end = first_cumulative, 0, where
        else:
            cumulative, begin, end = second_cumulative, where, count - 1
        if targets_of is None:
            m = count if split is None else end - begin + 1
            equal = equal_rows.get(m)
            if equal is None:
                equal = equal_rows[m] = table[m].tolist()
            target = equal[row if split is None else row - begin]
        else:
            if split is None:
                target = targets_of[row]
            else:
                target = (targets_of[row] - targets_of[begin]) / (targets_of[end] - targets_of[begin])
            if not math.isfinite(target):
                return None
        # the same IEEE operations as clamp, searchsorted and the division of the tensor form
        target = (0.0 if target < 0.0 else 1.0 if target > 1.0 else target) * cumulative[end]
        segment = bisect.bisect_right(cumulative, target) - 1
        segment = begin if segment < begin else end - 1 if segment > end - 1 else segment
        length = lengths_[segment]
        alpha = (target - cumulative[segment]) / (length if length > _TINY64 else _TINY64)
        segments.append(segment)
        alphas.append(0.0 if alpha < 0.0 else 1.0 if alpha > 1.0 else alpha)
    kept = where if 1 <= where <= count - 2 else None
    return segments, alphas, kept

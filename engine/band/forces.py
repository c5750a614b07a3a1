"""Nudged elastic band forces (Henkelman & Jonsson 2000) on the interior pivots.

    F_i   = F_i^L + F_i^S
    F_i^L = -grad L(p_i) + (grad L(p_i) . tau_i) tau_i        loss force, perpendicular part
    F_i^S = k (|p_{i+1} - p_i| - |p_i - p_{i-1}|) tau_i        spring force, parallel part

With k = inf there is no spring force; the band is re-spaced after every step
instead (the string method the paper's experiments use). The climbing image
(the highest interior pivot) feels the full loss force with its parallel part
inverted, -grad + 2 (grad . tau) tau, and no spring: it climbs to the saddle.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from engine.band.geometry import segment_lengths


def project_perpendicular(grads: Tensor, tangents: Tensor) -> Tensor:
    """The part of each gradient perpendicular to its tangent: (N-2, D)."""
    parallel = (grads * tangents).sum(dim=1, keepdim=True)
    return grads - parallel * tangents


def spring_force(pivots: Tensor, tangents: Tensor, k: float) -> Tensor:
    """F^S: springs of stiffness k acting along the tangent only: (N-2, D)."""
    return spring_force_from_lengths(segment_lengths(pivots), tangents, k)


def neb_forces(
    pivots: Tensor,  # (N, D)
    grads: Tensor,  # (N, D), gradients of the loss at every pivot
    tangents: Tensor,  # (N-2, D)
    spring: float = math.inf,
    climber: int | None = None,  # index (into pivots) of the climbing image
) -> Tensor:
    """Forces on the interior pivots: (N-2, D)."""
    count = pivots.shape[0]
    if climber is not None and not 1 <= climber <= count - 2:
        raise ValueError(
            f"the climbing image must be an interior pivot (1 .. {count - 2} of {count}), got {climber}: "
            "pass the index into pivots, not into the interior rows"
        )
    lengths = segment_lengths(pivots) if math.isfinite(spring) else None
    climbing = None if climber is None else torch.tensor(climber, device=pivots.device)
    return -descent_directions(grads[1:-1], tangents, spring, lengths, climbing)


def descent_directions(
    interior_grads: Tensor,  # (N-2, D)
    tangents: Tensor,  # (N-2, D)
    spring: float = math.inf,
    lengths: Tensor | None = None,  # (N-1,) segment lengths, needed for a finite spring
    climber: Tensor | None = None,  # () index (into pivots) of the climbing image, on the device
) -> Tensor:
    """The negative NEB forces on the interior pivots (N-2, D), what an optimiser takes
    as the gradient, in a few operations on the whole band: the climbing image is a
    tensor (its index is never read back to the host) and its parallel part is the
    row's projection doubled, g - 2 (g . tau) tau, with no spring. ``neb_forces`` bit for
    bit on the other rows; on the climbing image the same up to the order of the sum in
    its dot product."""
    parallel = (interior_grads * tangents).sum(dim=1, keepdim=True)  # (N-2, 1)
    climbing = None
    if climber is not None:
        rows = torch.arange(1, interior_grads.shape[0] + 1, device=interior_grads.device)
        climbing = (rows == climber).unsqueeze(1)  # (N-2, 1)
        parallel = torch.where(climbing, 2.0 * parallel, parallel)
    directions = interior_grads - parallel * tangents
    if math.isfinite(spring):
        assert lengths is not None, "a finite spring needs the segment lengths"
        stretch = (spring * (lengths[1:] - lengths[:-1])).unsqueeze(1)  # (N-2, 1)
        if climbing is not None:
            stretch = torch.where(climbing, 0.0, stretch)  # the climbing image feels no spring
        directions = directions - stretch * tangents
    return directions


def spring_force_from_lengths(lengths: Tensor, tangents: Tensor, k: float) -> Tensor:
    """``spring_force`` from the segment lengths (N-1,) the step has already."""
    return (k * (lengths[1:] - lengths[:-1])).unsqueeze(1) * tangents

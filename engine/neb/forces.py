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


def project_perpendicular(grads: Tensor, tangents: Tensor) -> Tensor:
    """The part of each gradient perpendicular to its tangent: (N-2, D)."""
    parallel = (grads * tangents).sum(dim=1, keepdim=True)
    return grads - parallel * tangents


def loss_force(grads: Tensor, tangents: Tensor) -> Tensor:
    """F^L: the negative gradient with its component along the path removed."""
    return -project_perpendicular(grads, tangents)


def spring_force(pivots: Tensor, tangents: Tensor, k: float) -> Tensor:
    """F^S: springs of stiffness k acting along the tangent only: (N-2, D)."""
    forward = (pivots[2:] - pivots[1:-1]).norm(dim=1)
    backward = (pivots[1:-1] - pivots[:-2]).norm(dim=1)
    return (k * (forward - backward)).unsqueeze(1) * tangents


def climbing_force(grad: Tensor, tangent: Tensor) -> Tensor:
    """The climbing image's force: uphill along the path, downhill across it: (D,)."""
    return -grad + 2.0 * torch.dot(grad, tangent) * tangent


def neb_forces(
    pivots: Tensor,  # (N, D)
    grads: Tensor,  # (N, D), gradients of the loss at every pivot
    tangents: Tensor,  # (N-2, D)
    spring: float = math.inf,
    climber: int | None = None,  # index (into pivots) of the climbing image
) -> Tensor:
    """Forces on the interior pivots: (N-2, D)."""
    interior_grads = grads[1:-1]
    forces = loss_force(interior_grads, tangents)
    if math.isfinite(spring):
        forces = forces + spring_force(pivots, tangents, spring)
    if climber is not None:
        count = pivots.shape[0]
        if not 1 <= climber <= count - 2:
            raise ValueError(
                f"the climbing image must be an interior pivot (1 .. {count - 2} of {count}), got {climber}: "
                "pass the index into pivots, not into the interior rows"
            )
        i = climber - 1
        forces[i] = climbing_force(interior_grads[i], tangents[i])
    return forces

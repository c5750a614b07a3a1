"""Stationary points of the analytic surfaces, refined to machine precision for the
tests that compare against them (the surfaces' constants are given to a few digits)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.functional import hessian, jacobian

from engine.energy.base import CallableEnergy


def polish(energy: CallableEnergy, x: Tensor, iterations: int = 50) -> Tensor:
    """Newton's method on the gradient from ``x`` (D,): the stationary point nearest it,
    minimum or saddle alike, in float64."""
    point = x.detach().to(torch.float64).clone()

    def f(p: Tensor) -> Tensor:
        return energy.f(p.unsqueeze(0))[0]

    for _ in range(iterations):
        step = torch.linalg.solve(hessian(f, point), jacobian(f, point))
        point = point - step
        if step.norm() < 1e-14:
            break
    return point

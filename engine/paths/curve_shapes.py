"""The two curves of Garipov et al. (2018) between end points w1, w2 with a bend theta.

Both are  phi(t) = a(t) w1 + b(t) theta + c(t) w2,  t in [0, 1]:

- quadratic Bezier:    a = (1 - t)^2,  b = 2 t (1 - t),  c = t^2
- polygonal chain:     t <= 1/2:  a = 1 - 2t,  b = 2t,        c = 0
  (one bend at t=1/2)  t >= 1/2:  a = 0,       b = 2 (1 - t), c = 2t - 1

so d phi / d theta = b(t): the bend's gradient is the gradient at phi(t) times b(t).
"""

from __future__ import annotations

import torch
from torch import Tensor


def coefficients(kind: str, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(a, b, c), each shaped like ``t``, of the curve ``kind`` ("bezier" | "polychain")."""
    if kind == "bezier":
        return (1 - t) ** 2, 2 * t * (1 - t), t**2
    if kind == "polychain":
        first = t <= 0.5
        zero = torch.zeros_like(t)
        a = torch.where(first, 1 - 2 * t, zero)
        b = torch.where(first, 2 * t, 2 * (1 - t))
        c = torch.where(first, zero, 2 * t - 1)
        return a, b, c
    raise ValueError(f"unknown curve {kind!r}: use 'bezier' or 'polychain'")


def curve_points(kind: str, start: Tensor, bend: Tensor, end: Tensor, t: Tensor) -> Tensor:
    """phi(t) for every t (M,): (M, D). t = 0 and t = 1 give the end points exactly."""
    a, b, c = (x.to(start.dtype).unsqueeze(1) for x in coefficients(kind, t))  # (M, 1) each
    return a * start.unsqueeze(0) + b * bend.unsqueeze(0) + c * end.unsqueeze(0)

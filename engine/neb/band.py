"""The band: a chain of pivots (N, D) with fixed end points, seen as a
piecewise-linear path. Arc length, re-spacing, interpolation, dense points."""

from __future__ import annotations

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
    return (pivots[1:] - pivots[:-1]).norm(dim=1)


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

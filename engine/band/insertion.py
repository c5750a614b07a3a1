"""AutoNEB's refinement: insert pivots where the loss along the band rises above
the linear interpolation between neighbouring pivots (Kolsbjerg et al. 2016).

The residual at a dense point a fraction ``alpha`` into segment i is

    r = L(dense) - [(1 - alpha) L(p_i) + alpha L(p_{i+1})]

and a segment is refined when its largest residual exceeds ``threshold`` times
the energy range of the path (max - min of the dense profile, the paper's text,
or of the pivot losses, the authors' code, unless those are all equal).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from engine.band.geometry import dense_alphas
from engine.band.choices import INSERTION_RULES, INSERTION_SCALES


def residuals(dense_losses: Tensor, between: int) -> Tensor:
    """Residuals of the inner dense points: (N-1, between).

    ``dense_losses`` are the losses at ``dense_points(pivots, between)``."""
    losses = dense_losses.to(torch.float64)
    rows = losses.shape[0]
    if rows < between + 2 or (rows - 1) % (between + 1) != 0:
        raise ValueError(
            f"{rows} dense losses do not fit a band with {between} points between pivots "
            f"((N-1) * {between + 1} + 1 for N >= 2 pivots): evaluate dense_points(pivots, {between})"
        )
    pivot_losses = losses[:: between + 1]  # (N,)
    inner = torch.stack(
        [losses[i * (between + 1) + 1 : (i + 1) * (between + 1)] for i in range(pivot_losses.shape[0] - 1)]
    )  # (N-1, between)
    alphas = dense_alphas(between).to(losses.device).unsqueeze(0)  # (1, between)
    linear = (1 - alphas) * pivot_losses[:-1].unsqueeze(1) + alphas * pivot_losses[1:].unsqueeze(1)
    return inner - linear


@dataclass(frozen=True)
class Insertion:
    segment: int  # a new pivot goes between pivots segment and segment + 1
    alpha: float  # where in that segment
    score: float  # residual / energy range


def choose_insertions(
    dense_losses: Tensor,
    between: int,
    threshold: float,
    scale: str = "dense",  # "dense" | "pivots": which energy range normalises the residual
    rule: str = "threshold",  # "threshold": every segment over it | "highest": the best `limit`
    limit: int | None = None,  # at most this many
) -> list[Insertion]:
    """Segments to refine, best first, each at its dense point of largest residual."""
    if scale not in INSERTION_SCALES:
        raise ValueError(f"unknown insertion scale {scale!r}: use one of {', '.join(INSERTION_SCALES)}")
    if rule not in INSERTION_RULES:
        raise ValueError(f"unknown insertion rule {rule!r}: use one of {', '.join(INSERTION_RULES)}")
    losses = dense_losses.to(torch.float64)
    if losses.shape[0] < between + 2:
        return []
    pivot_losses = losses[:: between + 1]  # (N,)
    dense_range = float(losses.max() - losses.min())
    pivot_range = float(pivot_losses.max() - pivot_losses.min())
    # equal pivot losses (ends related by a symmetry) would hide any barrier: use the dense range
    energy_range = pivot_range if scale == "pivots" and pivot_range > 0 else dense_range
    if not energy_range > 0:
        return []
    scores = residuals(losses, between) / energy_range  # (N-1, between)
    best_score, best_index = scores.max(dim=1)
    alphas = dense_alphas(between)
    candidates = [
        Insertion(segment=i, alpha=float(alphas[int(best_index[i])]), score=float(best_score[i]))
        for i in range(scores.shape[0])
        if best_score[i] > threshold
    ]
    candidates.sort(key=lambda c: (-c.score, c.segment))
    if rule == "highest" and limit is None:
        limit = 1
    return candidates if limit is None else candidates[:limit]


def insert_pivots(
    pivots: Tensor,  # (N, D)
    fractions: Tensor,  # (N,) target arc-length fractions of the pivots
    insertions: list[Insertion],
) -> tuple[Tensor, Tensor, list[int]]:
    """New pivots on the band at the chosen points; each new target fraction splits
    its segment's fraction at alpha. Returns (pivots (N+K, D), fractions (N+K,),
    indices of the new pivots in the new band)."""
    by_segment = {c.segment: c.alpha for c in insertions}
    rows, new_fractions, new_indices = [], [], []
    for i in range(pivots.shape[0]):
        rows.append(pivots[i])
        new_fractions.append(float(fractions[i]))
        if i in by_segment:
            alpha = by_segment[i]
            rows.append(pivots[i] + alpha * (pivots[i + 1] - pivots[i]))
            new_fractions.append(float(fractions[i] + alpha * (fractions[i + 1] - fractions[i])))
            new_indices.append(len(rows) - 1)
    return torch.stack(rows), torch.tensor(new_fractions, dtype=torch.float64), new_indices

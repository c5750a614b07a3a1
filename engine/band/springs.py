"""How the band keeps its pivots apart: the two strategies of NEB's parallel part.

- ``ElasticSprings`` (a finite spring constant k): the nudged elastic band of
  Henkelman & Jonsson, springs along the tangent pull the pivots apart, the band
  is never re-spaced;
- ``StringRespacing`` (k = inf): the string method the paper's experiments use,
  no spring force, the band moved back to its target spacing along the path after
  every optimiser step ("after", nebtui's default) or before the next step's
  gradients ("before", as the authors' public code does).

A band step asks its strategy for the descent directions and lets it re-space
the band where it wants to; ``band_strategy`` picks one from the band options.
"""

from __future__ import annotations

import math
from typing import Callable, Union

from torch import Tensor

from engine.band.choices import RESPACE_TIMES
from engine.band.forces import descent_directions
from engine.band.geometry import Segments

# Re-spaces the band's interior in place, each side of the climbing image (if any) apart.
Respace = Callable[[Union[Tensor, int, None]], None]


class ElasticSprings:
    """Springs of stiffness ``k`` along the tangent; the band is never re-spaced."""

    def __init__(self, k: float):
        if not math.isfinite(k):
            raise ValueError(f"a spring constant must be finite, got {k}: an infinite one is the string method")
        self.k = k

    def before_gradients(self, respace: Respace, last_climber: Tensor | int | None) -> None:
        """Nothing before the gradients: springs act through the forces."""

    def directions(self, interior_grads: Tensor, tangents: Tensor, segments: Segments,
                   climber: Tensor | None) -> Tensor:
        """The negative NEB forces with springs: (N-2, D)."""
        return descent_directions(interior_grads, tangents, self.k, segments.lengths, climber)

    def after_update(self, respace: Respace, climber: Tensor | int | None) -> None:
        """Nothing after the optimiser step: the springs hold the spacing."""


class StringRespacing:
    """No springs; the band re-spaced ``when`` ("after" the optimiser step or "before"
    the next step's gradients, then about the previous step's climbing image)."""

    def __init__(self, when: str = "after"):
        if when not in RESPACE_TIMES:
            raise ValueError(f"unknown re-spacing time {when!r}: use one of {', '.join(RESPACE_TIMES)}")
        self.when = when

    def before_gradients(self, respace: Respace, last_climber: Tensor | int | None) -> None:
        if self.when == "before":
            respace(last_climber)

    def directions(self, interior_grads: Tensor, tangents: Tensor, segments: Segments,
                   climber: Tensor | None) -> Tensor:
        """The negative NEB forces without springs: (N-2, D)."""
        return descent_directions(interior_grads, tangents, math.inf, segments.lengths, climber)

    def after_update(self, respace: Respace, climber: Tensor | int | None) -> None:
        if self.when == "after":
            respace(climber)


BandStrategy = Union[ElasticSprings, StringRespacing]


def band_strategy(spring: float, respace: str = "after") -> BandStrategy:
    """The strategy the band options name: a finite ``spring`` gives elastic springs,
    ``inf`` the string method re-spaced ``respace``."""
    return StringRespacing(respace) if math.isinf(spring) else ElasticSprings(spring)

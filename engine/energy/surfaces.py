"""Analytic 2-D loss surfaces with known stationary points: for tests, demos and
validating the method where the true minimum energy path is known."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from engine.energy.base import CallableEnergy


@dataclass(frozen=True)
class StationaryPoint:
    position: tuple[float, float]
    energy: float


class Surface(CallableEnergy):
    """A 2-D surface: an energy plus its known minima and saddles and a plot window."""

    name = "surface"
    minima: tuple[StationaryPoint, ...] = ()
    saddles: tuple[StationaryPoint, ...] = ()
    window: tuple[tuple[float, float], tuple[float, float]] = ((-1.0, 1.0), (-1.0, 1.0))

    def __init__(self) -> None:
        super().__init__(self.potential, dim=2)

    def potential(self, x: Tensor) -> Tensor:  # (N, 2) -> (N,)
        raise NotImplementedError

    def potential_and_gradient(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 2) -> losses (N,), gradients (N, 2), in closed form (no autograd:
        a band on a 2-D surface takes thousands of tiny steps)."""
        raise NotImplementedError

    def __call__(
        self,
        pivots: Tensor,
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        self._check(pivots)
        self.work.step_forward += pivots.shape[0]
        self.work.step_backward += pivots.shape[0]
        with torch.no_grad():
            return self.potential_and_gradient(pivots)

    def minimum_positions(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """The known minima as an (M, 2) tensor, in the order of ``minima``."""
        return torch.tensor([m.position for m in self.minima], dtype=dtype)


class MuellerBrown(Surface):
    """Müller & Brown (1979): three minima, two saddles; the standard test of
    path-finding methods. The deepest two minima are joined through the third."""

    name = "muller-brown"
    A = (-200.0, -100.0, -170.0, 15.0)
    a = (-1.0, -1.0, -6.5, 0.7)
    b = (0.0, 0.0, 11.0, 0.6)
    c = (-10.0, -10.0, -6.5, 0.7)
    x0 = (1.0, 0.0, -0.5, -1.0)
    y0 = (0.0, 0.5, 1.5, 1.0)
    minima = (
        StationaryPoint((-0.55822, 1.44173), -146.6995),
        StationaryPoint((0.62350, 0.02804), -108.1667),
        StationaryPoint((-0.05001, 0.46669), -80.7678),
    )
    saddles = (
        StationaryPoint((-0.82200, 0.62431), -40.6648),
        StationaryPoint((0.21249, 0.29299), -72.2489),
    )
    window = ((-1.5, 1.2), (-0.3, 2.0))

    def __init__(self) -> None:
        super().__init__()
        self._constants: dict[tuple[torch.dtype, torch.device], tuple[Tensor, ...]] = {}

    def potential(self, x: Tensor) -> Tensor:  # (N, 2) -> (N,)
        px, py = x[:, 0], x[:, 1]
        total = torch.zeros_like(px)
        for A, a, b, c, x0, y0 in zip(self.A, self.a, self.b, self.c, self.x0, self.y0):
            dx, dy = px - x0, py - y0
            total = total + A * torch.exp(a * dx * dx + b * dx * dy + c * dy * dy)
        return total

    # The band's energy and gradient: the four Gaussian terms side by side, (N, 4), in a
    # dozen tensor operations instead of eighty (a 2-D band step is dominated by their
    # dispatch), summed over the terms in the formula's order, so the bits are those of
    # the term-by-term form. (``potential`` stays term by term: autograd through it, as
    # a CallableEnergy takes it, would sum the broadcast terms' gradients in another order.)
    def _terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, ...]]:
        key = (x.dtype, x.device)
        constants = self._constants.get(key)
        if constants is None:
            table = torch.tensor([self.A, self.a, self.b, self.c, self.x0, self.y0], dtype=x.dtype, device=x.device)
            constants = self._constants[key] = tuple(table)
        A, a, b, c, x0, y0 = constants
        dx, dy = x[:, :1] - x0, x[:, 1:] - y0
        return A * torch.exp(a * dx * dx + b * dx * dy + c * dy * dy), dx, dy, constants

    @staticmethod
    def _sum(columns: Tensor) -> Tensor:
        first, second, third, fourth = columns.unbind(1)
        return first + second + third + fourth

    def potential_and_gradient(self, x: Tensor) -> tuple[Tensor, Tensor]:
        term, dx, dy, (_, a, b, c, _, _) = self._terms(x)
        grad = torch.stack([self._sum(term * (2 * a * dx + b * dy)), self._sum(term * (b * dx + 2 * c * dy))], dim=1)
        return self._sum(term), grad


class Himmelblau(Surface):
    """Himmelblau's function: four minima at energy 0 joined by four saddles."""

    name = "himmelblau"
    minima = (
        StationaryPoint((3.0, 2.0), 0.0),
        StationaryPoint((-2.805118, 3.131312), 0.0),
        StationaryPoint((-3.779310, -3.283186), 0.0),
        StationaryPoint((3.584428, -1.848126), 0.0),
    )
    saddles = (
        StationaryPoint((0.086678, 2.884255), 67.719150),
        StationaryPoint((-3.073026, -0.081353), 104.015163),
        StationaryPoint((-0.127961, -1.953715), 178.337239),
        StationaryPoint((3.385154, 0.073852), 13.311926),
    )
    window = ((-5.0, 5.0), (-5.0, 5.0))

    def potential(self, x: Tensor) -> Tensor:  # (N, 2) -> (N,)
        px, py = x[:, 0], x[:, 1]
        return (px * px + py - 11.0) ** 2 + (px + py * py - 7.0) ** 2

    def potential_and_gradient(self, x: Tensor) -> tuple[Tensor, Tensor]:
        px, py = x[:, 0], x[:, 1]
        u = px * px + py - 11.0
        v = px + py * py - 7.0
        grad = torch.stack([4 * px * u + 2 * v, 2 * u + 4 * py * v], dim=1)
        return u * u + v * v, grad


SURFACES: dict[str, type[Surface]] = {s.name: s for s in (MuellerBrown, Himmelblau)}

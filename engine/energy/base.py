"""The one protocol AutoNEB needs: losses and gradients for a batch of pivots."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class Energy(Protocol):
    """A loss surface over flat parameter vectors.

    ``energy(pivots) -> (losses, grads)`` with ``pivots`` of shape (N, D),
    ``losses`` (N,) and ``grads`` (N, D): one row per pivot, rows independent.
    ``generator`` drives any randomness (each pivot's minibatch), so that a run
    can be replayed bit for bit; ``batch_size`` is the minibatch per pivot for
    stochastic energies and is ignored by exact ones.

    ``evaluate(points) -> losses`` is the deterministic loss used to judge a
    path (pivots, dense points, end points): no gradients, no random batches.
    """

    dim: int

    def __call__(
        self,
        pivots: Tensor,
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
    ) -> tuple[Tensor, Tensor]: ...

    def evaluate(self, points: Tensor) -> Tensor: ...


@dataclass
class Work:
    """What an energy has computed since it was built, counted as it computes it.

    ``units``: "samples" for a network, where a forward of a minibatch of B samples
    at one point is B forward samples (and its backward B backward samples);
    "points" for an analytic surface, where one point's loss is one forward and its
    gradient one backward. ``step_*``: the minibatch losses and gradients of steps
    (``energy(pivots)``); ``evaluation_forward``: the deterministic losses of
    ``evaluate`` (a network: every point on its whole evaluation set);
    ``recalibration_forward``: BatchNorm's statistics recomputed for each evaluated
    point, and ``recalibration_seconds`` the time that took.
    """

    units: str = "points"
    step_forward: int = 0
    step_backward: int = 0
    evaluation_forward: int = 0
    recalibration_forward: int = 0
    recalibration_seconds: float = 0.0

    def copy(self) -> "Work":
        return replace(self)

    def since(self, before: "Work") -> "Work":
        """The work done since ``before`` (an earlier ``copy()`` of this count)."""
        return Work(self.units, **{f.name: getattr(self, f.name) - getattr(before, f.name)
                                   for f in fields(self) if f.name != "units"})


def interior_gradients(
    energy: Any, pivots: Tensor, generator: torch.Generator | None = None, batch_size: int | None = None
) -> tuple[Tensor, Tensor]:
    """A band's step: the losses (N,) of every pivot and the gradients (N-2, D) of its
    interior only; the two fixed ends' losses need no gradient. An energy with its own
    ``interior_gradients`` computes the ends forward only, with the same numbers as
    ``energy(pivots)`` gives; any other is asked for all N gradients, of which the
    ends' are dropped."""
    own = getattr(energy, "interior_gradients", None)
    if own is not None:
        return own(pivots, generator=generator, batch_size=batch_size)
    losses, grads = energy(pivots, generator=generator, batch_size=batch_size)
    return losses, grads[1:-1]


class CallableEnergy:
    """Any function ``f(x: Tensor[N, D]) -> Tensor[N]``, differentiated by autograd.

    ``f`` must treat rows independently (row i of the result depends on row i
    of ``x`` only), as a loss surface evaluated at N points does.

    >>> energy = CallableEnergy(lambda x: (x ** 2).sum(dim=1), dim=2)
    >>> losses, grads = energy(torch.tensor([[1.0, 2.0]]))
    >>> losses.tolist(), grads.tolist()
    ([5.0], [[2.0, 4.0]])
    """

    def __init__(self, f: Callable[[Tensor], Tensor], dim: int):
        if dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim}")
        self.f = f
        self.dim = dim
        self.work = Work("points")

    def _check(self, points: Tensor) -> None:
        if points.dim() != 2 or points.shape[1] != self.dim:
            raise ValueError(
                f"expected points of shape (N, {self.dim}), got {tuple(points.shape)}"
            )

    def __call__(
        self,
        pivots: Tensor,  # (N, D)
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        self._check(pivots)
        with torch.enable_grad():
            x = pivots.detach().clone().requires_grad_(True)
            losses = self.f(x)  # (N,)
            if losses.shape != (pivots.shape[0],):
                raise ValueError(
                    f"the energy function returned shape {tuple(losses.shape)}, "
                    f"expected ({pivots.shape[0]},): one loss per row"
                )
            (grads,) = torch.autograd.grad(losses.sum(), x)
        self.work.step_forward += pivots.shape[0]
        self.work.step_backward += pivots.shape[0]
        return losses.detach(), grads.detach()

    def evaluate(self, points: Tensor) -> Tensor:
        self._check(points)
        self.work.evaluation_forward += points.shape[0]
        with torch.no_grad():
            return self.f(points).detach()

"""The one protocol AutoNEB needs: losses and gradients for a batch of pivots."""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

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
        return losses.detach(), grads.detach()

    def evaluate(self, points: Tensor) -> Tensor:
        self._check(points)
        with torch.no_grad():
            return self.f(points).detach()

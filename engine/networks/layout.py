"""Where each parameter of a network lives in its flat vector: the coordinates of a pivot."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ParameterLayout:
    """Where each named parameter of a module lives in the flat vector (D,)."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    offsets: tuple[int, ...]  # start of each parameter in the flat vector
    dim: int  # D

    @classmethod
    def from_module(cls, module: nn.Module) -> "ParameterLayout":
        names, shapes, offsets, offset = [], [], [], 0
        for name, p in module.named_parameters():
            names.append(name)
            shapes.append(p.shape)
            offsets.append(offset)
            offset += p.numel()
        if offset == 0:
            raise ValueError("the module has no parameters: nothing to connect")
        return cls(tuple(names), tuple(shapes), tuple(offsets), offset)

    def _check_module(self, module: nn.Module) -> dict[str, nn.Parameter]:
        params = dict(module.named_parameters())
        if tuple(params) != self.names or any(
            params[n].shape != s for n, s in zip(self.names, self.shapes)
        ):
            raise ValueError(
                "the module's parameters do not match this layout: build the layout "
                "from the same architecture"
            )
        return params

    def _check_vector(self, vec: Tensor) -> None:
        if vec.shape != (self.dim,):
            raise ValueError(
                f"expected a flat parameter vector of shape ({self.dim},), "
                f"got {tuple(vec.shape)}"
            )

    def flatten(self, module: nn.Module) -> Tensor:
        """The module's parameters as one new vector (D,), detached."""
        params = self._check_module(module)
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def unflatten(self, vec: Tensor) -> dict[str, Tensor]:
        """Name -> view of ``vec`` (D,) in that parameter's shape (no copies)."""
        self._check_vector(vec)
        # One split (not a slice per parameter): its backward is a single cat.
        parts = vec.split(self.numels)
        return {name: part.view(shape) for name, part, shape in zip(self.names, parts, self.shapes)}

    @property
    def numels(self) -> tuple[int, ...]:
        return tuple(shape.numel() for shape in self.shapes)

    def load_into(self, module: nn.Module, vec: Tensor) -> None:
        """Copy ``vec`` (D,) into the module's parameters (the inverse of flatten)."""
        params = self._check_module(module)
        with torch.no_grad():
            for name, view in self.unflatten(vec).items():
                params[name].copy_(view)

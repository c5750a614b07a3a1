"""A 2-D slice of a loss surface (the paper's Fig. 1): the loss on a grid in the
plane through three points, e.g. two minima and the mean of the pivots of the
path between them; the path itself is drawn by projecting it onto the plane."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SlicePlane:
    """origin + x * u + y * v with orthonormal u, v (D,): plane coordinates (x, y) are distances."""

    origin: Tensor  # (D,)
    u: Tensor  # (D,)
    v: Tensor  # (D,)

    def points(self, coordinates: Tensor) -> Tensor:
        """Plane coordinates (M, 2) -> points (M, D)."""
        c = coordinates.to(self.origin.dtype)
        return self.origin + c[:, :1] * self.u + c[:, 1:] * self.v

    def project(self, points: Tensor) -> Tensor:
        """Points (M, D) -> the plane coordinates (M, 2) of their orthogonal projections."""
        offset = points.to(self.origin.dtype) - self.origin  # (M, D)
        return torch.stack([offset @ self.u, offset @ self.v], dim=1)


def plane_through(a: Tensor, b: Tensor, c: Tensor) -> SlicePlane:
    """The plane through a, b, c (each (D,)): a at the origin, b on the x axis, c above it."""
    along = b - a
    u = along / along.norm()
    across = (c - a) - torch.dot(c - a, u) * u
    if across.norm() <= 1e-12 * max(float(along.norm()), 1.0):
        raise ValueError("the three points lie on one line: there is no plane through them")
    return SlicePlane(a.clone(), u, across / across.norm())


def coordinate_plane(dim: int = 2, dtype: torch.dtype = torch.float64) -> SlicePlane:
    """The plane of the first two coordinates (for a 2-D surface: the surface itself)."""
    eye = torch.eye(dim, dtype=dtype)
    return SlicePlane(torch.zeros(dim, dtype=dtype), eye[0], eye[1])


@dataclass(frozen=True)
class Slice:
    """The loss on a grid: losses[j, i] at plane coordinates (xs[i], ys[j])."""

    xs: Tensor  # (nx,)
    ys: Tensor  # (ny,)
    losses: Tensor  # (ny, nx)


def evaluate_slice(energy: object, plane: SlicePlane, xs: Tensor, ys: Tensor, chunk: int = 1024) -> Slice:
    """The energy's deterministic loss (``evaluate``) at every grid point, ``chunk`` points per call."""
    gy, gx = torch.meshgrid(ys.to(torch.float64), xs.to(torch.float64), indexing="ij")  # (ny, nx) each
    coordinates = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)  # (ny nx, 2)
    losses = [
        energy.evaluate(plane.points(coordinates[s : s + chunk])).detach().to(torch.float64).cpu()  # type: ignore[attr-defined]
        for s in range(0, coordinates.shape[0], chunk)
    ]
    return Slice(xs.clone(), ys.clone(), torch.cat(losses).reshape(gy.shape))


def grid_around(coordinates: Tensor, count: int, margin: float = 0.25) -> tuple[Tensor, Tensor]:
    """``count`` equally spaced xs and ys covering the points (M, 2) with a margin
    (a fraction of the larger extent) on every side."""
    low, high = coordinates.min(dim=0).values, coordinates.max(dim=0).values
    pad = margin * float((high - low).max())
    xs = torch.linspace(float(low[0]) - pad, float(high[0]) + pad, count, dtype=torch.float64)
    ys = torch.linspace(float(low[1]) - pad, float(high[1]) + pad, count, dtype=torch.float64)
    return xs, ys

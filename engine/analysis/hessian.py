"""Curvature of a loss surface at a point: the Hessian's extreme eigenvalues by
Lanczos on Hessian-vector products, the curvature along a path's tangent, and
the number of near-zero eigenvalues where the whole spectrum is affordable.

A loss here is a function ``loss(theta (D,)) -> scalar`` that torch.func can
differentiate twice; ``surface_loss`` and ``network_loss`` build one from an
analytic surface or from a network on a fixed evaluation batch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import Tensor, nn
from torch.func import functional_call, replace_all_batch_norm_modules_

from engine.networks.layout import ParameterLayout
from engine.networks.loss import Loss, loss_function

LossOfPoint = Callable[[Tensor], Tensor]  # theta (D,) -> scalar

DENSE_LIMIT = 3000  # up to this many parameters the whole Hessian is built and diagonalised
NEAR_ZERO_TOLERANCE = 1e-3  # |lambda| <= tolerance * max |lambda| counts as near zero


@dataclass(frozen=True)
class HessianSpectrum:
    """The extreme eigenvalues of the Hessian at one point."""

    largest: list[float]  # the k largest (algebraic), descending
    smallest: list[float]  # the k smallest (algebraic), ascending
    near_zero: int | None  # eigenvalues with |lambda| <= tolerance * max|lambda| (None: spectrum not computed whole)
    tolerance: float  # the relative tolerance of near_zero
    dim: int  # D
    method: str  # "dense" (whole spectrum) or "lanczos" (eigsh on Hessian-vector products)
    negative: int | None  # eigenvalues below -tolerance * max|lambda| (None: spectrum not computed whole)


def surface_loss(energy: object) -> LossOfPoint:
    """The loss of an analytic energy with a row-wise ``f`` (a CallableEnergy), at one point."""
    f = energy.f  # type: ignore[attr-defined]
    return lambda theta: f(theta.unsqueeze(0))[0]


def network_loss(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss: Loss = "cross_entropy",
    prepare: Callable[[Tensor], Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
) -> LossOfPoint:
    """The mean loss of ``model``'s architecture on one fixed batch as a function of
    the flat parameters (D,). BatchNorm normalises by this batch's statistics (a
    function of theta, as during NEB steps); dropout is off. Computed in ``dtype``
    (float64 by default: small eigenvalues and their signs do not drown in rounding)."""
    network = copy.deepcopy(model).to(dtype).eval()
    replace_all_batch_norm_modules_(network)
    layout = ParameterLayout.from_module(network)
    loss_fn, _ = loss_function(loss)
    x = prepare(inputs) if prepare is not None else inputs  # (B, ...)
    x = x.to(dtype) if x.is_floating_point() else x
    y = targets.to(dtype) if targets.is_floating_point() else targets  # (B,)

    def of_point(theta: Tensor) -> Tensor:
        outputs = functional_call(network, layout.unflatten(theta.to(x.device, dtype)), (x,))
        return loss_fn(outputs, y)

    return of_point


def hessian_vector_product(loss: LossOfPoint, point: Tensor) -> Callable[[Tensor], Tensor]:
    """v (D,) -> H(point) v by double backward: the gradient's graph is built once,
    each product is one backward pass through it."""
    theta = point.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (gradient,) = torch.autograd.grad(loss(theta), theta, create_graph=True)  # (D,)

    def hvp(v: Tensor) -> Tensor:
        with torch.enable_grad():
            (product,) = torch.autograd.grad(gradient, theta, grad_outputs=v.to(theta.dtype), retain_graph=True)
        return product.detach()

    hvp.batched = lambda vs: torch.autograd.grad(  # type: ignore[attr-defined]
        gradient, theta, grad_outputs=vs.to(theta.dtype), retain_graph=True, is_grads_batched=True
    )[0].detach()
    return hvp


def dense_hessian(loss: LossOfPoint, point: Tensor, chunk: int = 256) -> Tensor:
    """The whole Hessian (D, D), column blocks of ``chunk`` Hessian-vector products at a time."""
    hvp = hessian_vector_product(loss, point)
    dim = point.shape[0]
    eye = torch.eye(dim, dtype=point.dtype, device=point.device)
    with torch.enable_grad():
        columns = [hvp.batched(eye[s : s + chunk]) for s in range(0, dim, chunk)]  # type: ignore[attr-defined]
    hessian = torch.cat(columns)  # (D, D), in the point's dtype
    return (hessian + hessian.T) / 2  # symmetric to rounding


def hessian_spectrum(
    loss: LossOfPoint,
    point: Tensor,
    k: int = 3,
    *,
    dense_limit: int = DENSE_LIMIT,
    tolerance: float = NEAR_ZERO_TOLERANCE,
    seed: int = 0,
) -> HessianSpectrum:
    """The k largest and k smallest Hessian eigenvalues at ``point`` (D,).

    D <= dense_limit: the whole Hessian is built and diagonalised (also counting the
    near-zero eigenvalues, |lambda| <= tolerance * max|lambda|, and the clearly
    negative ones, lambda < -tolerance * max|lambda|). Otherwise Lanczos (scipy's eigsh, ARPACK) on a
    LinearOperator of Hessian-vector products, started from a seeded vector."""
    if k < 1:
        raise ValueError(f"k must be a positive number of eigenvalues, got {k}")
    dim = point.shape[0]
    k = min(k, dim)
    if dim <= dense_limit or dim <= 2 * k + 1:
        values = torch.linalg.eigvalsh(dense_hessian(loss, point)).tolist()  # ascending
        scale = max(abs(values[0]), abs(values[-1]))
        near = sum(1 for v in values if abs(v) <= tolerance * scale)
        negative = sum(1 for v in values if v < -tolerance * scale)
        return HessianSpectrum(
            largest=values[::-1][:k], smallest=values[:k], near_zero=near, tolerance=tolerance, dim=dim,
            method="dense", negative=negative,
        )
    hvp = hessian_vector_product(loss, point)

    def matvec(v: np.ndarray) -> np.ndarray:
        vector = torch.as_tensor(np.ascontiguousarray(v).reshape(-1), dtype=point.dtype, device=point.device)
        return hvp(vector).detach().to(torch.float64).cpu().numpy()

    operator = LinearOperator((dim, dim), matvec=matvec, dtype=np.float64)
    start = np.random.default_rng(seed).standard_normal(dim)
    largest = eigsh(operator, k=k, which="LA", v0=start, tol=1e-6, return_eigenvectors=False)
    smallest = eigsh(operator, k=k, which="SA", v0=start, tol=1e-6, return_eigenvectors=False)
    return HessianSpectrum(
        largest=sorted(largest.tolist(), reverse=True), smallest=sorted(smallest.tolist()), near_zero=None,
        tolerance=tolerance, dim=dim, method="lanczos", negative=None,
    )


def tangent_curvature(loss: LossOfPoint, point: Tensor, tangent: Tensor) -> float:
    """The curvature along a direction: t^T H t / t^T t."""
    t = tangent.detach().to(point.dtype)
    return float(torch.dot(t, hessian_vector_product(loss, point)(t)) / torch.dot(t, t))


def path_tangents(pivots: Tensor) -> Tensor:
    """Unit tangents of a piecewise-linear path at its pivots: (N, D); central
    differences inside, one-sided at the ends."""
    ahead = torch.cat([pivots[1:], pivots[-1:]])  # (N, D)
    behind = torch.cat([pivots[:1], pivots[:-1]])  # (N, D)
    tangents = ahead - behind
    return tangents / tangents.norm(dim=1, keepdim=True).clamp_min(torch.finfo(pivots.dtype).tiny)


def path_curvatures(loss: LossOfPoint, pivots: Tensor) -> list[float]:
    """The curvature along the path's tangent at each pivot (N,)."""
    tangents = path_tangents(pivots)
    return [tangent_curvature(loss, p, t) for p, t in zip(pivots, tangents)]

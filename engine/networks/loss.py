"""A network's loss by name ("cross_entropy", "bce", "mse") or as a callable, and its
error count for classification."""

from __future__ import annotations

from typing import Callable, Union

import torch.nn.functional as F
from torch import Tensor

LossFn = Callable[[Tensor, Tensor], Tensor]  # (outputs, targets) -> scalar mean
Loss = Union[str, LossFn]


def loss_function(loss: Loss) -> tuple[LossFn, Callable[[Tensor, Tensor], Tensor] | None]:
    """The mean loss (outputs, targets) -> scalar and, for classification, the
    error count (outputs, targets) -> number misclassified."""
    if callable(loss):
        return loss, None
    if loss == "cross_entropy":
        return (
            lambda out, y: F.cross_entropy(out, y),
            lambda out, y: (out.argmax(dim=1) != y).sum(),
        )
    if loss == "bce":
        return (
            lambda out, y: F.binary_cross_entropy_with_logits(
                out.reshape(y.shape), y.to(out.dtype)
            ),
            lambda out, y: ((out.reshape(y.shape) > 0).to(y.dtype) != y).sum(),
        )
    if loss == "mse":
        return (
            lambda out, y: F.mse_loss(
                out.reshape(y.shape) if out.numel() == y.numel() else out, y.to(out.dtype)
            ),
            None,
        )
    raise ValueError(
        f"unknown loss {loss!r}: use 'cross_entropy', 'bce', 'mse' or a callable "
        "(outputs, targets) -> scalar mean"
    )

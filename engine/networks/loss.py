"""A network's loss by name ("cross_entropy", "bce", "mse") or as a callable, and its
error count for classification.

A callable is one of two kinds, told apart by its parameters' names:
``loss(model, batch) -> scalar`` (its first two parameters are named ``model`` and
``batch``) runs the model itself on a batch as the data gives it (a dict of tensors
for a data set of dict items: tokens, masks, labels); any other callable is
``loss(outputs, targets) -> scalar``, the model's outputs on a batch of inputs against
its targets."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Union

import torch.nn.functional as F
from torch import Tensor

LossFn = Callable[[Tensor, Tensor], Tensor]  # (outputs, targets) -> scalar mean
Loss = Union[str, LossFn]
NAMES = ("cross_entropy", "bce", "mse")
CLASSIFICATION = ("cross_entropy", "bce")  # the losses whose points have an error rate
MODEL_PARAMETERS = ("model", "batch")


def takes_model(loss: Any) -> bool:
    """Whether a callable loss is ``loss(model, batch)``: its first two parameters are
    named ``model`` and ``batch`` (else it is ``loss(outputs, targets)``)."""
    if not callable(loss):
        return False
    try:
        parameters = list(inspect.signature(loss).parameters)
    except (TypeError, ValueError):
        return False
    return tuple(parameters[:2]) == MODEL_PARAMETERS


def loss_function(loss: Loss) -> tuple[LossFn, Callable[[Tensor, Tensor], Tensor] | None]:
    """The mean loss (outputs, targets) -> scalar and, for classification, the
    error count (outputs, targets) -> number misclassified. A ``(model, batch)``
    loss is returned as it is (the energy calls it with a model and a batch)."""
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
        "(outputs, targets) -> scalar mean, or (model, batch) -> scalar mean"
    )

"""Training a minimum: plain minibatch SGD with momentum on in-memory data.

A small, deterministic trainer for the demos and tests (the paper's recipes for
CIFAR networks build on the same loop)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from engine.energy.network import ParameterLayout, loss_function


@dataclass
class TrainingResult:
    parameters: Tensor  # (D,) flat, the minimum
    losses: list[float] = field(default_factory=list)  # minibatch loss per step


def train(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    *,
    loss: str = "cross_entropy",
    steps: int = 1000,
    batch_size: int = 128,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> TrainingResult:
    """Train ``model`` in place from its current weights; returns its flat parameters."""
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise ValueError("steps, batch_size and lr must be positive")
    loss_fn, _ = loss_function(loss)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    model.train()
    count = inputs.shape[0]
    history = []
    for _ in range(steps):
        batch = torch.randperm(count, generator=generator)[: min(batch_size, count)].to(inputs.device)
        optimiser.zero_grad(set_to_none=True)
        value = loss_fn(model(inputs[batch]), targets[batch])
        value.backward()
        optimiser.step()
        history.append(float(value.detach()))
    return TrainingResult(ParameterLayout.from_module(model).flatten(model), history)

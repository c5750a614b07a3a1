"""Training a minimum: minibatch SGD on in-memory data, following a recipe.

Recipes (NOTES.md section 5):
- ``he2016`` for the CIFAR ResNets: SGD, momentum 0.9, weight decay 1e-4, batch
  128, lr 0.1 divided by 10 at 32k and 48k of 64k iterations;
- ``huang2017`` for the DenseNets: batch 64, 300 epochs, lr 0.1 divided by 10 at
  50% and 75%, weight decay 1e-4, Nesterov momentum 0.9;
- ``digits``: a short run for the embedded digits networks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import torch
from torch import Tensor, nn

from engine.energy.network import ParameterLayout, loss_function


@dataclass(frozen=True)
class Recipe:
    name: str
    steps: int  # optimiser steps (iterations)
    batch_size: int
    lr: float
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    milestones: tuple[float, ...] = ()  # fractions of steps where lr is multiplied by gamma
    gamma: float = 0.1

    def __post_init__(self) -> None:
        problems = []
        if self.steps < 1:
            problems.append(f"steps must be a positive integer, got {self.steps}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be a positive integer, got {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a positive number, got {self.lr}")
        if any(not 0 < m < 1 for m in self.milestones):
            problems.append(f"milestones must be fractions in (0, 1), got {list(self.milestones)}")
        if problems:
            raise ValueError(f"recipe {self.name}: " + "; ".join(problems))

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based)."""
        drops = sum(step >= round(m * self.steps) for m in self.milestones)
        return self.lr * self.gamma**drops

    def scaled(self, factor: float) -> "Recipe":
        """The same recipe with ``factor`` times the steps (at least 1)."""
        return replace(self, steps=max(1, round(self.steps * factor)))

    def to_dict(self) -> dict:
        return asdict(self)


def huang2017_steps(train_samples: int = 50_000, epochs: int = 300, batch_size: int = 64) -> int:
    return epochs * math.ceil(train_samples / batch_size)


RECIPES: dict[str, Recipe] = {
    "he2016": Recipe("he2016", steps=64_000, batch_size=128, lr=0.1, weight_decay=1e-4, milestones=(0.5, 0.75)),
    "huang2017": Recipe(
        "huang2017", steps=huang2017_steps(), batch_size=64, lr=0.1, nesterov=True, weight_decay=1e-4,
        milestones=(0.5, 0.75),
    ),
    "digits": Recipe("digits", steps=1500, batch_size=128, lr=0.1, milestones=(0.75,)),
}


def default_recipe(model_name: str) -> Recipe:
    if model_name.startswith("resnet"):
        return RECIPES["he2016"]
    if model_name.startswith("densenet"):
        return RECIPES["huang2017"]
    return RECIPES["digits"]


@dataclass
class TrainingResult:
    parameters: Tensor  # (D,) flat, the minimum
    losses: list[float] = field(default_factory=list)  # minibatch loss per step


Progress = Callable[[int, float, float], None]  # (step, loss, lr)


def train(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    *,
    recipe: Recipe = RECIPES["digits"],
    loss: str = "cross_entropy",
    seed: int = 0,
    prepare: Callable[[Tensor], Tensor] | None = None,
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    progress: Progress | None = None,
    every: int = 100,
) -> TrainingResult:
    """Train ``model`` in place from its current weights; returns its flat parameters.
    Minibatches are drawn with replacement across steps (a fresh permutation
    per epoch), on the data's device; ``augment`` runs there too."""
    loss_fn, _ = loss_function(loss)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
    )
    model.train()
    count = inputs.shape[0]
    batch = min(recipe.batch_size, count)
    order, position = torch.randperm(count, generator=generator), 0
    history = []
    for step in range(recipe.steps):
        if position + batch > count:
            order, position = torch.randperm(count, generator=generator), 0
        rows = order[position : position + batch].to(inputs.device)
        position += batch
        x = inputs[rows]
        if augment is not None:
            x = augment(x, generator)
        if prepare is not None:
            x = prepare(x)
        lr = recipe.lr_at(step)
        for group in optimiser.param_groups:
            group["lr"] = lr
        optimiser.zero_grad(set_to_none=True)
        value = loss_fn(model(x), targets[rows])
        value.backward()
        optimiser.step()
        history.append(float(value.detach()))
        if progress is not None and ((step + 1) % every == 0 or step + 1 == recipe.steps):
            progress(step + 1, history[-1], lr)
    return TrainingResult(ParameterLayout.from_module(model).flatten(model), history)

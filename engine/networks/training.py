"""Training a minimum: minibatch SGD on in-memory data, following a recipe.

Recipes (the papers the paper follows, its section 4):
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

from engine.networks.layout import ParameterLayout
from engine.networks.loss import Loss, loss_function, takes_model
from engine.threads import intra_op_threads


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
    """The recipe of the zoo's architecture ``model_name``. A torchvision model has none
    (its papers' recipes differ by family): a ValueError asks for one by name."""
    if model_name.startswith("torchvision:"):
        raise ValueError(f"{model_name} has no default training recipe: choose one with --recipe "
                         f"({', '.join(RECIPES)})")
    if model_name.startswith("resnet"):
        return RECIPES["he2016"]
    if model_name.startswith("densenet"):
        return RECIPES["huang2017"]
    return RECIPES["digits"]


@dataclass
class TrainingResult:
    parameters: Tensor  # (D,) flat, the minimum
    losses: list[float] = field(default_factory=list)  # minibatch loss per step
    finished: bool = True  # False: stopped early by ``stop`` (after a last checkpoint)


Progress = Callable[[int, float, float], None]  # (step, loss, lr)
Checkpoint = Callable[[dict], None]  # receives training_state(...) between steps


def training_state(model: nn.Module, optimiser: torch.optim.Optimizer, generator: torch.Generator, order: Tensor,
                   position: int, step: int, history: list[float]) -> dict:
    """Everything a run needs to continue bit for bit from between two steps:
    {"tensors": name -> CPU tensor (safetensors-ready), "meta": JSON-able}."""
    tensors = {f"model.{k}": v.detach().cpu().clone() for k, v in model.state_dict().items()}
    slots = {id(p): i for i, p in enumerate(model.parameters())}
    for parameter, state in optimiser.state.items():
        buffer = state.get("momentum_buffer")
        if buffer is not None:
            tensors[f"momentum.{slots[id(parameter)]}"] = buffer.detach().cpu().clone()
    tensors["rng"] = generator.get_state()
    tensors["order"] = order.cpu().clone()
    return {"tensors": tensors, "meta": {"step": step, "position": position, "history": list(history)}}


def _restore(state: dict, model: nn.Module, optimiser: torch.optim.Optimizer,
             generator: torch.Generator) -> tuple[Tensor, int, int, list[float]]:
    tensors, meta = state["tensors"], state["meta"]
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    for i, parameter in enumerate(model.parameters()):
        buffer = tensors.get(f"momentum.{i}")
        if buffer is not None:
            optimiser.state[parameter]["momentum_buffer"] = buffer.to(parameter.device, parameter.dtype).clone()
    generator.set_state(tensors["rng"])
    return tensors["order"].clone(), int(meta["position"]), int(meta["step"]), [float(v) for v in meta["history"]]


def train(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    *,
    recipe: Recipe = RECIPES["digits"],
    loss: Loss = "cross_entropy",
    seed: int = 0,
    prepare: Callable[[Tensor], Tensor] | None = None,
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    progress: Progress | None = None,
    every: int = 100,
    resume: dict | None = None,
    checkpoint: Checkpoint | None = None,
    checkpoint_due: Callable[[int], bool] | None = None,
    stop: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Train ``model`` in place from its current weights; returns its flat parameters.
    Minibatches are drawn with replacement across steps (a fresh permutation
    per epoch), on the data's device; ``augment`` runs there too.

    ``checkpoint`` is called with ``training_state(...)`` after each step for
    which ``checkpoint_due(steps done)`` is true; ``resume`` (such a state, the
    same recipe and seed) continues that run: the result is the one an
    uninterrupted run gives, bit for bit. ``stop`` is asked after every step;
    when it says yes the run checkpoints and returns unfinished. ``loss``: a name, or a
    callable (outputs, targets) or (model, batch) (engine.networks.loss)."""
    loss_fn, _ = loss_function(loss)
    on_model = takes_model(loss)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
    )
    model.train()
    count = inputs.shape[0]
    batch = min(recipe.batch_size, count)
    if resume is None:
        order, position, first, history = torch.randperm(count, generator=generator), 0, 0, []
    else:
        order, position, first, history = _restore(resume, model, optimiser, generator)
    with intra_op_threads(_threads(model, inputs)):
        for step in range(first, recipe.steps):
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
            if on_model:  # the user's loss runs the model on the batch itself
                value = loss_fn(model, dict(x) if isinstance(x, dict) else (x, targets[rows]))
            else:
                value = loss_fn(model(x), targets[rows])
            value.backward()
            optimiser.step()
            history.append(float(value.detach()))
            if progress is not None and ((step + 1) % every == 0 or step + 1 == recipe.steps):
                progress(step + 1, history[-1], lr)
            if step + 1 == recipe.steps:
                break
            stopping = stop is not None and stop()
            if checkpoint is not None and (stopping or checkpoint_due is None or checkpoint_due(step + 1)):
                checkpoint(training_state(model, optimiser, generator, order, position, step + 1, history))
            if stopping:
                return TrainingResult(ParameterLayout.from_module(model).flatten(model), history, finished=False)
    return TrainingResult(ParameterLayout.from_module(model).flatten(model), history)


# A model this small trains on one intra-op thread on the CPU: waking a second thread
# costs more than the work it takes over (engine.threads). The digits MLP (2,410
# parameters) and small CNN (1,922) trained 1.5-2.8x faster on one thread than on two,
# measured interleaved on a 2-core machine.
SMALL_MODEL_PARAMETERS = 32_768


def _threads(model: nn.Module, inputs: Tensor) -> int | None:
    """One intra-op thread for a small model on the CPU, else torch's count as it is."""
    small = sum(p.numel() for p in model.parameters()) <= SMALL_MODEL_PARAMETERS
    return 1 if small and inputs.device.type == "cpu" else None

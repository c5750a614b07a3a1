"""How a curve's bend is trained: steps, points per step, learning rate, and the
cost in gradient evaluations. No torch here: a session validates it on its own.

The learning rate follows Garipov et al.'s schedule over the run: constant for
the first half, then falling linearly to 1% of it at 90% of the steps, then
constant. The steps are cut into ``cycles`` equal parts; each ends with an
evaluation of the curve at ``eval_points`` values of t (progress a reader can
follow, as AutoNEB's cycles).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from engine.paths.schedule import OPTIMISER_ARGS, UNSUPPORTED_OPTIMISERS, ScheduleError

CURVE_KINDS = ("bezier", "polychain")


@dataclass(frozen=True)
class CurveSchedule:
    """The bend's training: ``steps`` optimiser steps, each on ``points`` values of
    t (one random minibatch each): ``steps * points`` gradient evaluations."""

    # lr, points and weight decay from bench/curve_sweep.py (bench/results/curve-sweep-cpu.json): digits MLP
    # pairs, 3 seeds, 4000 gradient evaluations a curve. Median saddle train loss fell with lr up to 1-2
    # (0.05 left it 5-10 times higher), 4 points a step beat 8 and 16 at the same budget, and Garipov et
    # al.'s weight decay 5e-4 on the bend raised it; at lr 2 single polychain seeds went astray, at 4 most.
    kind: str = "bezier"  # "bezier" (quadratic Bezier) | "polychain" (one bend)
    steps: int = 1000
    points: int = 4  # values of t per step, stratified: one uniform draw in each of `points` equal parts
    lr: float = 1.0  # for networks; engine.paths.registry.curve_schedule scales it to a surface's schedule
    optimiser: str = "SGD"
    optimiser_args: dict[str, Any] = field(default_factory=lambda: {"momentum": 0.9})
    weight_decay: float = 0.0  # on the bend only
    batch_size: int | None = None  # minibatch per point; None = the energy's own
    cycles: int = 5  # evaluations of the whole curve during the run (the last at its end)
    eval_points: int = 61  # values of t, evenly spaced, at which the curve is evaluated
    energy_every: int = 10  # a StepEnergies event every this many steps

    def __post_init__(self) -> None:
        if isinstance(self.optimiser_args, Mapping):
            object.__setattr__(self, "optimiser_args", dict(self.optimiser_args))
        problems = []
        if self.kind not in CURVE_KINDS:
            problems.append(f"kind must be one of {', '.join(CURVE_KINDS)}, got {self.kind!r}")
        for name, least in (("steps", 1), ("points", 1), ("cycles", 1), ("eval_points", 3), ("energy_every", 1)):
            value = getattr(self, name)
            if type(value) is not int or value < least:
                problems.append(f"{name} must be an integer >= {least}, got {value!r}")
        if self.batch_size is not None and (type(self.batch_size) is not int or self.batch_size < 1):
            problems.append(f"batch_size must be an integer >= 1 or None, got {self.batch_size!r}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or \
                    value < 0 or (name == "lr" and value == 0):
                problems.append(f"{name} must be a finite number {'> 0' if name == 'lr' else '>= 0'}, got {value!r}")
        if self.optimiser in UNSUPPORTED_OPTIMISERS:
            problems.append(f"optimiser {self.optimiser} cannot train a bend: {UNSUPPORTED_OPTIMISERS[self.optimiser]}")
        elif self.optimiser not in OPTIMISER_ARGS:
            problems.append(f"optimiser must name a torch.optim optimiser class ({', '.join(OPTIMISER_ARGS)}), "
                            f"got {self.optimiser!r}")
        elif not isinstance(self.optimiser_args, dict) or any(k not in OPTIMISER_ARGS[self.optimiser]
                                                               for k in self.optimiser_args):
            problems.append(f"optimiser_args: {self.optimiser} accepts {', '.join(OPTIMISER_ARGS[self.optimiser])}, "
                            f"got {self.optimiser_args!r}")
        if isinstance(self.steps, int) and isinstance(self.cycles, int) and self.cycles > self.steps >= 1:
            problems.append(f"cycles must be at most steps ({self.steps}), got {self.cycles}")
        if problems:
            raise ScheduleError(problems, where="CurveSchedule")

    @property
    def gradient_evaluations(self) -> int:
        """The budget: one minibatch gradient per point per step."""
        return self.steps * self.points

    def cycle_ends(self) -> list[int]:
        """The step counts at which each cycle ends (the last is ``steps``)."""
        return [round(self.steps * (c + 1) / self.cycles) for c in range(self.cycles)]

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based): Garipov et al.'s schedule."""
        alpha = step / self.steps
        if alpha <= 0.5:
            factor = 1.0
        elif alpha <= 0.9:
            factor = 1.0 - (alpha - 0.5) / 0.4 * 0.99
        else:
            factor = 0.01
        return self.lr * factor

    def with_budget(self, gradient_evaluations: int) -> "CurveSchedule":
        """The same schedule with as many steps as spend about that many gradient evaluations."""
        steps = max(self.cycles, round(gradient_evaluations / self.points))
        return CurveSchedule(**{**self.to_dict(), "steps": steps})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CurveSchedule":
        unknown = [k for k in d if k not in cls.__dataclass_fields__]
        if unknown:
            raise ScheduleError([f"unknown field {k!r}; known: {', '.join(cls.__dataclass_fields__)}"
                                 for k in unknown], where="CurveSchedule")
        return cls(**d)

"""Curve fitting between two minima (Garipov et al. 2018): the bend theta of a
quadratic Bezier curve or a one-bend polygonal chain, trained to minimise

    l(theta) = E_{t ~ U(0, 1)} [ L(phi_theta(t)) ]

Each step draws ``points`` values of t (stratified: one uniform draw in each of
``points`` equal parts of [0, 1], an unbiased estimate of the same mean with
less variance), evaluates the loss and its gradient at phi(t_i) on one random
minibatch each (the same batched Energy call and per-pivot batches as AutoNEB's
band), and moves the bend along the mean of b(t_i) grad L(phi(t_i)) (plus weight
decay on the bend). theta starts at (w1 + w2) / 2, the straight line.

A ``CurveFit`` is a ``PathRun`` (engine.paths.run), as AutoNEB's ``Connection``:
``run()`` honours a stop request at any step boundary, ``state_dict()`` holds
everything, ``CurveFit.from_state`` continues bit for bit. It speaks the same
events (a cycle is a stretch of steps ending with an evaluation of the curve; a
step's positions are its values of t, not fractions of arc length) and its
result is a ``ConnectionResult``: the curve evaluated at ``eval_points`` evenly
spaced t (BatchNorm statistics recomputed at every point by the energy), its
saddle, the straight segment's profile, plus the bend and the cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

import engine.events as events
from engine.paths.curve_schedule import CurveSchedule
from engine.paths.curve_shapes import coefficients, curve_points
from engine.energy.base import Energy
from engine.events import EventSink
from engine.band.geometry import arc_fractions, linear_path
from engine.paths.run import (ConnectionResult, CycleRecord, DivergedError, PathRun, Profile, StopRequest, check_point,
                              optimiser_state_parts)


@dataclass
class CurveResult(ConnectionResult):
    """A fitted curve, readable as any connection's result (pivots: the curve at
    the evaluation values of t), plus what only a curve has."""

    kind: str  # "bezier" | "polychain"
    bend: Tensor  # (D,), theta
    t: list[float]  # the curve parameter of each pivot
    steps: int
    gradient_evaluations: int  # the cost: one minibatch gradient per point per step


def stratified_t(count: int, generator: torch.Generator) -> Tensor:
    """``count`` values of t in [0, 1], one uniform draw in each of ``count`` equal parts: (count,)."""
    return (torch.arange(count, dtype=torch.float64) + torch.rand(count, generator=generator, dtype=torch.float64)) / count


class CurveFit(PathRun):
    """A Bezier curve or a polygonal chain between ``start`` and ``end`` ((D,) each):
    one run, no restarts (``restart`` stays 0). Its method is the curve's kind."""

    def __init__(
        self,
        energy: Energy,
        schedule: CurveSchedule,
        start: Tensor,
        end: Tensor,
        *,
        pair: tuple[int, int] = (0, 1),
        seed: int = 0,
        bend: Tensor | None = None,
        on_event: EventSink = events.ignore,
    ):
        # the curve lives where its end points do; its draws (t, batches) on the CPU
        super().__init__(energy, schedule, start, end, pair=pair, seed=seed, on_event=on_event,
                         device=start.device, generator_device="cpu")
        if bend is not None:
            check_point(energy, "bend", bend)
        self.kind = schedule.kind
        self.method = schedule.kind
        initial = (self.start + self.end) / 2 if bend is None else bend.detach().clone().to(self.start.dtype)
        self.bend = torch.nn.Parameter(initial)  # (D,), theta
        optimiser_class = getattr(torch.optim, schedule.optimiser)
        self.optimiser = optimiser_class([self.bend], lr=schedule.lr, **schedule.optimiser_args)
        self._ends = schedule.cycle_ends()  # self.step: steps done in the whole run

    @property
    def cycles(self) -> int:
        return self.schedule.cycles

    @property
    def restarts(self) -> int:
        return 1

    # --- running --------------------------------------------------------------

    def _linear_profile(self) -> Profile:
        return self._profile(linear_path(self.start, self.end, self.schedule.eval_points))[0]

    def _advance(self, should_stop: StopRequest | None) -> bool:
        """The steps left, cycle by cycle, until done or told to stop."""
        while self.step < self.schedule.steps:
            if not self.cycle_started:
                self._begin_cycle()
            if should_stop is not None and should_stop():
                return False
            self._train_step()
            if self.step == self._ends[self.cycle]:
                self._end_cycle()
        return True

    def _t_eval(self) -> Tensor:
        return torch.linspace(0.0, 1.0, self.schedule.eval_points, dtype=torch.float64)

    def points(self, t: Tensor) -> Tensor:
        """The current curve at ``t`` (M,): (M, D)."""
        return curve_points(self.kind, self.start, self.bend.detach(), self.end, t)

    def _profile(self, points: Tensor) -> tuple[Profile, Tensor]:
        losses = self._evaluate(points).detach().to(torch.float64).cpu()
        positions = arc_fractions(points)
        return Profile(positions.tolist(), losses.tolist()), losses

    def _begin_cycle(self) -> None:
        first = self._ends[self.cycle - 1] if self.cycle > 0 else 0
        self._cycle_started(steps=self._ends[self.cycle] - first, lr=self.schedule.lr_at(self.step),
                            optimiser=self.schedule.optimiser, batch_size=self.schedule.batch_size,
                            insert=False, climb=False, pivots=self.schedule.points)

    def _train_step(self) -> None:
        schedule = self.schedule
        for group in self.optimiser.param_groups:
            group["lr"] = schedule.lr_at(self.step)
        t = stratified_t(schedule.points, self.generator)  # (n,)
        points = self.points(t)  # (n, D)
        losses, grads = self._gradients(points, schedule.batch_size)
        if not bool(torch.isfinite(losses).all()):
            raise DivergedError(
                f"the curve diverged (loss {losses.max().item()}) at step {self.step + 1} of pair {self.pair}: "
                f"lower the learning rate (it is {schedule.lr})"
            )
        _, weight, _ = coefficients(self.kind, t)  # d phi / d theta: (n,)
        gradient = (weight.to(grads.dtype).unsqueeze(1) * grads).mean(dim=0)  # (D,)
        if schedule.weight_decay:
            gradient = gradient + schedule.weight_decay * self.bend.detach()
        self.bend.grad = gradient.to(self.bend.dtype)
        self.optimiser.step()
        self.step += 1
        first = self._ends[self.cycle - 1] if self.cycle > 0 else 0
        in_cycle = self.step - first
        if in_cycle % schedule.energy_every == 0 or self.step == self._ends[self.cycle]:
            # losses in order of t; t ascending: one draw in each of `points` equal parts of [0, 1]
            self._step_energies(in_cycle, [float(v) for v in losses], t.tolist())

    def _end_cycle(self) -> None:
        profile, _ = self._profile(self.points(self._t_eval()))
        record = CycleRecord(
            restart=0,
            cycle=self.cycle + 1,
            pivots=self.schedule.eval_points,
            saddle_energy=profile.saddle_energy,
            saddle_position=profile.saddle_position,
            profile=profile,
            pivot_positions=profile.positions,
            pivot_losses=profile.losses,
        )
        self._cycle_finished(record)

    def _result(self) -> CurveResult:
        """The curve at the evaluation values of t, its last profile and the bend."""
        assert self.linear is not None and self.history
        t = self._t_eval()
        pivots = self.points(t)  # (M, D)
        profile = self.history[-1].profile
        return CurveResult(
            pair=self.pair,
            pivots=pivots,
            pivot_positions=profile.positions,
            pivot_losses=profile.losses,
            profile=profile,
            saddle_point=pivots[profile.saddle_index].clone(),
            linear=self.linear,
            history=self.history,
            restart_saddles=[profile.saddle_energy],
            best_restart=0,
            kind=self.kind,
            bend=self.bend.detach().clone(),
            t=t.tolist(),
            steps=self.schedule.steps,
            gradient_evaluations=self.schedule.gradient_evaluations,
        )

    # --- state ----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: {"tensors": {name: Tensor}, "meta": JSON-able}."""
        tensors = {**self._state_tensors(), "bend": self.bend.detach()}
        parts, saved = optimiser_state_parts(self.optimiser.state.get(self.bend, {}))
        tensors.update(parts)
        meta = {**self._state_meta(), "optimiser": saved}
        return {"tensors": {k: v.detach().clone() for k, v in tensors.items()}, "meta": meta}

    @classmethod
    def from_state(
        cls,
        energy: Energy,
        schedule: CurveSchedule,
        state: dict[str, Any],
        *,
        on_event: EventSink = events.ignore,
    ) -> "CurveFit":
        """Rebuild a curve fit from ``state_dict()``; ``run()`` then continues it."""
        tensors, meta = state["tensors"], state["meta"]
        if meta["schedule"] != schedule.to_dict():
            raise ValueError("the saved curve ran a different schedule: resume it with the schedule it was started with")
        self = cls(energy, schedule, tensors["start"], tensors["end"], pair=tuple(meta["pair"]), seed=meta["seed"],
                   bend=tensors["bend"], on_event=on_event)
        self._load_state(tensors, meta)
        saved = meta["optimiser"]
        if saved["tensors"] or saved["scalars"]:
            param_state: dict[str, Any] = dict(saved["scalars"])
            for key in saved["tensors"]:
                param_state[key] = tensors[f"optimiser.{key}"].clone()
            self.optimiser.state[self.bend] = param_state
        if self.finished:
            self._finish(announce=False)
        return self


def fit_curve(
    energy: Energy,
    start: Tensor,
    end: Tensor,
    schedule: CurveSchedule,
    *,
    pair: tuple[int, int] = (0, 1),
    seed: int = 0,
    on_event: EventSink = events.ignore,
) -> CurveResult:
    """Train a curve's bend between two minima to the end of the schedule."""
    result = CurveFit(energy, schedule, start, end, pair=pair, seed=seed, on_event=on_event).run()
    assert result is not None
    return result

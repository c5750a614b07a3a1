"""AutoNEB (Kolsbjerg, Groves & Hammer 2016) between two minima.

    Initialise pivots equally spaced on the segment theta_1 -> theta_2.
    for each cycle of the schedule:
        insert pivots where the residual is large (cycle 1: the initial fill)
        optimise the band with NEB (steps, lr, optimiser of the cycle)
        evaluate the loss densely along the band

A ``Connection`` is one such run, a ``PathRun`` (engine.paths.run): ``run()``
honours a stop request at any step boundary, ``state_dict()`` holds everything
(pivots, optimiser state, schedule position, random state), and a connection
rebuilt with ``Connection.from_state`` finishes bit for bit as one that never
stopped. Restarts (several bands from randomly perturbed starting paths, the
lowest saddle kept) guard against a band stalling in a local MEP. The band
numerics it drives are engine.band's: the tangent, the springs or the string
method's re-spacing (``band_strategy``), the insertion rule.

Where the work happens: the band, the optimiser state and the generator of the
random batches live on one device for the whole run (``device``: the energy's by
default), and a step's band arithmetic (segments, tangents, projection, springs
or re-spacing, climbing image, the optimiser update) is a handful of tensor
operations there with no read-back to the host (on the CPU, where a read-back
costs nothing, the re-spacing works out its few dozen scalars on the host: fewer
operations, the same bits). The divergence check reads the
losses back every few steps (``CHECK_EVERY``), at an energy event, at a stop and
at the end of a cycle; a diverged band is reported with the step it diverged at.
A step that sends an energy event also reads back where its pivots were along the
band (their arc-length fractions, the event's positions) before it moves them.
Tensors go to the CPU only in ``state_dict`` and in the result.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Union

import torch
from torch import Tensor

import engine.events as events
from engine.band.geometry import (Segments, arc_fractions, dense_fractions, dense_points, equal_fraction_table,
                                  linear_path, respaced_interior)
from engine.band.insertion import choose_insertions, insert_pivots
from engine.band.springs import band_strategy
from engine.band.tangent import TANGENTS
from engine.energy.base import Energy
from engine.events import EventSink
from engine.paths.run import (ConnectionResult, CycleRecord, DivergedError, PathRun, Profile, StopRequest,
                              optimiser_state_parts)
from engine.paths.schedule import Cycle, Schedule
from engine.threads import intra_op_threads

# Steps between two reads of the losses for the divergence check (a host
# synchronisation on a GPU); energy events and stops read them as well.
CHECK_EVERY = 10


@dataclass
class _Best:
    """The best band seen so far (of a restart, or over all restarts)."""

    record: CycleRecord
    pivots: Tensor  # (N, D)
    dense_losses: Tensor  # (M,)


class PlainSGD:
    """torch.optim.SGD's update on one parameter, written out: the same operations as
    torch's single-tensor SGD, bit for bit on the CPU, with the same ``param_groups``
    and ``state`` (so saved states are the same), but without ``Optimizer``'s
    per-call bookkeeping, and without the 2 to 5 s import of torch._dynamo that
    constructing the first torch.optim optimiser costs a fresh process."""

    def __init__(self, param: torch.nn.Parameter, lr: float, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, differentiable: bool = False, fused: bool | None = None) -> None:
        # the keys and order of torch.optim.SGD's group (a saved state lists them)
        self.param_groups: list[dict[str, Any]] = [{
            "params": [param], "lr": lr, "momentum": momentum, "dampening": dampening,
            "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize,
            "foreach": foreach, "differentiable": differentiable, "fused": fused,
        }]
        self.state: dict[Any, dict[str, Any]] = {}

    @staticmethod
    def covers(cycle: Cycle) -> bool:
        """Whether a cycle's optimiser is SGD on options this update writes out."""
        args = cycle.optimiser_args
        return cycle.optimiser == "SGD" and not args.get("differentiable") and not args.get("fused")

    def step(self) -> None:
        group = self.param_groups[0]
        (interior,) = group["params"]
        grad = interior.grad
        assert grad is not None
        if group["maximize"]:
            grad = -grad
        with torch.no_grad():
            if group["weight_decay"] != 0:
                grad = grad.add(interior, alpha=group["weight_decay"])
            momentum = group["momentum"]
            if momentum != 0:
                state = self.state.setdefault(interior, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = grad.detach().clone()
                    state["momentum_buffer"] = buf
                else:
                    buf.mul_(momentum).add_(grad, alpha=1 - group["dampening"])
                grad = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
            interior.add_(grad, alpha=-group["lr"])


Optimiser = Union[PlainSGD, torch.optim.Optimizer]


def _make_optimiser(cycle: Cycle, interior: torch.nn.Parameter) -> Optimiser:
    """The cycle's optimiser over the band's interior: plain SGD (the presets') written
    out, any other torch.optim class as torch has it (the schedule checked its arguments)."""
    if PlainSGD.covers(cycle):
        return PlainSGD(interior, lr=cycle.lr, **cycle.optimiser_args)
    optimiser_class = getattr(torch.optim, cycle.optimiser)
    return optimiser_class([interior], lr=cycle.lr, **cycle.optimiser_args)


def _carry_state(old: dict[str, Any], old_shape: torch.Size, rows: list[int], new_shape: torch.Size) -> dict[str, Any]:
    """Move per-pivot optimiser state (momentum, ...) to a band with new pivots:
    old interior row j goes to new row rows[j], new pivots start from zero."""
    carried: dict[str, Any] = {}
    for key, value in old.items():
        if isinstance(value, Tensor) and value.shape == old_shape:
            moved = value.new_zeros(new_shape)
            moved[rows] = value
            carried[key] = moved
        else:
            carried[key] = value
    return carried


class Connection(PathRun):
    """AutoNEB between ``start`` and ``end`` (flat parameter vectors, (D,) each)."""

    method = "autoneb"

    def __init__(
        self,
        energy: Energy,
        schedule: Schedule,
        start: Tensor,
        end: Tensor,
        *,
        pair: tuple[int, int] = (0, 1),
        seed: int = 0,
        on_event: EventSink = events.ignore,
        device: torch.device | str | None = None,
    ):
        # Where the band, its optimiser state and the random draws live: the energy's
        # device unless told (a surface has none: the end points' device).
        if device is None:
            device = getattr(energy, "device", None) or start.device
        super().__init__(energy, schedule, start, end, pair=pair, seed=seed, on_event=on_event, device=device)
        # self.cycle: index into schedule.cycles; self.step: steps done in the current cycle
        self.options = schedule.band
        self.tangent = TANGENTS[self.options.tangent]
        self.strategy = band_strategy(self.options.spring, self.options.respace)  # springs or the string method
        # the band
        self.pivots: Tensor | None = None  # (N, D)
        self.fractions: Tensor | None = None  # (N,) target arc-length fractions
        self.interior: torch.nn.Parameter | None = None  # view of pivots[1:-1]
        self.optimiser: Optimiser | None = None
        self.last_dense: Tensor | None = None  # (M,) dense losses at the end of the last cycle
        self._last_climber: Tensor | int | None = None  # the last step's climbing image (re-spacing "before")
        self._equal_fractions: Tensor | None = None  # equal_fraction_table(N) on the device
        self._unchecked: list[Tensor] = []  # the losses (N,) of the steps since the last divergence check
        # what has been learnt, beyond what every path run keeps
        self.restart_best: _Best | None = None
        self.overall_best: _Best | None = None
        self.best_restart = 0
        self.restart_saddles: list[float] = []

    @property
    def cycles(self) -> int:
        return len(self.schedule.cycles)

    @property
    def restarts(self) -> int:
        return self.options.restarts

    # --- running --------------------------------------------------------------

    def _advance(self, should_stop: StopRequest | None) -> bool:
        """Every restart's cycles, each cycle's steps, until done or told to stop."""
        cycles = self.schedule.cycles
        while self.restart < self.options.restarts:
            while self.cycle < len(cycles):
                cycle = cycles[self.cycle]
                if not self.cycle_started:
                    self._begin_cycle(cycle)
                while self.step < cycle.steps:
                    if should_stop is not None and should_stop():
                        self._check_divergence(cycle)
                        return False
                    # The whole step (band arithmetic too) at the energy's measured thread
                    # count, where it has one (engine.threads).
                    with intra_op_threads(getattr(self.energy, "threads_used", None)):
                        self._neb_step(cycle)
                self._end_cycle(cycle)
            self._end_restart()
        return True

    def _emit(self, event: events.Event) -> None:
        self.on_event(event)

    def _linear_profile(self) -> Profile:
        count = (self.options.initial_pivots + 1) * (self.options.dense_points + 1) + 1
        points = linear_path(self.start, self.end, count)
        losses = self._evaluate(points)
        positions = torch.linspace(0.0, 1.0, count, dtype=torch.float64)
        return Profile(positions.tolist(), [float(v) for v in losses])

    def _set_band(self, pivots: Tensor, fractions: Tensor) -> None:
        self.pivots = pivots.to(self.device)
        self.fractions = fractions.to(self.device, torch.float64)
        self._last_climber = None  # rows moved: no climbing image carried into the new band
        self._equal_fractions = equal_fraction_table(pivots.shape[0], self.device)
        self.interior = torch.nn.Parameter(self.pivots[1:-1])  # shares storage: optimiser steps move the band

    def _initial_band(self) -> None:
        count = self.options.initial_pivots + 2
        pivots = linear_path(self.start, self.end, count)
        if self.restart > 0 and self.options.restart_noise > 0:
            distance = (self.end - self.start).norm()
            noise = torch.randn(
                count - 2, pivots.shape[1], generator=self.generator, dtype=torch.float64, device=self.device
            )
            scale = self.options.restart_noise * distance / math.sqrt(pivots.shape[1])
            pivots[1:-1] += (noise * scale).to(pivots.dtype)
        self._set_band(pivots, torch.linspace(0.0, 1.0, count, dtype=torch.float64))

    def _begin_cycle(self, cycle: Cycle) -> None:
        old_interior = self.interior
        kept_rows: list[int] | None = None
        if self.pivots is None:
            self._initial_band()
        elif cycle.insert and self.last_dense is not None:
            kept_rows = self._insert(cycle)
        assert self.pivots is not None and self.interior is not None
        old_optimiser = self.optimiser
        self.optimiser = _make_optimiser(cycle, self.interior)
        carry = (
            not self.options.reset_optimiser
            and old_optimiser is not None
            and old_interior is not None
            and type(old_optimiser) is type(self.optimiser)
        )
        if carry:
            old_state = old_optimiser.state.get(old_interior, {})  # type: ignore[union-attr]
            rows = kept_rows if kept_rows is not None else list(range(old_interior.shape[0]))  # type: ignore[union-attr]
            self.optimiser.state[self.interior] = _carry_state(
                old_state, old_interior.shape, rows, self.interior.shape  # type: ignore[union-attr]
            )
        self._cycle_started(steps=cycle.steps, lr=cycle.lr, optimiser=cycle.optimiser, batch_size=cycle.batch_size,
                            insert=cycle.insert, climb=cycle.climb, pivots=self.pivots.shape[0])

    def _insert(self, cycle: Cycle) -> list[int] | None:
        """Insert pivots by the residual rule; returns where the old interior rows went."""
        assert self.pivots is not None and self.fractions is not None and self.last_dense is not None
        room = self.options.max_pivots - self.pivots.shape[0]
        limit = room if cycle.max_insert is None else min(room, cycle.max_insert)
        if limit <= 0:
            return None
        chosen = choose_insertions(
            self.last_dense,
            self.options.dense_points,
            threshold=self.options.insertion_threshold,
            scale=self.options.insertion_scale,
            rule=self.options.insertion_rule,
            limit=limit,
        )
        if not chosen:
            return None
        pivots, fractions, new_indices = insert_pivots(self.pivots, self.fractions, chosen)
        if self.options.spacing == "equal":
            fractions = torch.linspace(0.0, 1.0, pivots.shape[0], dtype=torch.float64)
        self._set_band(pivots, fractions)
        new = set(new_indices)
        kept_rows = [i - 1 for i in range(1, pivots.shape[0] - 1) if i not in new]
        positions = dense_fractions(pivots, 0)
        self._emit(
            events.PivotsInserted(
                pair=self.pair,
                restart=self.restart,
                cycle=self.cycle + 1,
                positions=[float(positions[i]) for i in new_indices],
                pivots=pivots.shape[0],
            )
        )
        return kept_rows

    def _neb_step(self, cycle: Cycle) -> None:
        """One NEB step: the energy at every pivot, then the band arithmetic as a few
        operations on the band's device (no value read back to the host)."""
        assert self.pivots is not None and self.interior is not None and self.optimiser is not None
        pivots = self.pivots  # (N, D)
        # The string method re-spacing "before" re-spaces here, as the authors' code does at
        # the start of each step (its NEB.apply), so the band it ends a cycle with is the
        # optimiser's, not re-spaced; nebtui's default re-spaces after the optimiser step.
        # The two differ by about 1e-4 relative in the pivots and not in the insertions
        # (measured against the authors' public code). The climbing image, which that code
        # does not have, is the previous step's.
        self.strategy.before_gradients(self._respace, self._last_climber)
        # every pivot's loss, the gradients of the interior only: the ends are fixed
        losses, interior_grads = self._gradients(pivots, cycle.batch_size, fixed_ends=True)  # (N,), (N-2, D)
        self._unchecked.append(losses)
        emit = (self.step + 1) % self.options.energy_every == 0 or self.step + 1 == cycle.steps
        # where the losses were taken: the band before the update moves it (N,)
        positions = arc_fractions(pivots) if emit else None
        if self.options.weight_decay:
            interior_grads = interior_grads + self.options.weight_decay * pivots[1:-1]
        segments = Segments(pivots)
        tangents = self.tangent(pivots, losses, segments)  # (N-2, D)
        climber = 1 + torch.argmax(losses[1:-1]) if cycle.climb else None  # () on the device
        self.interior.grad = self.strategy.directions(interior_grads, tangents, segments, climber).to(self.interior.dtype)
        self.optimiser.step()
        self._last_climber = climber
        self.strategy.after_update(self._respace, climber)
        self.step += 1
        if emit or len(self._unchecked) >= CHECK_EVERY:
            self._check_divergence(cycle)
        if positions is not None:
            self._step_energies(self.step, [float(v) for v in losses.tolist()], positions.tolist())

    def _check_divergence(self, cycle: Cycle) -> None:
        """Raise DivergedError, naming the first step whose loss was NaN or infinite,
        if any step since the last check had one (one read-back for all of them)."""
        if not self._unchecked:
            return
        unchecked, self._unchecked = self._unchecked, []
        finite = torch.isfinite(torch.stack(unchecked)).all(dim=1).tolist()
        if all(finite):
            return
        first = finite.index(False)
        step = self.step - len(unchecked) + first  # 0-based in the cycle
        raise DivergedError(
            f"the band diverged (loss {unchecked[first].max().item()}) in cycle {self.cycle + 1}, step {step + 1} "
            f"of pair {self.pair}: lower the learning rate (it is {cycle.lr})"
        )

    def _respace(self, climber: Tensor | int | None) -> None:
        """String method: move the pivots back to their target spacing along the path
        (each side of a climbing image separately, so that it stays where it climbs)."""
        assert self.pivots is not None and self.fractions is not None and self._equal_fractions is not None
        split = None if climber is None else torch.as_tensor(climber, device=self.device)
        fractions = None if self.options.spacing == "equal" else self.fractions
        with torch.no_grad():  # written straight into the interior rows
            respaced_interior(
                self.pivots, Segments(self.pivots), fractions, self._equal_fractions, split, out=self.pivots[1:-1]
            )

    def _end_cycle(self, cycle: Cycle) -> None:
        self._check_divergence(cycle)
        assert self.pivots is not None
        between = self.options.dense_points
        points = dense_points(self.pivots, between)
        dense_losses = self._evaluate(points).detach().to(torch.float64).cpu()
        positions = dense_fractions(self.pivots, between)
        profile = Profile(positions.tolist(), dense_losses.tolist())
        record = CycleRecord(
            restart=self.restart,
            cycle=self.cycle + 1,
            pivots=self.pivots.shape[0],
            saddle_energy=profile.saddle_energy,
            saddle_position=profile.saddle_position,
            profile=profile,
            pivot_positions=positions[:: between + 1].tolist(),
            pivot_losses=dense_losses[:: between + 1].tolist(),
        )
        self.last_dense = dense_losses
        keep = (
            self.restart_best is None
            or self.options.select == "last"
            or record.saddle_energy < self.restart_best.record.saddle_energy
        )
        if keep:
            self.restart_best = _Best(record, self.pivots.detach().cpu().clone(), dense_losses)
        converged = self._converged(record)
        self._cycle_finished(record, converged)
        if converged:  # this restart's remaining cycles are skipped
            self.cycle = len(self.schedule.cycles)
        self.step = 0

    def _converged(self, record: CycleRecord) -> bool:
        """Whether the band has settled (band options ``converge_change`` and
        ``converge_cycles``): over the last ``converge_cycles`` cycles of this restart,
        ``record``'s included, it gained no pivot and its saddle moved at each cycle end
        by less than ``converge_change`` of its previous value. Decided from the records
        alone, so a resumed run decides as an uninterrupted one."""
        change, needed = self.options.converge_change, self.options.converge_cycles
        if change <= 0 or record.cycle == len(self.schedule.cycles):
            return False
        records = [r for r in self.history if r.restart == self.restart] + [record]
        if len(records) <= needed:
            return False
        recent = records[-needed - 1:]
        return all(new.pivots == old.pivots and abs(new.saddle_energy - old.saddle_energy) < change * abs(old.saddle_energy)
                   for old, new in zip(recent, recent[1:]))

    def _end_restart(self) -> None:
        assert self.restart_best is not None
        saddle = self.restart_best.record.saddle_energy
        self.restart_saddles.append(saddle)
        if self.overall_best is None or saddle < self.overall_best.record.saddle_energy:
            self.overall_best = self.restart_best
            self.best_restart = self.restart
        self.restart += 1
        self.cycle = 0
        self.step = 0
        self.cycle_started = False
        self.pivots = self.fractions = self.interior = self.optimiser = None
        self.last_dense = None
        self.restart_best = None

    def _result(self) -> ConnectionResult:
        """The best band over all restarts, its profile and its saddle point."""
        best = self.overall_best
        assert best is not None and self.linear is not None
        record = best.record
        saddle_index = record.profile.saddle_index
        between = self.options.dense_points
        saddle_point = dense_points(best.pivots.cpu(), between)[saddle_index].clone()
        return ConnectionResult(
            pair=self.pair,
            pivots=best.pivots,
            pivot_positions=record.pivot_positions,
            pivot_losses=record.pivot_losses,
            profile=record.profile,
            saddle_point=saddle_point,
            linear=self.linear,
            history=self.history,
            restart_saddles=self.restart_saddles,
            best_restart=self.best_restart,
        )

    # --- state ----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: {"tensors": {name: Tensor}, "meta": JSON-able}."""
        tensors = self._state_tensors()
        meta = {
            **self._state_meta(),
            "restart": self.restart,
            "last_climber": None if self._last_climber is None else int(self._last_climber),
            "restart_saddles": self.restart_saddles,
            "best_restart": self.best_restart,
        }
        if self.pivots is not None:
            tensors["pivots"] = self.pivots
            tensors["fractions"] = self.fractions  # type: ignore[assignment]
        if self.last_dense is not None:
            tensors["last_dense"] = self.last_dense
        for name, best in (("restart_best", self.restart_best), ("overall_best", self.overall_best)):
            if best is not None:
                tensors[f"{name}.pivots"] = best.pivots
                tensors[f"{name}.dense"] = best.dense_losses
                meta[name] = asdict(best.record)
        if self.optimiser is not None and self.interior is not None:
            parts, saved = optimiser_state_parts(self.optimiser.state.get(self.interior, {}))
            groups = [{k: v for k, v in g.items() if k != "params"} for g in self.optimiser.param_groups]
            meta["optimiser"] = {"param_groups": groups, **saved}
            tensors.update(parts)
        return {"tensors": {k: v.detach().cpu().clone() for k, v in tensors.items()}, "meta": meta}

    @classmethod
    def from_state(
        cls,
        energy: Energy,
        schedule: Schedule,
        state: dict[str, Any],
        *,
        on_event: EventSink = events.ignore,
        device: torch.device | str | None = None,
    ) -> "Connection":
        """Rebuild a connection from ``state_dict()``; ``run()`` then continues it
        (on ``device``, the energy's by default, wherever the state was saved)."""
        tensors, meta = state["tensors"], state["meta"]
        saved = meta["schedule"]
        # A band option added since the state was saved takes its default there.
        defaults = Schedule(cycles=schedule.cycles).to_dict()["band"]
        saved = {**saved, "band": {**defaults, **saved.get("band", {})}}
        if saved != schedule.to_dict():
            raise ValueError("the saved connection ran a different schedule: resume it with the schedule it was started with")
        self = cls(
            energy, schedule, tensors["start"], tensors["end"],
            pair=tuple(meta["pair"]), seed=meta["seed"], on_event=on_event, device=device,
        )
        self._load_state(tensors, meta)
        self.restart = meta["restart"]
        self.restart_saddles = list(meta["restart_saddles"])
        self.best_restart = meta["best_restart"]
        if "pivots" in tensors:
            self._set_band(tensors["pivots"].clone(), tensors["fractions"].clone())
            self._last_climber = meta.get("last_climber")
        if "last_dense" in tensors:
            self.last_dense = tensors["last_dense"].clone()
        for name in ("restart_best", "overall_best"):
            if name in meta:
                best = _Best(CycleRecord.from_dict(meta[name]), tensors[f"{name}.pivots"].clone(), tensors[f"{name}.dense"].clone())
                setattr(self, name, best)
        if "optimiser" in meta and self.interior is not None:
            cycle = schedule.cycles[self.cycle]
            self.optimiser = _make_optimiser(cycle, self.interior)
            saved = meta["optimiser"]
            for group, saved_group in zip(self.optimiser.param_groups, saved["param_groups"]):
                group.update(saved_group)
            param_state: dict[str, Any] = dict(saved["scalars"])
            for key in saved["tensors"]:
                value = tensors[f"optimiser.{key}"]
                # per-pivot state (momentum, moments) moves with the band; scalars such as
                # Adam's step count stay where the optimiser keeps them (the CPU)
                on_band = value.shape == self.interior.shape
                param_state[key] = value.to(self.device, copy=True) if on_band else value.clone()
            self.optimiser.state[self.interior] = param_state
        if self.finished:
            self._finish(announce=False)
        return self

def connect(
    energy: Energy,
    start: Tensor,
    end: Tensor,
    schedule: Schedule,
    *,
    pair: tuple[int, int] = (0, 1),
    seed: int = 0,
    on_event: EventSink = events.ignore,
) -> ConnectionResult:
    """Run AutoNEB between two minima to the end of the schedule."""
    result = Connection(energy, schedule, start, end, pair=pair, seed=seed, on_event=on_event).run()
    assert result is not None
    return result

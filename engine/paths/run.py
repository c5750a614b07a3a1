"""One resumable run of a path method between two minima, and what every method shares.

A ``PathRun`` connects ``start`` and ``end`` (flat parameter vectors, (D,) each)
through an ``Energy``. ``run()`` honours a stop request at any step boundary and
returns None then; ``state_dict()`` holds everything (the end points, the random
state, where the run stands, what it has learnt; ``meta["method"]`` names the
method), and a run rebuilt with its class's ``from_state`` finishes bit for bit as
one that never stopped. Every method speaks the same events (a cycle started, a
step's energies, a cycle finished, the path finished) and ends with a
``ConnectionResult``: the chosen path as pivots, its dense profile and saddle, the
straight segment's profile for comparison, and the history of its cycles.

The methods (``engine.paths.autoneb``, ``engine.paths.curves``) write only their
own steps: how a cycle begins, runs and ends, what their state adds, and their
result.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

import engine.events as events
from engine.energy.base import Energy, Work, interior_gradients
from engine.events import EventSink

StopRequest = Callable[[], bool]


class DivergedError(RuntimeError):
    """The path's loss became NaN or infinite: the learning rate is too high for this energy."""


@dataclass
class Profile:
    """The loss along a path: positions are fractions of arc length, 0 .. 1."""

    positions: list[float]
    losses: list[float]

    @property
    def saddle_index(self) -> int:
        return max(range(len(self.losses)), key=lambda i: self.losses[i])

    @property
    def saddle_energy(self) -> float:
        return self.losses[self.saddle_index]

    @property
    def saddle_position(self) -> float:
        return self.positions[self.saddle_index]


@dataclass
class CycleRecord:
    """What one cycle left behind: the path's dense profile at its end."""

    restart: int
    cycle: int  # 1-based
    pivots: int
    saddle_energy: float
    saddle_position: float
    profile: Profile
    pivot_positions: list[float]
    pivot_losses: list[float]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CycleRecord":
        d = dict(d)
        d["profile"] = Profile(**d["profile"])
        return cls(**d)


@dataclass
class CostAccount:
    """What a run computed, counted as it computed it (the energy's own count of its
    work, ``engine.energy.base.Work``), in one unit for every method.

    ``units``: "samples" for a network (a forward of a minibatch of B samples at one
    point is B forward samples, its backward B backward samples), "points" for an
    analytic surface (one point's loss or gradient). ``steps_*``: the training steps'
    minibatch losses and gradients; ``evaluation_forward``: the path's dense
    evaluations (every point on the whole training set; the straight segment's too);
    ``recalibration_forward``: BatchNorm's statistics recomputed for each evaluated
    point. Seconds are wall-clock on ``devices`` (each device the run ran on):
    ``seconds`` the whole run, ``evaluation_seconds`` its dense evaluations with their
    recalibration, of which ``recalibration_seconds`` the recalibration; the steps'
    seconds are the rest. A saved state keeps the counts only (``to_dict(timed=False)``),
    so that a run stopped and resumed saves what one that never stopped saves: the
    seconds and devices of a resumed run are those since it was resumed (a session's
    report takes a path's seconds and devices from the session's log instead).
    """

    units: str = "points"
    steps_forward: int = 0
    steps_backward: int = 0
    evaluation_forward: int = 0
    recalibration_forward: int = 0
    seconds: float = 0.0
    evaluation_seconds: float = 0.0
    recalibration_seconds: float = 0.0
    devices: list[str] = field(default_factory=list)

    @property
    def steps_seconds(self) -> float:
        return max(0.0, self.seconds - self.evaluation_seconds)

    def add(self, work: Work) -> None:
        """Add what the energy's count says it did (``Work.since``)."""
        self.units = work.units
        self.steps_forward += work.step_forward
        self.steps_backward += work.step_backward
        self.evaluation_forward += work.evaluation_forward
        self.recalibration_forward += work.recalibration_forward
        self.recalibration_seconds += work.recalibration_seconds

    def to_dict(self, timed: bool = True) -> dict[str, Any]:
        """JSON-able, by phase: forward and backward passes (and, ``timed``, seconds) of
        the steps, of the dense evaluation and of BatchNorm's recalibration. Untimed, it
        is the same for a run however often it was stopped and resumed (the event log's)."""
        phases = {
            "steps": (self.steps_forward, self.steps_backward, self.steps_seconds),
            "evaluation": (self.evaluation_forward, 0, max(0.0, self.evaluation_seconds - self.recalibration_seconds)),
            "recalibration": (self.recalibration_forward, 0, self.recalibration_seconds),
        }
        out: dict[str, Any] = {"units": self.units}
        for name, (forward, backward, seconds) in phases.items():
            out[name] = {"forward": forward, "backward": backward, **({"seconds": seconds} if timed else {})}
        if timed:
            out.update(seconds=self.seconds, devices=list(self.devices))
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CostAccount":
        steps, evaluation, recalibration = d["steps"], d["evaluation"], d["recalibration"]
        return cls(
            units=d["units"], steps_forward=steps["forward"], steps_backward=steps["backward"],
            evaluation_forward=evaluation["forward"], recalibration_forward=recalibration["forward"],
            seconds=d.get("seconds", 0.0),
            evaluation_seconds=evaluation.get("seconds", 0.0) + recalibration.get("seconds", 0.0),
            recalibration_seconds=recalibration.get("seconds", 0.0), devices=list(d.get("devices", [])),
        )


def device_name(device: torch.device) -> str:
    """"cpu", or a GPU with its model: "cuda:0 (NVIDIA H100 80GB HBM3)"."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


@dataclass
class ConnectionResult:
    """The outcome of connecting two minima, by any method."""

    pair: tuple[int, int]
    pivots: Tensor  # (N, D), the chosen path
    pivot_positions: list[float]
    pivot_losses: list[float]
    profile: Profile  # dense profile of the chosen path
    saddle_point: Tensor  # (D,), where the profile peaks
    linear: Profile  # the straight segment between the minima, for comparison
    history: list[CycleRecord]  # every cycle of every restart
    restart_saddles: list[float]  # the saddle energy each restart reached
    best_restart: int
    # what the run computed (None: a run saved before runs counted their work)
    cost: CostAccount | None = field(default=None, kw_only=True)

    @property
    def saddle_energy(self) -> float:
        return self.profile.saddle_energy

    @property
    def saddle_position(self) -> float:
        return self.profile.saddle_position

    @property
    def linear_saddle_energy(self) -> float:
        return self.linear.saddle_energy


def optimiser_state_parts(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """One parameter's optimiser state in the form saved states keep it: its tensors
    named ``optimiser.KEY``, and JSON naming its scalars and its tensors' keys."""
    tensors = {f"optimiser.{k}": v for k, v in state.items() if isinstance(v, Tensor)}
    meta = {"scalars": {k: v for k, v in state.items() if not isinstance(v, Tensor)},
            "tensors": [k for k, v in state.items() if isinstance(v, Tensor)]}
    return tensors, meta


def seed_for_pair(seed: int, pair: tuple[int, int]) -> int:
    """A pair's own seed: its result does not depend on the order pairs are run in."""
    a, b = pair
    return (seed * 1_000_003 + a * 10_007 + b * 101) % (2**63 - 1)


def check_point(energy: Energy, name: str, point: Tensor) -> None:
    """A ValueError with one line unless ``point`` is a finite flat vector (D,) of the energy."""
    if point.dim() != 1 or point.shape[0] != energy.dim:
        raise ValueError(f"{name} must be a flat vector of {energy.dim} entries, got shape {tuple(point.shape)}")
    if not bool(torch.isfinite(point).all()):
        raise ValueError(f"{name} holds NaN or infinite entries")


class PathRun(ABC):
    """A path method's run between ``start`` and ``end`` (flat vectors, (D,) each).

    Where it stands: ``restart`` (0 for a method without restarts), ``cycle`` (index
    of the current cycle), ``step`` (steps done), ``cycle_started``, ``finished``;
    what it has learnt: ``linear`` (the straight segment's profile), ``history``
    (a ``CycleRecord`` per finished cycle) and, once finished, ``result``.
    """

    method: str  # the name the registry knows the method by (a class's or, for curves, the kind), in every saved state

    def __init__(
        self,
        energy: Energy,
        schedule: Any,
        start: Tensor,
        end: Tensor,
        *,
        pair: tuple[int, int],
        seed: int,
        on_event: EventSink,
        device: torch.device,
        generator_device: torch.device | str | None = None,
    ):
        check_point(energy, "start", start)
        check_point(energy, "end", end)
        self.energy = energy
        self.schedule = schedule
        self.device = torch.device(device)
        self.start = start.detach().to(self.device, copy=True)
        self.end = end.detach().to(self.device, copy=True)
        self.pair = (int(pair[0]), int(pair[1]))
        self.seed = seed
        self.on_event = on_event
        # the random draws (points, batches, noise): on the run's device unless told
        self.generator = torch.Generator(device=self.device if generator_device is None else generator_device)
        self.generator.manual_seed(seed)
        # where the run stands
        self.restart = 0
        self.cycle = 0
        self.step = 0
        self.cycle_started = False
        self.finished = False
        # what has been learnt
        self.linear: Profile | None = None
        self.history: list[CycleRecord] = []
        self.result: ConnectionResult | None = None
        # what it has computed (None: resumed from a state saved before runs counted it)
        self.cost: CostAccount | None = CostAccount()

    # --- what a method writes -------------------------------------------------

    @property
    @abstractmethod
    def cycles(self) -> int:
        """Cycles in one restart of the run."""

    @property
    @abstractmethod
    def restarts(self) -> int:
        """Restarts of the whole run (1: none)."""

    @abstractmethod
    def _linear_profile(self) -> Profile:
        """The straight segment's profile, for comparison."""

    @abstractmethod
    def _advance(self, should_stop: StopRequest | None) -> bool:
        """Run steps until the last is done (True) or ``should_stop()`` at a step boundary (False)."""

    @abstractmethod
    def _result(self) -> ConnectionResult:
        """The result of the finished run, from what it has learnt."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: {"tensors": {name: Tensor}, "meta": JSON-able}."""

    @classmethod
    @abstractmethod
    def from_state(cls, energy: Energy, schedule: Any, state: dict[str, Any], *,
                   on_event: EventSink = events.ignore) -> "PathRun":
        """The run rebuilt from ``state_dict()``; ``run()`` then continues it."""

    # --- running --------------------------------------------------------------

    def run(self, should_stop: StopRequest | None = None) -> ConnectionResult | None:
        """Run to the end, or until ``should_stop()`` is true at a step boundary
        (then return None; ``state_dict()`` holds where it stands)."""
        if self.finished:
            return self.result
        started = time.perf_counter()
        if self.cost is not None:
            where = device_name(torch.device(getattr(self.energy, "device", None) or self.device))
            if where not in self.cost.devices:
                self.cost.devices.append(where)
        try:
            if self.linear is None:
                self.linear = self._linear_profile()
            if not self._advance(should_stop):
                return None
        finally:
            if self.cost is not None:
                self.cost.seconds += time.perf_counter() - started
        return self._finish(announce=True)

    # --- what the energy is asked, counted ----------------------------------------

    def _counted(self, ask: Callable[[], Any], points: int, gradients: int, evaluation: bool) -> Any:
        """``ask()`` of the energy, its work added to the account: the energy's own count
        where it keeps one (``work``), else ``points`` losses and ``gradients`` gradients."""
        counter: Work | None = getattr(self.energy, "work", None)
        before = counter.copy() if counter is not None else None
        started = time.perf_counter()
        out = ask()
        if self.cost is not None:
            if counter is not None and before is not None:
                self.cost.add(counter.since(before))
            else:
                self.cost.add(Work("points", step_forward=0 if evaluation else points,
                                   step_backward=gradients, evaluation_forward=points if evaluation else 0))
            if evaluation:
                self.cost.evaluation_seconds += time.perf_counter() - started
        return out

    def _gradients(self, points: Tensor, batch_size: int | None, fixed_ends: bool = False) -> tuple[Tensor, Tensor]:
        """Losses (N,) and gradients of ``points`` (N, D) on minibatches from the run's
        generator: (N, D), or (N-2, D) of the interior of a band with ``fixed_ends``."""
        if fixed_ends:
            return self._counted(lambda: interior_gradients(self.energy, points, self.generator, batch_size),
                                 points.shape[0], points.shape[0], evaluation=False)
        return self._counted(lambda: self.energy(points, generator=self.generator, batch_size=batch_size),
                             points.shape[0], points.shape[0], evaluation=False)

    def _evaluate(self, points: Tensor) -> Tensor:
        """The deterministic losses (M,) of ``points`` (M, D): a dense evaluation."""
        return self._counted(lambda: self.energy.evaluate(points), points.shape[0], 0, evaluation=True)

    def _finish(self, announce: bool) -> ConnectionResult:
        self.result = self._result()
        self.result.cost = self.cost
        self.finished = True
        if announce:
            self.on_event(
                events.ConnectionFinished(
                    pair=self.pair,
                    saddle_energy=self.result.saddle_energy,
                    saddle_position=self.result.saddle_position,
                    linear_saddle_energy=self.result.linear_saddle_energy,
                    pivots=self.result.pivots.shape[0],
                    cycles=self.cycles,
                    restarts=self.restarts,
                    cost=None if self.cost is None else self.cost.to_dict(timed=False),
                )
            )
        return self.result

    # --- the events every method speaks -----------------------------------------

    def _cycle_started(self, *, steps: int, lr: float, optimiser: str, batch_size: int | None,
                       insert: bool, climb: bool, pivots: int) -> None:
        self.cycle_started = True
        self.on_event(
            events.CycleStarted(
                pair=self.pair, restart=self.restart, cycle=self.cycle + 1, cycles=self.cycles, steps=steps,
                lr=lr, optimiser=optimiser, batch_size=batch_size, insert=insert, climb=climb, pivots=pivots,
            )
        )

    def _step_energies(self, step: int, losses: list[float], positions: list[float]) -> None:
        self.on_event(
            events.StepEnergies(pair=self.pair, restart=self.restart, cycle=self.cycle + 1, step=step,
                                losses=losses, positions=positions)
        )

    def _cycle_finished(self, record: CycleRecord, converged: bool = False) -> None:
        """Keep the cycle's record, say so (``converged``: the run ends after it), and move
        to the next cycle."""
        self.history.append(record)
        self.on_event(
            events.CycleFinished(
                pair=self.pair,
                restart=record.restart,
                cycle=record.cycle,
                positions=record.profile.positions,
                losses=record.profile.losses,
                pivot_positions=record.pivot_positions,
                pivot_losses=record.pivot_losses,
                saddle_energy=record.saddle_energy,
                saddle_position=record.saddle_position,
                converged=converged,
            )
        )
        self.cycle += 1
        self.cycle_started = False

    # --- state ----------------------------------------------------------------

    def _state_meta(self) -> dict[str, Any]:
        """The saved state's meta every method keeps."""
        return {
            "method": self.method,
            "pair": list(self.pair),
            "seed": self.seed,
            "schedule": self.schedule.to_dict(),
            "cycle": self.cycle,
            "step": self.step,
            "cycle_started": self.cycle_started,
            "finished": self.finished,
            "linear": asdict(self.linear) if self.linear is not None else None,
            "history": [asdict(r) for r in self.history],
            "energy": self.energy.state_dict() if hasattr(self.energy, "state_dict") else None,
            # the counts only: a run stopped and resumed saves the same state as one that never stopped
            "cost": None if self.cost is None else self.cost.to_dict(timed=False),
        }

    def _state_tensors(self) -> dict[str, Tensor]:
        """The saved state's tensors every method keeps."""
        return {"start": self.start, "end": self.end, "rng": self.generator.get_state()}

    def _load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Where the run stood and what it had learnt, from ``_state_meta`` and ``_state_tensors``."""
        self._load_generator(tensors["rng"])
        self.cycle, self.step = meta["cycle"], meta["step"]
        self.cycle_started, self.finished = meta["cycle_started"], meta["finished"]
        self.linear = Profile(**meta["linear"]) if meta["linear"] is not None else None
        self.history = [CycleRecord.from_dict(r) for r in meta["history"]]
        # a state saved before runs counted their work has no account: it stays unknown
        self.cost = CostAccount.from_dict(meta["cost"]) if meta.get("cost") is not None else None
        if meta.get("energy") is not None and hasattr(self.energy, "load_state_dict"):
            self.energy.load_state_dict(meta["energy"])

    def _load_generator(self, state: Tensor) -> None:
        """Restore the random state. A state of another kind of generator (saved where
        the draws ran on the CPU, resumed on a GPU) keeps drawing on that kind, so that
        the run continues with the draws it would have made."""
        try:
            self.generator.set_state(state)
        except RuntimeError as error:
            if self.generator.device.type == "cpu":
                raise ValueError(
                    "the saved random state is a GPU generator's: resume this run on a GPU"
                ) from error
            self.generator = torch.Generator()
            self.generator.set_state(state)

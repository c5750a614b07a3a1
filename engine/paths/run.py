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

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import Tensor

import engine.events as events
from engine.energy.base import Energy
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
        if self.linear is None:
            self.linear = self._linear_profile()
        if not self._advance(should_stop):
            return None
        return self._finish(announce=True)

    def _finish(self, announce: bool) -> ConnectionResult:
        self.result = self._result()
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

    def _cycle_finished(self, record: CycleRecord) -> None:
        """Keep the cycle's record, say so, and move to the next cycle."""
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

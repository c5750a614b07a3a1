"""Fakes for the app tests: logged events of a small three-minimum session with
fixed times, a source fed in steps, a control that records, a fixed status."""

from __future__ import annotations

import asyncio
import functools
import math
import time
from typing import Any, Callable

import pytest

from engine.events import (
    ConnectionFinished,
    CycleFinished,
    CycleStarted,
    Event,
    LandscapeFinished,
    MSTEdgeAdded,
    MSTEdgeReplaced,
    PairChosen,
    PivotsInserted,
    StepEnergies,
)
from sessions.disk.config import PartialConfig
from sessions.disk.eventlog import LoggedEvent
from sessions.events import (
    CheckpointWritten,
    ControlReceived,
    RunnerStarted,
    SessionEstimated,
    SessionFinished,
    SessionPaused,
    WorkerStarted,
)

SCHEDULE = {
    "name": "test",
    "band": {"restarts": 1, "spacing": "equal"},
    "phase": [
        {"repeat": 2, "steps": 20, "lr": 0.01, "optimiser": "SGD", "optimiser_args": {"momentum": 0.9},
         "batch_size": None, "insert": True, "climb": False, "max_insert": None},
        {"repeat": 1, "steps": 20, "lr": 0.001, "optimiser": "SGD", "optimiser_args": {"momentum": 0.9},
         "batch_size": None, "insert": True, "climb": False, "max_insert": None},
    ],
}


def config_with(**fields: Any) -> PartialConfig:
    """The fake session's config (SCHEDULE, unless given), as the app reads config.json."""
    return PartialConfig.from_dict({"schedule": SCHEDULE, **fields})


CONFIG = config_with()
MINIMA = {0: -10.0, 1: -8.0, 2: -6.0}
# final saddle of each pair after its 3 cycles, and the linear segment's saddle
SADDLES = {(0, 1): -2.0, (0, 2): -3.0, (1, 2): -4.0}
LINEAR = {(0, 1): 5.0, (0, 2): 4.0, (1, 2): 3.0}


def profile(pair: tuple[int, int], height: float, points: int) -> tuple[list[float], list[float]]:
    """A bump between the two minima: E_a (1 - x) + E_b x + height sin(pi x)."""
    a, b = MINIMA[pair[0]], MINIMA[pair[1]]
    xs = [i / (points - 1) for i in range(points)]
    return xs, [a * (1 - x) + b * x + height * math.sin(math.pi * x) for x in xs]


class Events:
    """Logs events with seq and fixed times (0.5 s apart), as the runner's log would."""

    def __init__(self) -> None:
        self.events: list[LoggedEvent] = []

    def add(self, event: Event) -> Event:
        seq = len(self.events)
        self.events.append(LoggedEvent(seq, 1_000.0 + 0.5 * seq, event))
        return event

    def connection(self, pair: tuple[int, int], cycles: int = 3, stop_after: tuple[int, int] | None = None) -> float | None:
        """A connection's events; stops after (cycle, step) if given. Its saddle when it finished."""
        final = SADDLES[pair] - (MINIMA[pair[0]] + MINIMA[pair[1]]) / 2
        pivots = 5
        for cycle in range(1, cycles + 1):
            lr = 0.01 if cycle <= 2 else 0.001
            if cycle > 1:
                pivots += 2
                self.add(PivotsInserted(pair=pair, restart=0, cycle=cycle, positions=[0.3, 0.7], pivots=pivots))
            self.add(CycleStarted(pair=pair, restart=0, cycle=cycle, cycles=cycles, steps=20, lr=lr, optimiser="SGD",
                                  batch_size=None, insert=True, climb=False, pivots=pivots))
            height = final + (cycles - cycle) * 1.0  # the saddle comes down cycle by cycle
            for step in (10, 20):
                _, losses = profile(pair, height + 0.5 * (20 - step) / 10, pivots)
                self.add(StepEnergies(pair=pair, restart=0, cycle=cycle, step=step, losses=losses))
                if stop_after == (cycle, step):
                    return None
            xs, dense = profile(pair, height, 4 * (pivots - 1) + 1)
            px, pl = profile(pair, height, pivots)
            top = max(range(len(dense)), key=dense.__getitem__)
            last = self.add(CycleFinished(pair=pair, restart=0, cycle=cycle, positions=xs, losses=dense,
                                          pivot_positions=px, pivot_losses=pl, saddle_energy=dense[top],
                                          saddle_position=xs[top]))
        self.add(ConnectionFinished(pair=pair, saddle_energy=last.saddle_energy, saddle_position=last.saddle_position,
                                    linear_saddle_energy=LINEAR[pair], pivots=pivots, cycles=cycles, restarts=1))
        return last.saddle_energy


def running_events() -> list[LoggedEvent]:
    """Pair (0, 1) done and in the MST; pair (0, 2) in cycle 2 at step 10."""
    e = Events()
    e.add(SessionEstimated(device="cpu", workers=1, threads=1, step_points=5, step_seconds=0.002,
                           point_seconds=0.001, pair_seconds=[6.0, 9.0], pairs=[3, 3], seconds=[18.0, 27.0],
                           done=0, cycle_steps=[20, 20, 20], restarts=1))
    e.add(RunnerStarted(pid=4242, devices=["cpu"], resumed=False, pairs_done=0))
    e.add(WorkerStarted(worker=0, device="cpu", pid=4243))
    e.add(PairChosen(pair=(0, 1), reason="initial", attacked_edge=None))
    e.add(PairChosen(pair=(0, 2), reason="initial", attacked_edge=None))
    s01 = e.connection((0, 1))
    e.add(MSTEdgeAdded(a=0, b=1, saddle_energy=s01))
    e.connection((0, 2), stop_after=(2, 10))
    return e.events


def paused_events() -> list[LoggedEvent]:
    e = Events()
    e.events = running_events()
    e.add(ControlReceived(command="pause", accepted=True, detail="pausing at the next step boundary"))
    e.add(CheckpointWritten(reason="pause", seconds=0.01, size=1000, running=[[0, 2]]))
    e.add(SessionPaused(running=[[0, 2]]))
    return e.events


def finished_events() -> list[LoggedEvent]:
    e = Events()
    e.add(RunnerStarted(pid=4242, devices=["cpu"], resumed=False, pairs_done=0))
    e.add(PairChosen(pair=(0, 1), reason="initial", attacked_edge=None))
    e.add(PairChosen(pair=(0, 2), reason="initial", attacked_edge=None))
    s01 = e.connection((0, 1))
    e.add(MSTEdgeAdded(a=0, b=1, saddle_energy=s01))
    s02 = e.connection((0, 2))
    e.add(MSTEdgeAdded(a=0, b=2, saddle_energy=s02))
    e.add(PairChosen(pair=(1, 2), reason="replace", attacked_edge=[0, 1]))
    s12 = e.connection((1, 2))
    e.add(MSTEdgeReplaced(removed=[0, 1], removed_energy=s01, added=[1, 2], added_energy=s12))
    mst = [[0, 2, s02], [1, 2, s12]]
    e.add(LandscapeFinished(reason="all_pairs", mst=mst))
    e.add(SessionFinished(reason="all_pairs", pairs_done=3, mst=mst))
    return e.events


class FakeSource:
    """Hands out the events given to ``feed``; poll never blocks."""

    def __init__(self, events: list[LoggedEvent] | None = None) -> None:
        self.pending: list[LoggedEvent] = list(events or [])

    def feed(self, events: list[LoggedEvent]) -> None:
        self.pending.extend(events)

    def poll(self) -> list[LoggedEvent]:
        out, self.pending = self.pending, []
        return out


class FakeControl:
    """Records commands; answers as the runner does, or raises ``error``."""

    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[str] = []
        self.error = error

    def send(self, command: str) -> dict[str, Any]:
        self.sent.append(command)
        if self.error is not None:
            raise self.error
        return {"ok": True, "accepted": True, "detail": f"{command} accepted", "status": "running"}


class FixedStatus:
    """A status probe that says what the test sets."""

    def __init__(self, status: str = "running") -> None:
        self.status = status

    def __call__(self) -> tuple[str, int | None]:
        return self.status, 4242


async def wait_until(pilot, condition: Callable[[], bool], timeout: float = 10.0, what: str = "",
                     seen: Callable[[], str] | None = None) -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout`` seconds, saying
    what ``seen()`` reports of the app then."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what or condition}"
                        + (f"; seen: {seen()}" if seen is not None else ""))
        await pilot.pause(0.05)
    await asyncio.sleep(0)


def app_test(test: Callable[..., Any]) -> Callable[..., Any]:
    """Run an async test body in its own event loop (no async plugin needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(test(*args, **kwargs))

    return run

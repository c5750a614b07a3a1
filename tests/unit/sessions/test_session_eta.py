"""The session's ETA (SessionView.eta): the runner's estimate before the first pair,
then the pairs in flight at their own step rates and the pairs left at what the pairs
finished since took."""

from __future__ import annotations

import pytest

from engine.events import ConnectionFinished, CycleStarted, StepEnergies
from sessions.disk.eventlog import LoggedEvent
from sessions.events import RunnerStarted, SessionEstimated, SessionFinished, SessionPaused
from sessions.view import SessionView

ESTIMATE = SessionEstimated(
    device="cpu", workers=1, threads=2, step_points=5, step_seconds=0.01, point_seconds=0.001,
    pair_seconds=[10.0, 20.0], pairs=[3, 3], seconds=[30.0, 60.0], done=0, cycle_steps=[10, 10], restarts=1,
)


class Log:
    """A view fed events at given times, as a replay of the log would."""

    def __init__(self) -> None:
        self.view = SessionView()
        self.seq = 0

    def at(self, time: float, event) -> SessionView:
        self.view.apply(LoggedEvent(self.seq, time, event))
        self.seq += 1
        return self.view


def cycle(pair, number):
    return CycleStarted(pair=pair, restart=0, cycle=number, cycles=2, steps=10, lr=0.1, optimiser="SGD",
                        batch_size=None, insert=True, climb=False, pivots=5)


def step(pair, number, cycle_number=1):
    return StepEnergies(pair=pair, restart=0, cycle=cycle_number, step=number, losses=[0.0] * 5)


def finished(pair):
    return ConnectionFinished(pair=pair, saddle_energy=1.0, saddle_position=0.5, linear_saddle_energy=2.0,
                              pivots=5, cycles=2, restarts=1)


def test_before_the_first_pair_the_estimate_is_the_eta():
    log = Log()
    assert log.at(100.0, ESTIMATE).eta() is None  # no runner running yet
    assert log.at(101.0, RunnerStarted(pid=1, devices=["cpu"], resumed=False)).eta() == (30.0, 60.0)


def test_a_pair_in_flight_finishes_at_its_own_step_rate():
    log = Log()
    log.at(100.0, ESTIMATE)
    log.at(101.0, RunnerStarted(pid=1, devices=["cpu"], resumed=False))
    log.at(102.0, cycle((0, 1), 1))
    log.at(102.0, step((0, 1), 1))
    view = log.at(103.0, step((0, 1), 6))  # 5 steps a second; 14 of its 20 left: 2.8 s
    low, high = view.eta()
    assert low == pytest.approx(2.8 + 2 * 10.0) and high == pytest.approx(2.8 + 2 * 20.0)
    low, high = view.eta(now=104.0)  # a second later, no step seen: a second less
    assert low == pytest.approx(1.8 + 2 * 10.0)


def test_pairs_finished_since_the_estimate_refine_it():
    log = Log()
    log.at(100.0, ESTIMATE)
    log.at(101.0, RunnerStarted(pid=1, devices=["cpu"], resumed=False))
    log.at(102.0, cycle((0, 1), 1))
    view = log.at(114.0, finished((0, 1)))  # took 12 s: the 2 pairs left take 24 s
    assert view.eta() == (pytest.approx(24.0), pytest.approx(24.0))


def test_only_a_running_session_has_an_eta():
    log = Log()
    log.at(100.0, ESTIMATE)
    log.at(101.0, RunnerStarted(pid=1, devices=["cpu"], resumed=False))
    assert log.at(102.0, SessionPaused()).eta() is None
    log = Log()
    log.at(100.0, ESTIMATE)
    log.at(101.0, RunnerStarted(pid=1, devices=["cpu"], resumed=False))
    assert log.at(102.0, SessionFinished(reason="all_pairs", pairs_done=3)).eta() is None

"""Where a step's losses were taken (StepEnergies.positions): a band's pivots as
fractions of its arc length at that step, a curve's values of t, in the order of
the losses; a step written before steps carried positions still reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine import events
from engine.paths.curves import CurveFit
from engine.paths.curve_schedule import CurveSchedule
from engine.energy.base import CallableEnergy
from engine.energy.surfaces import MuellerBrown
from engine.paths.autoneb import Connection
from engine.band.geometry import arc_fractions
from engine.paths.schedule import BandOptions, Cycle, Schedule
from sessions.disk.eventlog import EventLogReader, EventLogWriter, read_log

OLD_SESSION = Path(__file__).parents[1] / "functional" / "data" / "sessions-2026-12" / "stopped"


def wells(x):
    """A double well per axis, tilted: minima near (+-1, +-1)."""
    return ((x**2 - 1) ** 2).sum(dim=1) + 0.1 * x[:, 0]


class Recorder:
    """The events a run sends, and before each of its steps (its stop check) what it holds then."""

    def __init__(self, held):
        self.held = held  # () -> what to keep before a step
        self.before: list = []
        self.events: list[events.Event] = []

    def should_stop(self) -> bool:
        self.before.append(self.held())
        return False

    def steps(self) -> list[events.StepEnergies]:
        return [e for e in self.events if isinstance(e, events.StepEnergies)]


@pytest.mark.parametrize("climb", [False, True])
def test_a_band_step_carries_its_pivots_arc_fractions_at_that_step(climb):
    surface = MuellerBrown()
    start, end = (torch.tensor(m.position, dtype=torch.float64) for m in surface.minima[:2])
    schedule = Schedule(cycles=(Cycle(steps=12, lr=1e-4, optimiser_args={"momentum": 0.9}, insert=True,
                                      climb=climb),) * 3, band=BandOptions(energy_every=1, initial_pivots=3))
    connection = Connection(surface, schedule, start, end)
    record = Recorder(lambda: connection.pivots.clone())
    connection.on_event = record.events.append
    connection.run(record.should_stop)

    steps = record.steps()
    assert len(steps) == len(record.before) == 36
    assert {len(step.losses) for step in steps} != {5}  # pivots were inserted: the band grew
    for step, band in zip(steps, record.before):  # energy_every=1: one event per step, after its stop check
        assert step.positions == arc_fractions(band).tolist()  # the band the losses were taken on
        assert step.losses == pytest.approx(surface.evaluate(band).tolist(), rel=1e-12, abs=1e-9)
        assert step.positions[0] == 0.0 and step.positions[-1] == 1.0
        assert step.positions == sorted(step.positions)
    # the first step's band is the straight line, equally spaced
    assert steps[0].positions == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0], abs=1e-12)


@pytest.mark.parametrize("kind", ["bezier", "polychain"])
def test_a_curve_step_carries_its_values_of_t_in_the_order_of_its_losses(kind):
    energy = CallableEnergy(wells, dim=2)
    start = torch.tensor([-1.0, -1.0], dtype=torch.float64)
    end = torch.tensor([1.0, 1.0], dtype=torch.float64)
    schedule = CurveSchedule(kind=kind, steps=15, points=6, lr=0.01, cycles=3, energy_every=1)
    fit = CurveFit(energy, schedule, start, end, seed=4)
    record = Recorder(lambda: fit.bend.detach().clone())
    fit.on_event = record.events.append
    fit.run(record.should_stop)

    steps = record.steps()
    assert len(steps) == len(record.before) == 15
    for step, bend in zip(steps, record.before):
        t = step.positions
        assert len(t) == len(step.losses) == 6
        assert all(i / 6 <= value < (i + 1) / 6 for i, value in enumerate(t))  # stratified: one in each sixth
        curve = CurveFit(energy, schedule, start, end, bend=bend)  # the curve as it was before the step
        points = curve.points(torch.tensor(t, dtype=torch.float64))
        assert step.losses == pytest.approx(energy.evaluate(points).tolist(), rel=1e-12, abs=1e-12)


def test_positions_go_through_the_log_and_a_step_without_them_is_written_as_before(tmp_path):
    log = tmp_path / "events.jsonl"
    with_them = events.StepEnergies(pair=(0, 1), restart=0, cycle=1, step=10, losses=[-1.0, 0.5, -2.0],
                                    positions=[0.0, 0.375, 1.0])
    without = events.StepEnergies(pair=(0, 1), restart=0, cycle=1, step=20, losses=[-1.0, 0.5, -2.0])
    with EventLogWriter(log) as writer:
        writer.append(with_them)
        writer.append(without)
    lines = log.read_text().splitlines()
    assert lines[0].endswith('"losses":[-1.0,0.5,-2.0],"positions":[0.0,0.375,1.0]}')
    assert lines[1].endswith('"losses":[-1.0,0.5,-2.0]}')  # no "positions" key: the line of old
    assert [entry.event for entry in read_log(log)] == [with_them, without]
    with EventLogReader(log, keep_steps=1) as reader:  # a thinning reader knows both lines as steps
        assert [entry.event for entry in reader.poll()] == [with_them, without]


def test_the_steps_of_a_session_written_before_positions_read_without_them():
    steps = [entry.event for entry in read_log(OLD_SESSION / "events.jsonl")
             if entry.event.kind == "step_energies"]
    assert steps and all(type(step) is events.StepEnergies and step.positions is None for step in steps)


@pytest.mark.parametrize("positions", ["0.5", [0.0, "x"], {"a": 1}, 5])
def test_positions_of_the_wrong_type_make_a_damaged_event_that_says_so(positions):
    written = {"kind": "step_energies", "pair": [0, 1], "restart": 0, "cycle": 1, "step": 1,
               "losses": [1.0, 2.0], "positions": positions}
    read = events.event_from_dict(json.loads(json.dumps(written)))
    assert isinstance(read, events.UnknownEvent) and "step_energies.positions" in read.problem

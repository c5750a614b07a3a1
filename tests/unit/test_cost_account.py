"""Every path run's cost account (engine.paths.run.CostAccount) is what its energy
computed: checked against counts derived here from the schedule and the run's events."""

from __future__ import annotations

import json

import pytest
import torch

from engine.energy.network import NetworkEnergy
from engine.events import ConnectionFinished, CycleFinished, CycleStarted, event_from_dict
from engine.networks import data, models
from engine.networks.layout import ParameterLayout
from engine.paths.curve_schedule import CurveSchedule
from engine.paths.registry import new_run, run_from_state
from engine.paths.schedule import BandOptions, Cycle, Schedule
from engine.energy.surfaces import MuellerBrown

SAMPLES, BATCH, CALIBRATION = 60, 16, 40
BAND = Schedule(cycles=(Cycle(steps=4, lr=0.02, batch_size=BATCH), Cycle(steps=3, lr=0.02, batch_size=BATCH, insert=True)),
                band=BandOptions(initial_pivots=3, dense_points=2, insertion_threshold=0.01), name="tiny")
CURVE = CurveSchedule(kind="bezier", points=3, batch_size=BATCH, steps=6, cycles=2, eval_points=5, lr=0.02)


@pytest.fixture(scope="module")
def problem():
    """A tiny CNN with BatchNorm on digits, two of its parameter vectors as minima."""
    split = data.digits().train
    torch.manual_seed(0)
    net = models.small_cnn(width=4, batchnorm=True)
    layout = ParameterLayout.from_module(net)
    start = layout.flatten(net)
    end = start + 0.1 * torch.randn(start.shape, generator=torch.Generator().manual_seed(1))
    return net, split.inputs[:SAMPLES].view(-1, 1, 8, 8), split.targets[:SAMPLES], start, end


def energy_of(problem, strategy="loop"):
    net, x, y, _, _ = problem
    return NetworkEnergy(net, x, y, batch_size=BATCH, strategy=strategy, calibration_size=CALIBRATION)


def test_autoneb_s_account_is_its_steps_pivots_and_batches_and_its_dense_points_on_the_whole_set(problem):
    seen = []
    energy = energy_of(problem)
    result = new_run(energy, BAND, problem[3], problem[4], on_event=seen.append).run()
    started = [e for e in seen if isinstance(e, CycleStarted)]
    evaluated = [len(e.positions) for e in seen if isinstance(e, CycleFinished)]
    linear = len(result.linear.positions)
    points = linear + sum(evaluated)
    assert [e.pivots for e in started][0] == 3 + 2
    cost = result.cost.to_dict()
    assert cost["units"] == "samples"
    assert cost["steps"]["forward"] == sum(e.pivots * e.steps * BATCH for e in started)
    assert cost["steps"]["backward"] == sum((e.pivots - 2) * e.steps * BATCH for e in started)  # the ends: forward only
    assert cost["evaluation"] == {"forward": points * SAMPLES, "backward": 0, "seconds": cost["evaluation"]["seconds"]}
    assert cost["recalibration"]["forward"] == points * CALIBRATION and cost["recalibration"]["backward"] == 0
    assert cost["seconds"] > 0 and cost["devices"] == ["cpu"]
    finished = seen[-1]
    assert isinstance(finished, ConnectionFinished) and finished.cost == result.cost.to_dict(timed=False)


def test_a_curve_s_account_is_its_steps_points_and_batches_and_its_evaluations(problem):
    energy = energy_of(problem, "vmap")
    result = new_run(energy, CURVE, problem[3], problem[4]).run()
    cost = result.cost.to_dict()
    assert cost["steps"]["forward"] == cost["steps"]["backward"] == 6 * 3 * BATCH
    points = 5 + 2 * 5  # the straight segment, then each cycle's evaluation
    assert cost["evaluation"]["forward"] == points * SAMPLES
    assert cost["recalibration"]["forward"] == points * CALIBRATION


def test_a_run_stopped_and_resumed_keeps_one_account_and_an_old_state_has_none(problem):
    energy = energy_of(problem)
    straight = new_run(energy, BAND, problem[3], problem[4], seed=2).run()
    calls = iter(range(1000))
    run = new_run(energy, BAND, problem[3], problem[4], seed=2)
    assert run.run(lambda: next(calls) == 5) is None
    state = run.state_dict()
    state["meta"] = json.loads(json.dumps(state["meta"]))
    resumed = run_from_state(energy, BAND, state).run()
    assert resumed.cost.to_dict(timed=False) == straight.cost.to_dict(timed=False)
    del state["meta"]["cost"]  # as states were saved before runs kept an account
    old = run_from_state(energy, BAND, state).run()
    assert old.cost is None and torch.equal(old.pivots, straight.pivots)


def test_a_surface_counts_points_and_an_old_finished_event_has_no_cost():
    surface = MuellerBrown()
    minima = surface.minimum_positions()
    schedule = Schedule(cycles=(Cycle(steps=4, lr=1e-4), Cycle(steps=3, lr=1e-4, insert=True)), band=BAND.band)
    result = new_run(surface, schedule, minima[0], minima[1]).run()
    cost = result.cost.to_dict()
    assert cost["units"] == "points"
    assert cost["steps"]["forward"] == cost["steps"]["backward"] == sum(
        r.pivots * c.steps for r, c in zip(result.history, schedule.cycles))  # a surface differentiates its ends too
    assert cost["evaluation"]["forward"] == len(result.linear.positions) + sum(len(r.profile.positions)
                                                                               for r in result.history)
    old = {"kind": "connection_finished", "pair": [0, 1], "saddle_energy": 1.0, "saddle_position": 0.5,
           "linear_saddle_energy": 2.0, "pivots": 5, "cycles": 2, "restarts": 1}
    event = event_from_dict(old)
    assert isinstance(event, ConnectionFinished) and event.cost is None and event.to_dict() == old

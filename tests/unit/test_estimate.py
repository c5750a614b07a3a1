"""The cost estimate's arithmetic (engine.estimate) against hand-counted schedules, and
its timing of a real network energy: what it measures, and that it changes nothing."""

from __future__ import annotations

import pytest
import torch

from engine.paths.curve_schedule import CurveSchedule
from engine.energy.network import NetworkEnergy
from engine.estimate import StepTimes, cycle_steps, estimate, pair_seconds, pairs_left, time_steps
from engine.landscape.graph import LandscapeOptions
from engine.paths.schedule import BandOptions, Cycle, Schedule

# A step on n points costs 1 + 2 n seconds; a point's evaluation 0.5 s.
TIMES = StepTimes(sizes=(5, 10), step=(11.0, 21.0), point=0.5, batch_size=64)


def test_a_step_costs_the_line_through_the_two_sizes_timed():
    assert TIMES.step_seconds(7) == pytest.approx(15.0)
    assert TIMES.step_seconds(7, batch_size=128) == pytest.approx(30.0)  # twice the samples per point


def test_a_step_never_costs_less_on_more_points():
    noisy = StepTimes(sizes=(5, 6), step=(11.0, 10.0), point=0.5)  # the larger band timed faster
    assert noisy.step_seconds(9) == pytest.approx(11.0)


def test_an_autoneb_pair_adds_its_cycles_steps_and_dense_evaluations():
    schedule = Schedule(
        cycles=(Cycle(steps=10, lr=0.1, insert=True), Cycle(steps=20, lr=0.1, insert=True),
                Cycle(steps=30, lr=0.1, insert=False)),
        band=BandOptions(initial_pivots=3, max_pivots=6, dense_points=4, restarts=2),
    )
    linear = (4 * 5 + 1) * 0.5  # the segment's profile: 3 + 1 pieces of 5 points, and the end
    # no insertion: 5 points in every cycle; each cycle ends with 4 x 5 + 1 dense points
    low = linear + 2 * (60 * 11.0 + 3 * 21 * 0.5)
    # two pivots inserted by the second cycle, held to max_pivots (the third inserts none): 5, 6, 6 points
    high = linear + 2 * (10 * 11.0 + 21 * 0.5 + 20 * 13.0 + 26 * 0.5 + 30 * 13.0 + 26 * 0.5)
    assert pair_seconds(schedule, TIMES) == (pytest.approx(low), pytest.approx(high))
    assert cycle_steps(schedule) == [10, 20, 30]


def test_a_band_gains_at_most_two_pivots_a_cycle_in_the_high_estimate():
    cycles = (Cycle(steps=1, lr=0.1), Cycle(steps=1, lr=0.1), Cycle(steps=1, lr=0.1, max_insert=1))
    schedule = Schedule(cycles=cycles, band=BandOptions(initial_pivots=1, max_pivots=64))
    timed = StepTimes(sizes=(3, 4), step=(3.0, 4.0), point=0.0)  # a step costs its number of points
    assert pair_seconds(schedule, timed) == (pytest.approx(3 * 3.0), pytest.approx(3.0 + 5.0 + 6.0))


def test_a_curve_pair_adds_its_steps_and_evaluations():
    curve = CurveSchedule(steps=100, points=5, cycles=4, eval_points=11, batch_size=64)
    seconds = 100 * 11.0 + (1 + 4) * 11 * 0.5  # the straight line's profile, then one per cycle
    assert pair_seconds(curve, TIMES) == (pytest.approx(seconds), pytest.approx(seconds))
    assert cycle_steps(curve) == [25, 25, 25, 25]


@pytest.mark.parametrize(
    ("landscape", "done", "expected"),
    [
        ({}, 0, (10, 10)),  # every pair of 5 minima
        ({"stop": "all_pairs", "max_pairs": 6}, 0, (6, 6)),
        ({"stop": "all_pairs", "max_pairs": 2}, 0, (4, 4)),  # never short of the first spanning tree
        ({"stop": "tolerance", "tolerance": 0.1}, 0, (4, 10)),
        ({"stop": "tolerance", "tolerance": 0.1, "max_pairs": 7}, 0, (4, 7)),
        ({"variant": "star"}, 0, (4, 4)),
        ({}, 7, (3, 3)),
        ({"stop": "tolerance", "tolerance": 0.1}, 5, (0, 5)),
    ],
)
def test_the_pairs_a_stop_rule_leaves(landscape, done, expected):
    assert pairs_left(5, LandscapeOptions(**landscape), done) == expected


def test_workers_run_pairs_side_by_side_in_rounds():
    guess = estimate((10.0, 20.0), (3, 5), workers=2)
    assert guess.seconds == (20.0, 60.0)  # 2 rounds of 10 s; 3 rounds of 20 s


def _energy(strategy: str) -> tuple[NetworkEnergy, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    inputs = torch.randn(200, 8, generator=generator)
    targets = torch.randint(0, 3, (200,), generator=generator)
    energy = NetworkEnergy(model, inputs, targets, batch_size=32, strategy=strategy, device="cpu")
    minima = torch.randn(2, energy.dim, generator=generator)
    return energy, minima


def _band_results(energy: NetworkEnergy, minima: torch.Tensor) -> tuple[torch.Tensor, ...]:
    pivots = torch.stack([minima[0], (minima[0] + minima[1]) / 2, minima[1]])
    losses, grads = energy(pivots, generator=torch.Generator().manual_seed(3))
    return losses, grads, energy.evaluate(pivots)


def test_timing_measures_a_real_energy_and_changes_none_of_its_numbers():
    timed, minima = _energy("loop")
    untouched, _ = _energy("loop")
    schedule = Schedule(cycles=(Cycle(steps=10, lr=0.1, batch_size=16),), band=BandOptions(initial_pivots=2))
    times = time_steps(timed, minima[0], minima[1], schedule)
    assert times.sizes == (4, 5) and times.batch_size == 16  # one cycle: the band stays at 4; one more
    assert all(seconds > 0 for seconds in (*times.step, times.point))
    for after, before in zip(_band_results(timed, minima), _band_results(untouched, minima)):
        assert torch.equal(after, before)


def test_timing_ends_the_auto_strategys_trial_as_a_worker_would():
    energy, minima = _energy("auto")
    assert energy.strategy_used is None
    time_steps(energy, minima[0], minima[1], CurveSchedule(steps=10, points=3, cycles=2, eval_points=5))
    assert energy.strategy_used in ("batched", "vmap", "loop")

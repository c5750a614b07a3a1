"""AutoNEB on surfaces whose true minimum energy paths are known."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from stationary import polish
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from engine import events
from engine.band.geometry import dense_points
from engine.paths.autoneb import Connection, DivergedError, connect
from engine.energy.base import CallableEnergy
from engine.energy.surfaces import Himmelblau, MuellerBrown
from engine.landscape.exploration import Exploration
from engine.paths.schedule import BandOptions, Cycle, Schedule, load_schedule

MB = MuellerBrown()
MINIMA = MB.minimum_positions()  # deepest, second, intermediate
UPPER_SADDLE, LOWER_SADDLE = MB.saddles  # -40.6648 (deepest <-> intermediate), -72.2489


def test_surface_constants_are_stationary_points():
    for point in MB.minima + MB.saddles:
        polished = polish(MB, torch.tensor(point.position))
        assert torch.allclose(polished, torch.tensor(point.position, dtype=torch.float64), atol=1e-5)
        assert MB.evaluate(polished.unsqueeze(0)).item() == pytest.approx(point.energy, abs=1e-4)


@pytest.fixture(scope="module")
def deepest_pair_plain():
    """The deepest two minima, surface preset, no climbing image."""
    trace: list[events.Event] = []
    result = connect(MB, MINIMA[0], MINIMA[1], load_schedule("surface"), on_event=trace.append)
    return result, trace


@pytest.fixture(scope="module")
def deepest_pair_climbing():
    return connect(MB, MINIMA[0], MINIMA[1], load_schedule("surface").with_climbing())


def test_path_between_the_deepest_minima_passes_by_the_intermediate_one(deepest_pair_plain):
    result, _ = deepest_pair_plain
    path = dense_points(result.pivots, 20)  # the piecewise-linear path, finely sampled
    assert (path - MINIMA[2]).norm(dim=1).min().item() < 0.02
    # the profile dips to the intermediate minimum's energy on the way
    losses = result.profile.losses
    dips = [losses[i] for i in range(1, len(losses) - 1) if losses[i - 1] > losses[i] < losses[i + 1]]
    assert dips and min(dips) == pytest.approx(MB.minima[2].energy, abs=0.5)
    # and it does not pass anywhere near the straight line's barrier
    assert result.linear_saddle_energy > 0 > result.saddle_energy


def test_without_climbing_the_saddle_is_within_1_then_within_0_1_with_20_pivots(deepest_pair_plain):
    result, _ = deepest_pair_plain
    assert abs(result.saddle_energy - UPPER_SADDLE.energy) < 1.0
    assert result.pivots.shape[0] >= 20
    assert abs(result.saddle_energy - UPPER_SADDLE.energy) < 0.1
    # with few pivots it is not that close: the first cycles' bands cut the corner
    early = [r for r in result.history if r.pivots < 10]
    assert early and all(r.saddle_energy > UPPER_SADDLE.energy + 0.1 for r in early)


def test_climbing_image_finds_the_saddle_to_0_01(deepest_pair_climbing):
    result = deepest_pair_climbing
    assert abs(result.saddle_energy - UPPER_SADDLE.energy) < 0.01
    saddle = torch.tensor(UPPER_SADDLE.position, dtype=torch.float64)
    assert (result.saddle_point - saddle).norm().item() < 0.01


def test_events_describe_the_run(deepest_pair_plain):
    result, trace = deepest_pair_plain
    kinds = [e.kind for e in trace]
    cycles = len(load_schedule("surface").cycles)
    assert kinds.count("cycle_started") == kinds.count("cycle_finished") == cycles
    assert kinds[-1] == "connection_finished"
    finished = [e for e in trace if isinstance(e, events.CycleFinished)]
    assert [e.cycle for e in finished] == list(range(1, cycles + 1))
    assert finished[-1].saddle_energy == pytest.approx(result.saddle_energy)
    inserted = sum(len(e.positions) for e in trace if isinstance(e, events.PivotsInserted))
    assert 5 + inserted == result.pivots.shape[0]
    for event in trace:  # every event survives JSON
        assert events.event_from_dict(json.loads(json.dumps(event.to_dict()))) == event


def test_exploration_mst_has_both_saddles():
    schedule = load_schedule("surface").with_climbing()
    result = Exploration(MB, MINIMA, schedule).run()
    saddles = sorted(s for _, _, s in result.mst)
    assert saddles == pytest.approx([LOWER_SADDLE.energy, UPPER_SADDLE.energy], abs=0.01)
    # the deepest minimum reaches the others over the same saddle: either edge is an MST edge
    edges = {(a, b) for a, b, _ in result.mst}
    assert (1, 2) in edges and len(edges & {(0, 1), (0, 2)}) == 1


SHORT = Schedule(
    cycles=(
        Cycle(steps=40, lr=3e-4, optimiser_args={"momentum": 0.9}),
        Cycle(steps=40, lr=3e-4, optimiser_args={"momentum": 0.9}),
        Cycle(steps=40, lr=1e-4, optimiser_args={"momentum": 0.9}, climb=True),
    ),
    band=BandOptions(max_pivots=12, insertion_threshold=0.05, reset_optimiser=False, restarts=2, restart_noise=0.1),
)


class NoisyEnergy(CallableEnergy):
    """Mueller-Brown plus a draw from the generator: a stochastic energy, as a
    network's minibatch loss is, so that resuming must restore the random state."""

    def __init__(self):
        super().__init__(MB.potential, dim=2)

    def __call__(self, pivots, generator=None, batch_size=None):
        losses, grads = super().__call__(pivots)
        noise = torch.randn(pivots.shape, generator=generator, dtype=pivots.dtype)
        return losses, grads + noise


def _stop_randomly(rng: random.Random, rate: float):
    return lambda: rng.random() < rate


def _through_storage(state):
    """What a session does with a state: tensors to safetensors, meta to JSON."""
    tensors = {k: v.contiguous() for k, v in state["tensors"].items()}
    return {"tensors": load_safetensors(save_safetensors(tensors)), "meta": json.loads(json.dumps(state["meta"]))}


def test_connection_stopped_many_times_finishes_bit_for_bit():
    energy = NoisyEnergy()
    trace: list[events.Event] = []
    straight = Connection(energy, SHORT, MINIMA[0], MINIMA[2], seed=5, on_event=trace.append).run()
    resumed_trace: list[events.Event] = []
    connection = Connection(energy, SHORT, MINIMA[0], MINIMA[2], seed=5, on_event=resumed_trace.append)
    stop = _stop_randomly(random.Random(1), 0.02)
    stops = 0
    while (result := connection.run(stop)) is None:
        stops += 1
        connection = Connection.from_state(
            energy, SHORT, _through_storage(connection.state_dict()), on_event=resumed_trace.append
        )
    assert stops >= 5
    assert torch.equal(result.pivots, straight.pivots)
    assert result.restart_saddles == straight.restart_saddles
    assert [e.to_dict() for e in resumed_trace] == [e.to_dict() for e in trace]


def test_exploration_stopped_many_times_finishes_bit_for_bit():
    energy = NoisyEnergy()
    straight = Exploration(energy, MINIMA, SHORT, seed=2).run()
    exploration = Exploration(energy, MINIMA, SHORT, seed=2)
    stop = _stop_randomly(random.Random(7), 0.01)
    stops = 0
    while (result := exploration.run(stop)) is None:
        stops += 1
        exploration = Exploration.from_state(energy, SHORT, _through_storage(exploration.state_dict()))
    assert stops >= 3
    assert result.mst == straight.mst
    for pair, path in straight.paths.items():
        assert torch.equal(result.paths[pair].pivots, path.pivots)


def test_resuming_with_another_schedule_is_refused():
    connection = Connection(MB, SHORT, MINIMA[0], MINIMA[1])
    assert connection.run(lambda: True) is None
    with pytest.raises(ValueError, match="different schedule"):
        Connection.from_state(MB, SHORT.scaled(2.0), connection.state_dict())


def test_restarts_keep_the_lowest_saddle():
    result = Connection(NoisyEnergy(), SHORT, MINIMA[0], MINIMA[2], seed=3).run()
    assert len(result.restart_saddles) == 2
    assert result.saddle_energy == min(result.restart_saddles)
    assert result.restart_saddles[result.best_restart] == result.saddle_energy


def test_reference_preset_on_a_surface():
    schedule = load_schedule("reference").with_lr_scale(3e-3).scaled(0.05)
    trace: list[events.Event] = []
    result = connect(MB, MINIMA[0], MINIMA[1], schedule, on_event=trace.append)
    per_cycle = [len(e.positions) for e in trace if isinstance(e, events.PivotsInserted)]
    assert per_cycle and max(per_cycle) <= 2  # the "highest" rule, two at most
    assert result.pivots.shape[0] <= 31
    # select "lowest": the result is the best cycle, not necessarily the last
    assert result.saddle_energy == min(r.saddle_energy for r in result.history)


def test_spring_force_band_without_respacing():
    schedule = Schedule(
        cycles=(Cycle(steps=300, lr=2e-4, optimiser_args={"momentum": 0.9}),) * 3,
        band=BandOptions(spring=50.0, tangent="improved", initial_pivots=7, insertion_threshold=0.05),
    )
    result = connect(MB, MINIMA[1], MINIMA[2], schedule)
    assert result.saddle_energy == pytest.approx(LOWER_SADDLE.energy, abs=0.5)


def test_any_torch_optimiser_drives_the_band():
    lrs = (3e-3, 3e-3, 1e-3, 1e-3, 3e-4)
    schedule = Schedule(
        cycles=tuple(Cycle(steps=150, lr=lr, optimiser="Adam") for lr in lrs),
        band=BandOptions(insertion_threshold=0.05),
    )
    result = connect(MB, MINIMA[0], MINIMA[2], schedule)
    assert result.saddle_energy < result.linear_saddle_energy - 40
    assert result.saddle_energy == pytest.approx(UPPER_SADDLE.energy, abs=1.0)


def test_too_high_a_learning_rate_is_reported_not_hidden():
    schedule = Schedule(cycles=(Cycle(steps=50, lr=1.0, optimiser_args={"momentum": 0.9}),))
    with pytest.raises(DivergedError, match="lower the learning rate"):
        connect(MB, MINIMA[0], MINIMA[1], schedule)


def test_bad_end_points_are_refused():
    with pytest.raises(ValueError, match="flat vector of 2"):
        Connection(MB, SHORT, torch.zeros(3), MINIMA[1])
    with pytest.raises(ValueError, match="NaN"):
        Connection(MB, SHORT, torch.tensor([math.nan, 0.0]), MINIMA[1])


@pytest.mark.parametrize("surface", [MuellerBrown(), Himmelblau()])
def test_closed_form_gradients_match_autograd(surface):
    points = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    losses, grads = surface(points)
    reference_losses, reference_grads = CallableEnergy(surface.potential, dim=2)(points)
    assert torch.allclose(losses, reference_losses)
    assert torch.allclose(grads, reference_grads)


def test_respacing_before_the_gradients_is_the_same_band_one_respacing_behind():
    """The authors' order (re-space, then gradients and the optimiser step) visits the
    same bands as re-spacing after the step: its band re-spaced is the other's band."""
    from engine.band.geometry import respace

    bands = {}
    for when in ("after", "before"):
        schedule = Schedule(
            cycles=(Cycle(steps=20, lr=1e-4, optimiser_args={"momentum": 0.9}),),
            band=BandOptions(initial_pivots=4, max_pivots=6, respace=when),
        )
        connection = Connection(MB, schedule, MINIMA[0], MINIMA[1])
        steps = []
        connection.run(lambda: steps.append(1) is None and len(steps) > 7)  # stop before the cycle ends
        bands[when] = connection.pivots.clone()
    after, before = bands["after"], bands["before"]
    assert not torch.allclose(before, respace(before), atol=1e-6)  # not re-spaced after its last step
    torch.testing.assert_close(respace(before), after, rtol=1e-5, atol=1e-6)
    assert load_schedule("reference").band.respace == "before"


def test_a_state_saved_before_the_respace_option_resumes_with_its_default():
    schedule = Schedule(cycles=(Cycle(steps=20, lr=1e-4),), band=BandOptions(initial_pivots=2, max_pivots=4))
    connection = Connection(MB, schedule, MINIMA[0], MINIMA[1])
    calls = []
    connection.run(lambda: calls.append(1) is None and len(calls) > 3)
    state = connection.state_dict()
    del state["meta"]["schedule"]["band"]["respace"]  # as saved before the option existed
    assert torch.equal(Connection.from_state(MB, schedule, state).pivots, connection.pivots)
    before = Schedule(schedule.cycles, BandOptions(initial_pivots=2, max_pivots=4, respace="before"))
    with pytest.raises(ValueError, match="different schedule"):
        Connection.from_state(MB, before, state)

"""One way to make and rebuild a run whatever the method (engine.paths.registry), and
the session config's method and alignment."""

from __future__ import annotations

import json
import random

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from engine.paths.curves import CurveFit
from engine.paths.registry import (
    METHODS,
    autoneb_budget,
    method_of,
    method_schedule,
    new_run,
    run_from_state,
    spent_gradients,
)
from engine.paths.curve_schedule import CurveSchedule
from engine.energy.base import CallableEnergy
from engine.paths.autoneb import Connection
from engine.landscape.exploration import Exploration
from engine.paths.schedule import Cycle, Schedule

# Four minima of a double well per axis: saddles of 1.0 between neighbours.
MINIMA = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
SHORT = Schedule(cycles=(Cycle(steps=20, lr=0.01, optimiser_args={"momentum": 0.9}),) * 2, name="short")


class Counting(CallableEnergy):
    """The wells with a little gradient noise from the run's generator; counts the gradients asked of it."""

    def __init__(self):
        super().__init__(lambda x: ((x**2 - 1) ** 2).sum(dim=1) + 0.1 * x[:, 0], dim=2)
        self.gradients = 0

    def __call__(self, pivots, generator=None, batch_size=None):
        self.gradients += pivots.shape[0]
        losses, grads = super().__call__(pivots)
        return losses, grads + 0.1 * torch.randn(pivots.shape, generator=generator, dtype=pivots.dtype)


def _through_storage(state):
    """A state as it comes back from a safetensors file and a JSON header."""
    tensors = {k: v.contiguous() for k, v in state["tensors"].items()}
    return {"tensors": load_safetensors(save_safetensors(tensors)), "meta": json.loads(json.dumps(state["meta"]))}


def test_each_method_runs_what_its_name_says_for_about_autoneb_s_budget():
    assert METHODS == ("autoneb", "bezier", "polychain")
    assert method_schedule("autoneb", SHORT) is SHORT
    budget = autoneb_budget(SHORT)
    assert budget == 40 * (SHORT.band.initial_pivots + 2)
    for kind in ("bezier", "polychain"):
        schedule = method_schedule(kind, SHORT)
        assert isinstance(schedule, CurveSchedule) and schedule.kind == kind
        assert abs(schedule.gradient_evaluations - budget) <= schedule.points / 2
    with pytest.raises(ValueError, match="unknown method 'neb': use autoneb, bezier or polychain"):
        method_schedule("neb", SHORT)


@pytest.mark.parametrize("method", METHODS)
def test_a_run_rebuilt_from_its_state_by_its_kind_continues_bit_for_bit(method):
    schedule = method_schedule(method, SHORT)
    energy = Counting()
    straight = new_run(energy, schedule, MINIMA[0], MINIMA[3], pair=(0, 3), seed=4).run()
    assert isinstance(new_run(energy, schedule, MINIMA[0], MINIMA[3]), CurveFit if method != "autoneb" else Connection)
    run = new_run(energy, schedule, MINIMA[0], MINIMA[3], pair=(0, 3), seed=4)
    stop, stops = random.Random(3), 0
    while (result := run.run(lambda: stop.random() < 0.2)) is None:
        stops += 1
        state = _through_storage(run.state_dict())
        assert method_of(state) == method
        run = run_from_state(energy, schedule, state)
    assert stops >= 3
    assert torch.equal(result.pivots, straight.pivots) and result.saddle_energy == straight.saddle_energy


def test_a_state_of_another_method_is_refused_in_one_line():
    energy = Counting()
    curve = new_run(energy, method_schedule("bezier", SHORT), MINIMA[0], MINIMA[1])
    with pytest.raises(ValueError, match="a saved run of method bezier cannot continue as autoneb"):
        run_from_state(energy, SHORT, curve.state_dict())
    band = new_run(energy, SHORT, MINIMA[0], MINIMA[1])
    with pytest.raises(ValueError, match="a saved run of method autoneb cannot continue as polychain"):
        run_from_state(energy, method_schedule("polychain", SHORT), band.state_dict())


@pytest.mark.parametrize("method", METHODS)
def test_the_cost_reported_is_the_gradients_the_energy_was_asked_for(method):
    schedule = method_schedule(method, SHORT)
    energy = Counting()
    result = new_run(energy, schedule, MINIMA[0], MINIMA[3], seed=1).run()
    assert spent_gradients(result, schedule) == energy.gradients
    if method == "autoneb":
        assert energy.gradients >= autoneb_budget(SHORT)  # inserted pivots only add


def test_an_exploration_by_curves_stopped_many_times_finishes_bit_for_bit():
    schedule = method_schedule("bezier", SHORT)
    energy = Counting()
    straight = Exploration(energy, MINIMA, schedule, seed=2).run()
    assert all(isinstance(r.bend, torch.Tensor) for r in straight.paths.values())  # curves, not bands
    exploration = Exploration(energy, MINIMA, schedule, seed=2)
    stop, stops = random.Random(5), 0
    while (result := exploration.run(lambda: stop.random() < 0.01)) is None:
        stops += 1
        exploration = Exploration.from_state(energy, schedule, _through_storage(exploration.state_dict()))
    assert stops >= 3
    assert result.mst == straight.mst
    for pair, path in straight.paths.items():
        assert torch.equal(result.paths[pair].pivots, path.pivots)


def test_the_session_config_names_its_method_and_alignment():
    from sessions.disk.config import Problem, SessionConfig
    from sessions.disk.folder import SessionError

    surface = Problem(kind="surface", surface="muller-brown")
    old = SessionConfig(problem=surface, schedule=SHORT).to_dict()
    del old["method"], old["align"]  # a config.json written before the two fields
    loaded = SessionConfig.from_dict(old)
    assert (loaded.method, loaded.align) == ("autoneb", False)
    assert SessionConfig.from_dict({**old, "method": "polychain"}).method == "polychain"
    with pytest.raises(SessionError, match=r"^unknown method 'curve': use autoneb, bezier or polychain$"):
        SessionConfig(problem=surface, schedule=SHORT, method="curve")
    with pytest.raises(SessionError, match=r"^--align permutes the hidden units of networks: a surface has none"):
        SessionConfig(problem=surface, schedule=SHORT, align=True)

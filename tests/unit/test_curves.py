"""Bezier curves and polygonal chains between minima of surfaces whose low paths are known."""

from __future__ import annotations

import json
import random

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from engine import events
from engine.paths.curves import CurveFit, fit_curve
from engine.paths.curve_schedule import CurveSchedule
from engine.paths.curve_shapes import curve_points
from engine.energy.base import CallableEnergy
from engine.energy.network import NetworkEnergy
from engine.paths.schedule import ScheduleError
from engine.networks import models
from engine.networks.data import digits

START = torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64)
END = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)


def bowl(x):
    """A quadratic bowl whose bottom is the line x1 = x2 = 0 (both minima lie on it)."""
    return 3.0 * x[:, 1] ** 2 + x[:, 2] ** 2


class NoisyBowl(CallableEnergy):
    """The bowl with gradient noise drawn from the generator: a stochastic energy,
    as a network's minibatch loss is, so that resuming must restore the random state."""

    def __init__(self, noise: float = 0.5):
        super().__init__(bowl, dim=3)
        self.noise = noise

    def __call__(self, pivots, generator=None, batch_size=None):
        losses, grads = super().__call__(pivots)
        return losses, grads + self.noise * torch.randn(pivots.shape, generator=generator, dtype=pivots.dtype)


@pytest.mark.parametrize("kind", ["bezier", "polychain"])
def test_a_curve_between_two_minima_of_a_bowl_stays_at_the_bottom(kind):
    schedule = CurveSchedule(kind=kind, steps=300, points=8, lr=0.05)
    result = fit_curve(NoisyBowl(), START, END, schedule, seed=1)
    assert result.linear_saddle_energy == 0.0
    assert result.saddle_energy < 1e-3  # the noise moved the bend; the training brought it back
    assert max(result.pivot_losses) == result.saddle_energy
    assert result.bend[1:].abs().max() < 0.1


@pytest.mark.parametrize("kind", ["bezier", "polychain"])
def test_a_bend_started_off_the_bottom_comes_down_to_it(kind):
    bend = torch.tensor([0.3, 2.0, -1.5], dtype=torch.float64)
    off = curve_points(kind, START, bend, END, torch.tensor([0.5], dtype=torch.float64))
    assert bowl(off).item() > 1.0
    result = CurveFit(NoisyBowl(noise=0.0), CurveSchedule(kind=kind, steps=200), START, END, bend=bend).run()
    assert result.saddle_energy < 1e-4
    assert result.history[0].saddle_energy > result.saddle_energy  # the first evaluation was still high


def valley(x):
    """A parabolic valley, zero on x1 = 1 - x0^2: through (-1, 0) and (1, 0), the straight
    line between them reaches 1; the Bezier curve with bend (0, 2) is the valley itself."""
    return (x[:, 1] - 1 + x[:, 0] ** 2) ** 2


def test_the_bezier_curve_finds_the_valley_the_straight_line_misses():
    start, end = torch.tensor([-1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
    energy = CallableEnergy(valley, dim=2)
    bezier = fit_curve(energy, start, end, CurveSchedule(kind="bezier", steps=300))
    assert bezier.linear_saddle_energy == pytest.approx(1.0)
    assert bezier.saddle_energy < 1e-6
    assert torch.allclose(bezier.bend, torch.tensor([0.0, 2.0], dtype=torch.float64), atol=1e-3)
    # the chain has no exact fit: two straight pieces cut the parabola's corners
    chain = fit_curve(energy, start, end, CurveSchedule(kind="polychain", steps=300))
    assert bezier.saddle_energy < chain.saddle_energy < 0.2 * chain.linear_saddle_energy


def test_the_result_reads_like_a_path():
    schedule = CurveSchedule(kind="polychain", steps=40, points=4, cycles=4, eval_points=21, energy_every=5)
    trace: list[events.Event] = []
    result = fit_curve(NoisyBowl(), START, END, schedule, seed=2, on_event=trace.append)
    assert result.pivots.shape == (21, 3)
    assert torch.equal(result.pivots[0], START) and torch.equal(result.pivots[-1], END)
    assert torch.equal(result.pivots[10], result.bend)  # the chain bends at t = 1/2
    assert result.pivot_positions[0] == 0.0 and result.pivot_positions[-1] == 1.0
    assert result.saddle_point.shape == (3,)
    assert bowl(result.saddle_point.unsqueeze(0)).item() == pytest.approx(result.saddle_energy)
    assert result.gradient_evaluations == 40 * 4 and result.steps == 40
    kinds = [e.kind for e in trace]
    assert kinds.count("cycle_started") == kinds.count("cycle_finished") == 4
    assert kinds[-1] == "connection_finished"
    steps = [e for e in trace if isinstance(e, events.StepEnergies)]
    assert [e.step for e in steps][:2] == [5, 10] and all(len(e.losses) == 4 for e in steps)
    assert [e.cycle for e in trace if isinstance(e, events.CycleFinished)] == [1, 2, 3, 4]
    for event in trace:  # every event survives JSON
        assert events.event_from_dict(json.loads(json.dumps(event.to_dict()))) == event


def _through_storage(state):
    """What a session does with a state: tensors to safetensors, meta to JSON."""
    tensors = {k: v.contiguous() for k, v in state["tensors"].items()}
    return {"tensors": load_safetensors(save_safetensors(tensors)), "meta": json.loads(json.dumps(state["meta"]))}


def _stopped_and_resumed(make, schedule, rate, rng_seed):
    """Run ``make(on_event)`` to the end, stopping at random step boundaries and
    continuing each time from the stored state."""
    trace: list[events.Event] = []
    fit = make(trace.append)
    stop = random.Random(rng_seed)
    stops = 0
    while (result := fit.run(lambda: stop.random() < rate)) is None:
        stops += 1
        fit = CurveFit.from_state(fit.energy, schedule, _through_storage(fit.state_dict()), on_event=trace.append)
    return result, trace, stops


@pytest.mark.parametrize("optimiser, args", [("SGD", {"momentum": 0.9}), ("Adam", {})])
def test_a_bezier_run_stopped_and_resumed_equals_an_uninterrupted_one(optimiser, args):
    schedule = CurveSchedule(steps=120, points=5, cycles=3, lr=0.02, optimiser=optimiser, optimiser_args=args)
    straight_trace: list[events.Event] = []
    straight = CurveFit(NoisyBowl(), schedule, START, END, seed=5, on_event=straight_trace.append).run()
    result, trace, stops = _stopped_and_resumed(
        lambda sink: CurveFit(NoisyBowl(), schedule, START, END, seed=5, on_event=sink), schedule, 0.03, 1
    )
    assert stops >= 3
    assert torch.equal(result.bend, straight.bend)
    assert torch.equal(result.pivots, straight.pivots)
    assert [e.to_dict() for e in trace] == [e.to_dict() for e in straight_trace]


def test_a_network_curve_stopped_and_resumed_equals_an_uninterrupted_one():
    """Random minibatches per point, as AutoNEB's pivots draw them."""
    data = digits()
    torch.manual_seed(0)
    net = models.mlp(hidden=(8,))
    x, y = data.train.inputs[:300], data.train.targets[:300]
    minima = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        minima.append(torch.cat([p.detach().reshape(-1) for p in models.mlp(hidden=(8,)).parameters()]))
    schedule = CurveSchedule(steps=30, points=3, cycles=2, batch_size=32, eval_points=11, lr=0.1)

    def make(sink):
        energy = NetworkEnergy(net, x, y, strategy="loop")
        return CurveFit(energy, schedule, minima[0], minima[1], seed=3, on_event=sink)

    straight = make(events.ignore).run()
    result, _, stops = _stopped_and_resumed(make, schedule, 0.1, 4)
    assert stops >= 1
    assert torch.equal(result.bend, straight.bend)
    assert result.profile == straight.profile
    assert result.saddle_energy <= result.linear_saddle_energy


def test_resuming_with_another_schedule_is_refused():
    schedule = CurveSchedule(steps=20)
    fit = CurveFit(NoisyBowl(), schedule, START, END)
    assert fit.run(lambda: True) is None
    with pytest.raises(ValueError, match="different schedule"):
        CurveFit.from_state(fit.energy, CurveSchedule(steps=40), fit.state_dict())


def test_a_bad_schedule_is_one_line_per_field():
    with pytest.raises(ScheduleError) as error:
        CurveSchedule(kind="spline", steps=0, lr=-1.0, optimiser="LBFGS")
    lines = error.value.lines
    assert len(lines) == 4
    assert any("kind must be one of bezier, polychain" in line for line in lines)
    assert any("optimiser LBFGS cannot train a bend" in line for line in lines)


def test_the_budget_sets_the_steps():
    schedule = CurveSchedule(points=8).with_budget(4000)
    assert schedule.steps == 500 and schedule.gradient_evaluations == 4000
    assert CurveSchedule.from_dict(schedule.to_dict()) == schedule

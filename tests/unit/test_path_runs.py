"""What every path method shares (engine.paths.run) and the band's two strategies for
keeping its pivots apart (engine.band.springs)."""

from __future__ import annotations

import math

import pytest
import torch

from engine.band.springs import ElasticSprings, StringRespacing, band_strategy
from engine.energy.base import CallableEnergy
from engine.events import ConnectionFinished, CycleFinished, CycleStarted, StepEnergies
from engine.paths.registry import METHODS, method_schedule, new_run, run_from_state
from engine.paths.run import PathRun
from engine.paths.schedule import Cycle, Schedule

# A double well per axis: minima at (+-1, +-1), saddles of 1.0 between neighbours.
WELLS = CallableEnergy(lambda x: ((x**2 - 1) ** 2).sum(dim=1) + 0.1 * x[:, 0], dim=2)
START = torch.tensor([-1.0, -1.0], dtype=torch.float64)
END = torch.tensor([1.0, -1.0], dtype=torch.float64)
SHORT = Schedule(cycles=(Cycle(steps=15, lr=0.01, optimiser_args={"momentum": 0.9}),) * 2, name="short")


@pytest.mark.parametrize("method", METHODS)
def test_every_method_is_a_path_run_whose_state_names_it_and_whose_events_frame_its_cycles(method):
    schedule = method_schedule(method, SHORT)
    seen = []
    run = new_run(WELLS, schedule, START, END, pair=(2, 5), seed=1, on_event=seen.append)
    assert isinstance(run, PathRun)
    assert run.state_dict()["meta"]["method"] == method
    result = run.run()
    started = [e for e in seen if isinstance(e, CycleStarted)]
    finished = [e for e in seen if isinstance(e, CycleFinished)]
    assert isinstance(seen[0], CycleStarted) and isinstance(seen[-1], ConnectionFinished)
    assert [e.cycle for e in started] == [e.cycle for e in finished] == list(range(1, len(result.history) + 1))
    assert all(e.pair == (2, 5) and e.restart == 0 for e in started + finished)
    assert any(isinstance(e, StepEnergies) for e in seen)
    assert seen[-1].pivots == result.pivots.shape[0] and seen[-1].saddle_energy == result.saddle_energy
    assert [r.saddle_energy for r in result.history] == [e.saddle_energy for e in finished]


def test_an_autoneb_state_saved_without_its_method_resumes_as_autoneb_bit_for_bit():
    straight = new_run(WELLS, SHORT, START, END, seed=2).run()
    calls = iter(range(1000))
    run = new_run(WELLS, SHORT, START, END, seed=2)
    assert run.run(lambda: next(calls) == 20) is None
    state = run.state_dict()
    del state["meta"]["method"]  # as states were saved before they named their method
    result = run_from_state(WELLS, SHORT, state).run()
    assert torch.equal(result.pivots, straight.pivots) and result.saddle_energy == straight.saddle_energy


@pytest.mark.parametrize("method", METHODS)
def test_a_bad_end_point_is_one_line_whatever_the_method(method):
    schedule = method_schedule(method, SHORT)
    with pytest.raises(ValueError, match=r"^end must be a flat vector of 2 entries, got shape \(3,\)$"):
        new_run(WELLS, schedule, START, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="^start holds NaN or infinite entries$"):
        new_run(WELLS, schedule, torch.tensor([math.nan, 0.0], dtype=torch.float64), END)


def test_the_band_options_name_springs_or_the_string_method():
    assert isinstance(band_strategy(math.inf), StringRespacing)
    assert band_strategy(math.inf, "before").when == "before"
    springs = band_strategy(2.5)
    assert isinstance(springs, ElasticSprings) and springs.k == 2.5
    with pytest.raises(ValueError, match="infinite one is the string method"):
        ElasticSprings(math.inf)
    with pytest.raises(ValueError, match="unknown re-spacing time 'never'"):
        StringRespacing("never")


@pytest.mark.parametrize("strategy, before, after", [
    (StringRespacing("after"), [], ["this step's"]),
    (StringRespacing("before"), ["last step's"], []),
    (ElasticSprings(1.0), [], []),
])
def test_each_strategy_re_spaces_the_band_when_it_says(strategy, before, after):
    respaced = []
    strategy.before_gradients(respaced.append, "last step's")
    assert respaced == before
    respaced.clear()
    strategy.after_update(respaced.append, "this step's")
    assert respaced == after

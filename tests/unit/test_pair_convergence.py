"""A pair that ends once its band has settled (band options converge_change and
converge_cycles, the CLI's --converge): the remaining cycles are skipped, the last
cycle's event says so, and a run stopped and resumed decides as one never stopped."""

from __future__ import annotations

import pytest
import torch

from engine.energy.base import CallableEnergy
from engine.events import CycleFinished
from engine.paths.autoneb import Connection
from engine.paths.schedule import Cycle, Schedule

# A double well per axis: minima at (+-1, +-1), a saddle of 1.0 between these two.
WELLS = CallableEnergy(lambda x: ((x**2 - 1) ** 2).sum(dim=1) + 0.1 * x[:, 0], dim=2)
START = torch.tensor([-1.0, -1.0], dtype=torch.float64)
END = torch.tensor([1.0, -1.0], dtype=torch.float64)
CYCLE = Cycle(steps=40, lr=0.01, optimiser_args={"momentum": 0.9})
# Twelve cycles: the band reaches its saddle within a few, the rest only polish it.
TWELVE = Schedule(cycles=(CYCLE,) * 12, name="twelve")


def _run(schedule: Schedule, stop_at: int | None = None) -> tuple[object, list[CycleFinished]]:
    seen: list = []
    run = Connection(WELLS, schedule, START, END, seed=3, on_event=seen.append)
    if stop_at is not None:
        calls = iter(range(10**6))
        assert run.run(lambda: next(calls) == stop_at) is None
        run = Connection.from_state(WELLS, schedule, run.state_dict(), on_event=seen.append)
    return run.run(), [e for e in seen if isinstance(e, CycleFinished)]


def test_a_settled_band_ends_its_pair_early_near_the_full_schedules_saddle():
    full, full_cycles = _run(TWELVE)
    settled, cycles = _run(TWELVE.replace_band(converge_change=1e-3, converge_cycles=2))
    assert len(full_cycles) == 12 and not any(e.converged for e in full_cycles)
    assert 3 <= len(cycles) < 12  # at least the window and its first cycle, and fewer than all
    assert [e.converged for e in cycles] == [False] * (len(cycles) - 1) + [True]
    saddles = [e.saddle_energy for e in cycles]
    for old, new in zip(saddles[-3:], saddles[-2:]):  # the rule, read back from the events
        assert abs(new - old) < 1e-3 * abs(old)
    assert [len(e.pivot_losses) for e in cycles[-3:]] == [len(cycles[-1].pivot_losses)] * 3
    assert len(settled.history) == len(cycles)
    # both at the saddle of 1.0 between the wells, to the dense profile's sampling
    assert settled.saddle_energy == pytest.approx(1.0, abs=0.05) and full.saddle_energy == pytest.approx(1.0, abs=0.05)


def test_a_settled_pair_resumed_from_any_step_ends_where_an_uninterrupted_one_does():
    schedule = TWELVE.replace_band(converge_change=1e-3, converge_cycles=2)
    straight, straight_cycles = _run(schedule)
    for stop_at in (41, 40 * (len(straight_cycles) - 1) + 1):  # in the second cycle; in the settling one
        resumed, cycles = _run(schedule, stop_at)
        assert len(resumed.history) == len(straight.history)
        assert torch.equal(resumed.pivots, straight.pivots) and resumed.saddle_energy == straight.saddle_energy
        assert cycles[-1].converged


def test_a_band_still_gaining_pivots_has_not_settled():
    """Every cycle inserts while a segment's residual is over the threshold: with a
    threshold so low that each cycle adds pivots, the saddle's small moves never end
    the pair early."""
    inserting = Schedule(cycles=(CYCLE.changed(max_insert=1),) * 6, name="inserting").replace_band(
        insertion_threshold=1e-9, max_pivots=20, converge_change=0.5, converge_cycles=1)
    result, cycles = _run(inserting)
    assert [len(e.pivot_losses) for e in cycles] == sorted(set(len(e.pivot_losses) for e in cycles))
    assert len(cycles) == 6 and not any(e.converged for e in cycles)
    assert result.history[-1].cycle == 6


@pytest.mark.parametrize("changes, wanted", [
    ({"converge_change": 1.0}, "converge_change"),
    ({"converge_change": -0.1}, "converge_change"),
    ({"converge_cycles": 0}, "converge_cycles"),
])
def test_bad_convergence_options_are_refused(changes, wanted):
    with pytest.raises(Exception, match=wanted):
        TWELVE.replace_band(**changes)

"""The app's model, without textual: schedule rows, the rooted MST, rates and ETAs."""

from __future__ import annotations

from tui_fakes import CONFIG, SCHEDULE, Events, config_with, finished_events, running_events

from engine.events import StepEnergies, UnknownEvent
from engine.paths.schedule import schedule_from_dict
from nebtui.app.model import SessionModel, cycle_rows
from sessions.events import WorkerDied


def test_schedule_phases_expand_to_cycles():
    rows = cycle_rows(schedule_from_dict(SCHEDULE))
    assert [(r.number, r.steps, r.lr) for r in rows] == [(1, 20, 0.01), (2, 20, 0.01), (3, 20, 0.001)]
    assert rows[0].optimiser_args == {"momentum": 0.9}
    assert SessionModel(config_with(schedule={"phase": [{"lr": 1}]})).schedule == [] and SessionModel().schedule == []


def test_mst_is_rooted_at_the_lowest_minimum_and_attacked_edges_come_from_the_events():
    model = SessionModel(CONFIG, pairs_total=3)
    events = finished_events()
    replace = next(i for i, e in enumerate(events) if getattr(e.event, "reason", None) == "replace")
    model.apply_all(events[: replace + 1])
    assert model.attacked_edges() == {(0, 1)}  # as the engine said when it chose (1, 2)
    model.apply_all(events[replace + 1:])
    assert model.attacked_edges() == set()  # (1, 2) finished
    assert model.minima == {0: -10.0, 1: -8.0, 2: -6.0}
    s02, s12 = model.view.mst[(0, 2)], model.view.mst[(1, 2)]
    assert model.mst_tree() == [(0, 0, -1, None), (1, 2, 0, s02), (2, 1, 2, s12)]


def test_step_rate_and_eta_from_event_times():
    model = SessionModel(CONFIG, pairs_total=3)
    model.apply_all(running_events())
    # pair (0, 2): 10 steps at one event, 30 steps five events (2.5 s) later
    assert model.rate.rate == 8.0
    # the pair's ETA at its own rate: 30 of its 60 steps left at 8 steps a second; the
    # session's: that, and the one pair waiting at what (0, 1) took (7 s: 14 events 0.5 s
    # apart from its first cycle to its end), not at the runner's estimate (6 to 9 s)
    pair_eta, session_eta = model.eta()
    assert pair_eta == 30 / 8 and session_eta == (30 / 8 + 7.0, 30 / 8 + 7.0)
    assert model.elapsed() == 0.5 * (len(running_events()) - 1)


def test_errors_are_marked_in_the_log():
    model = SessionModel()
    e = Events()
    e.add(WorkerDied(worker=0, pid=9, reason="signal 9", pair=[0, 1], restart_in=2.0))
    e.add(WorkerDied(worker=0, pid=11, reason="signal 9", pair=[0, 1], restart_in=0.0))
    e.add(StepEnergies(pair=(0, 1), restart=0, cycle=1, step=10, losses=[0.0, 1.0, 0.0]))
    model.apply_all(e.events)
    assert [(line.level, line.text) for line in model.log] == [
        ("error", "worker 0 (pid 9) died on pair (0, 1): signal 9; restarting in 2 s"),
        ("error", "worker 0 (pid 11) died on pair (0, 1): signal 9; restarting now")]
    assert model.view.current == (0, 1) and model.shown_pair().live_losses == [0.0, 1.0, 0.0]


def test_events_of_unknown_kinds_are_counted_and_skipped():
    model = SessionModel(CONFIG, pairs_total=3)
    e = Events()
    e.events = running_events()
    e.add(UnknownEvent({"kind": "pivots_frozen", "pair": [0, 2], "count": 3}))
    model.apply_all(e.events)
    reference = SessionModel(CONFIG, pairs_total=3)
    reference.apply_all(running_events())
    assert model.view.events == reference.view.events + 1
    assert [line.text for line in model.log] == [line.text for line in reference.log]
    assert model.shown_pair() == reference.shown_pair()

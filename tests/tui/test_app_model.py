"""The app's model, without textual: schedule rows, the rooted MST, rates and ETAs."""

from __future__ import annotations

from tui_fakes import SCHEDULE, finished_events, running_events

from nebtui.app.model import SessionModel, schedule_cycles


def test_schedule_phases_expand_to_cycles():
    rows = schedule_cycles(SCHEDULE)
    assert [(r.number, r.steps, r.lr) for r in rows] == [(1, 20, 0.01), (2, 20, 0.01), (3, 20, 0.001)]
    assert rows[0].optimiser_args == {"momentum": 0.9}
    assert schedule_cycles(None) == [] and schedule_cycles({"phase": [{"lr": 1}]}) == []


def test_mst_is_rooted_at_the_lowest_minimum_and_the_highest_edge_is_known():
    model = SessionModel(SCHEDULE, pairs_total=3)
    model.apply_all(finished_events())
    assert model.minima == {0: -10.0, 1: -8.0, 2: -6.0}
    s02, s12 = model.view.mst[(0, 2)], model.view.mst[(1, 2)]
    assert model.mst_tree() == [(0, 0, -1, None), (1, 2, 0, s02), (2, 1, 2, s12)]
    assert model.highest_edge() == ((0, 2), s02) and s02 > s12


def test_step_rate_and_eta_from_event_times():
    model = SessionModel(SCHEDULE, pairs_total=3)
    model.apply_all(running_events())
    # pair (0, 2): 10 steps at one event, 30 steps five events (2.5 s) later
    assert model.rate.rate == 8.0
    pair_eta, session_eta = model.eta()
    assert pair_eta == 30 / 8 and session_eta == 30 / 8 + 60 / 8
    assert model.elapsed() == 0.5 * (len(running_events()) - 1)


def test_errors_are_marked_in_the_log():
    model = SessionModel()
    model.apply({"seq": 0, "time": 1.0, "kind": "worker_died", "worker": 0, "pid": 9, "reason": "signal 9",
                 "pair": [0, 1], "restart_in": 2.0})
    model.apply({"seq": 1, "time": 2.0, "kind": "step_energies", "pair": [0, 1], "restart": 0, "cycle": 1,
                 "step": 10, "losses": [0.0, 1.0, 0.0]})
    assert [(line.level, line.text) for line in model.log] == [
        ("error", "worker 0 (pid 9) died on pair (0, 1): signal 9; restarting in 2 s")]
    assert model.current == (0, 1) and model.shown_pair().live_losses == [0.0, 1.0, 0.0]

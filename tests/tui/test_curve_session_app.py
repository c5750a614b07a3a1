"""The app shows a curve session (--method bezier / polychain) as what it is: its
CurveSchedule (steps, points of t per step, cycles, lr schedule) in the schedule
pane and in the step counts and ETAs, points of t in the energy pane, never
AutoNEB's cycles, insertions, pivots or restarts; and the energy pane draws each
step's losses where the step says it took them (StepEnergies.positions)."""

from __future__ import annotations

from typing import Any

import pytest
from tui_fakes import CONFIG, SCHEDULE, Events, FakeSource, app_test, config_with, running_events, wait_until

from engine.paths.registry import method_schedule
from engine.paths.curve_schedule import CurveSchedule
from engine.events import CycleStarted, StepEnergies
from engine.paths.schedule import schedule_from_dict
from nebtui.app import SessionApp, build_app
from nebtui.app.model import SessionModel
from nebtui.app.panes import EnergyPane, SchedulePane
from sessions.disk.eventlog import read_log
from sessions.disk.folder import SessionError, SessionFolder

pytestmark = pytest.mark.timeout(300)  # the shared sessions are made on first use


def config_of(folder) -> Any:
    """The session's config as the app reads it."""
    return SessionFolder.open(folder.parent, folder.name).config()


def shown(app, pane) -> str:
    return app.query_one(pane).render().plain


@app_test
async def test_a_finished_bezier_session_shows_its_curve_schedule_and_points_of_t(bezier_session):
    config = config_of(bezier_session)
    curve = method_schedule("bezier", config.schedule)  # as the runner derives it
    app = build_app(SessionFolder.open(bezier_session.parent, bezier_session.name))
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_until(pilot, lambda: app.model.view.lifecycle == "finished" and not app.redraw_pending
                             and "energy · pair (" in str(app.query_one(EnergyPane).border_title),
                             timeout=15, what="the replay of the whole log, drawn")
            schedule, energy = shown(app, SchedulePane), shown(app, EnergyPane)
            title = str(app.query_one(EnergyPane).border_title)
    finally:
        app.source.close()
        app.status_probe.close()
    assert isinstance(curve, CurveSchedule) and app.model.curve == curve
    assert f"bezier curve · {curve.steps} steps × {curve.points} points of t" in schedule
    assert f"{curve.cycles} cycles" in schedule and "lr first → last" in schedule
    assert "ins" not in schedule.split() and "climb" not in schedule  # not AutoNEB's table
    assert f"{curve.steps}" in schedule.splitlines()[-2]  # the lr plot's axis ends at the curve's last step
    assert "pivot" not in energy and "restart" not in energy
    assert "points of t a step" in energy and "t along the bezier curve" in energy
    assert title.endswith("bezier curve")


def test_a_curve_s_steps_count_and_place_as_the_curve_ran_them(bezier_session):
    """Replaying the real log: each step's positions are its values of t, drawn where they
    were drawn; the steps done count the curve's steps, to its last at each pair's end."""
    config = config_of(bezier_session)
    model = SessionModel(config)
    curve = model.curve
    assert model.pair_steps() == curve.steps and model.restarts == 1
    assert sum(row.steps for row in model.schedule) == curve.steps
    last_done: dict[tuple[int, int], int] = {}
    for entry in read_log(bezier_session / "events.jsonl"):
        model.apply(entry)
        event = entry.event
        if isinstance(event, CycleStarted):  # as the runs announced their cycles
            row = model.schedule[event.cycle - 1]
            assert (row.steps, row.lr, row.insert, row.climb) == (event.steps, event.lr, False, False)
        if not isinstance(event, StepEnergies):
            continue
        trace = model.view.progress[event.pair]
        t = model.live_positions(trace)
        assert t == event.positions and len(t) == len(event.losses) == curve.points
        assert all(i / curve.points <= value < (i + 1) / curve.points for i, value in enumerate(t))
        done = model.steps_done(trace)
        assert last_done.get(event.pair, 0) < done <= curve.steps
        last_done[event.pair] = done
    assert set(last_done.values()) == {curve.steps}  # every pair ran the whole curve schedule


def test_a_band_s_steps_carry_its_pivots_arc_fractions(mb_session):
    model = SessionModel(config_of(mb_session))
    steps = 0
    for entry in read_log(mb_session / "events.jsonl"):
        model.apply(entry)
        if isinstance(entry.event, StepEnergies):
            positions = model.live_positions(model.view.progress[entry.event.pair])
            assert positions == entry.event.positions and positions[0] == 0.0 and positions[-1] == 1.0
            assert positions == sorted(positions)
            steps += 1
    assert steps and model.curve is None and not model.curve_session


@pytest.mark.parametrize("method", ["bezier", "polychain"])
def test_a_curve_session_s_schedule_is_the_runner_s(method):
    model = SessionModel(config_with(method=method), pairs_total=3)
    curve = method_schedule(method, schedule_from_dict(SCHEDULE))
    assert model.curve == curve and model.curve_session and model.restarts == 1
    assert [row.steps for row in model.schedule] == [b - a for a, b in zip([0, *curve.cycle_ends()],
                                                                           curve.cycle_ends())]
    assert [row.lr for row in model.schedule][0] == curve.lr


@pytest.mark.parametrize("schedule", ["phases", None, {"band": {"restarts": "x"}}])
def test_a_schedule_that_does_not_read_gives_no_schedule_and_no_traceback(schedule):
    for model in (SessionModel(config_with(schedule=schedule, method="bezier")), SessionModel(None)):
        assert model.schedule == [] and model.curve is None and model.pair_steps() is None and model.restarts == 1


@pytest.mark.parametrize("method", ["neb", 5])
def test_a_method_no_version_knows_is_a_damaged_config_not_an_app(method):
    with pytest.raises(SessionError, match="method"):
        config_with(method=method)


def steps_with(positions_of) -> list:
    """The running session's events, the last step of pair (0, 2) given positions_of(losses)."""
    events = running_events()
    step = events[-1].event
    assert isinstance(step, StepEnergies)
    e = Events()
    e.events = events[:-1]
    e.add(StepEnergies(pair=step.pair, restart=step.restart, cycle=step.cycle, step=step.step, losses=step.losses,
                       positions=positions_of(step.losses)))
    return e.events


@pytest.mark.parametrize(("positions_of", "used"), [
    (lambda losses: None, False),  # a log written before steps had positions
    (lambda losses: [0.0, 1.0], False),  # not one per loss
    (lambda losses: [float("nan")] * len(losses), False),
    (lambda losses: [2.0 * i for i in range(len(losses))], False),  # off the path
    (lambda losses: [(i / (len(losses) - 1)) ** 2 for i in range(len(losses))], True),
])
def test_a_step_is_drawn_at_its_positions_when_they_fit_and_as_before_when_not(positions_of, used):
    events = steps_with(positions_of)
    model = SessionModel(CONFIG, pairs_total=3)
    model.apply_all(events)
    trace = model.shown_pair()
    assert model.live_positions(trace) == (events[-1].event.positions if used else None)


@app_test
async def test_the_energy_pane_draws_a_step_whose_positions_do_not_fit(tmp_path):
    for positions_of in (lambda losses: [0.5], lambda losses: [float("inf")] * len(losses)):
        app = SessionApp(FakeSource(steps_with(positions_of)), None, session_id="s", config=CONFIG,
                         clock=lambda: 0.0, pairs_total=3)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_until(pilot, lambda: "energy · pair (0, 2)" in str(app.query_one(EnergyPane).border_title),
                             what="the energy pane to draw the pair")
            assert "+" in shown(app, EnergyPane)  # the step's points, equally spaced as before positions

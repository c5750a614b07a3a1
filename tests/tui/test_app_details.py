"""What a new user saw wrong in the app: a minima count that grew while the minima loaded,
panes and a dialog cut at 120x36 and 80x24, and a barrier shown where the highest point of
a path is one of its minima."""

from __future__ import annotations

import json

import pytest
from cli_runs import copy_session
from tui_fakes import CONFIG, Events, FakeSource, app_test, config_with, running_events, wait_until

from engine.events import ConnectionFinished, CycleFinished, CycleStarted, MSTEdgeAdded, PairChosen
from nebtui.app import SessionApp, build_app
from nebtui.app.panes import EnergyPane, MSTPane, SchedulePane
from nebtui.app.screens import ConfirmStop
from sessions.disk.folder import SessionFolder
from sessions.events import RunnerStarted

pytestmark = pytest.mark.timeout(60)


def _drawn(app, events: int):
    return lambda: app.model.view.events >= events and not app.redraw_pending


@app_test
async def test_the_minima_count_is_the_sessions_while_its_minima_load(digits_session, nebtui_home):
    folder = copy_session(digits_session, nebtui_home)
    lines = (folder / "events.jsonl").read_text().splitlines(keepends=True)
    first_path = next(i for i, line in enumerate(lines) if json.loads(line)["kind"] == "connection_finished")
    (folder / "events.jsonl").write_text("".join(lines[:first_path]))  # one path's cycles: 2 of 3 minima seen
    app = build_app(SessionFolder.open(nebtui_home, folder.name))
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_until(pilot, _drawn(app, first_path), what="the log replayed")
            await pilot.pause()
            assert app.query_one(MSTPane).render().plain.startswith("minima 3 · pairs done 0/3")
    finally:
        app.source.close()
        app.status_probe.close()


@app_test
async def test_without_a_config_the_minima_count_is_unknown():
    events = running_events()
    app = SessionApp(FakeSource(events), None, session_id="s", config=CONFIG, clock=lambda: 0.0)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, _drawn(app, len(events)), what="the events drawn")
        await pilot.pause()
        assert app.query_one(MSTPane).render().plain.startswith("minima ? · pairs done 1/?")


@pytest.mark.parametrize("size", [(120, 36), (80, 24)], ids=["120x36", "80x24"])
@app_test
async def test_the_schedule_and_the_stop_dialog_fit_the_screen(size):
    events = running_events()
    app = SessionApp(FakeSource(events), None, session_id="digits-autoneb-20261207-165016", config=CONFIG,
                     clock=lambda: 0.0, pairs_total=3, minima_total=3)
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, _drawn(app, len(events)), what="the events drawn")
        await pilot.press("tab")  # at 80x24 the panes are tabs: the schedule is the next one
        await pilot.pause()
        schedule = app.query_one(SchedulePane).render().plain
        assert "…" not in schedule, schedule
        assert "session 0:11" in schedule and "8 steps/s" in schedule and "SGD(momentum=0.9)" in schedule
        assert "climb" in schedule

        app.push_screen(ConfirmStop(app.session_id))
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmStop), what="the stop dialog")
        await pilot.pause()
        label = app.screen.query_one("Label")
        box = label.parent.content_region
        assert box.contains_region(label.region), (box, label.region)
        assert label.region.height >= 2  # both sentences, wrapped where they must be


def _no_barrier_events() -> list:
    """Pair (0, 1) whose highest point is minimum 0 itself: the loss only falls along the path."""
    e = Events()
    e.add(RunnerStarted(pid=1, devices=["cpu"], resumed=False, pairs_done=0))
    e.add(PairChosen(pair=(0, 1), reason="initial", attacked_edge=None))
    e.add(CycleStarted(pair=(0, 1), restart=0, cycle=1, cycles=1, steps=20, lr=0.01, optimiser="SGD",
                       batch_size=None, insert=False, climb=False, pivots=3))
    xs = [i / 8 for i in range(9)]
    losses = [-6.0 - 4.0 * x for x in xs]
    e.add(CycleFinished(pair=(0, 1), restart=0, cycle=1, positions=xs, losses=losses, pivot_positions=[0, 0.5, 1],
                        pivot_losses=[-6.0, -8.0, -10.0], saddle_energy=-6.0, saddle_position=0.0))
    e.add(ConnectionFinished(pair=(0, 1), saddle_energy=-6.0, saddle_position=0.0, linear_saddle_energy=-5.0,
                             pivots=3, cycles=1, restarts=1))
    e.add(MSTEdgeAdded(a=0, b=1, saddle_energy=-6.0))
    return e.events


@app_test
async def test_a_saddle_at_an_end_is_no_barrier_in_the_panes():
    events = _no_barrier_events()
    app = SessionApp(FakeSource(events), None, session_id="s", config=CONFIG, clock=lambda: 0.0,
                     pairs_total=1, minima_total=2)
    async with app.run_test(size=(200, 48)) as pilot:
        await wait_until(pilot, _drawn(app, len(events)), what="the events drawn")
        await pilot.pause()
        energy = app.query_one(EnergyPane).render().plain
        assert "no barrier: the highest point (-6.0000) is minimum 0 itself" in energy
        assert "saddle -6.0000 at" not in energy and "▲" not in energy
        mst = app.query_one(MSTPane).render().plain
        assert "no barrier, highest at an end -6.0000 ─ minimum 0" in mst
        assert "saddle -6.0000" not in mst


@pytest.mark.parametrize("loss, said", [("mse", True), ("cross_entropy", False)])
def test_the_log_says_when_the_loss_has_no_error_rate(loss, said):
    config = config_with(problem={"kind": "network", "model": "mlp", "data": "digits", "loss": loss})
    app = SessionApp(FakeSource(running_events()), None, session_id="s", config=config, clock=lambda: 0.0)
    lines = [line.text for line in app.model.log]
    assert ("no error rate: the loss is mse; the panes show its losses" in lines) is said

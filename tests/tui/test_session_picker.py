"""The session picker shown by `nebtui` alone: lists the sessions, Enter picks one."""

from __future__ import annotations

import pytest
from tui_fakes import SCHEDULE, app_test

from nebtui.app import SessionListApp
from sessions.disk.folder import SessionFolder

pytestmark = pytest.mark.timeout(30)


@app_test
async def test_enter_picks_the_highlighted_session(tmp_path):
    older = SessionFolder.create(tmp_path, "older", {"schedule": SCHEDULE})
    newer = SessionFolder.create(tmp_path, "newer", {"schedule": SCHEDULE})
    app = SessionListApp(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        await pilot.press("down")  # newest first: the second row is the older session
        await pilot.press("enter")
    assert app.return_value.id == older.id and newer.id != older.id


@app_test
async def test_no_sessions_says_how_to_start_one(tmp_path):
    app = SessionListApp(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        assert "no sessions yet" in str(app.query_one("#heading").render())
        await pilot.press("q")
    assert app.return_value is None


@app_test
async def test_rows_show_at_once_and_their_status_and_pairs_come_from_the_logs(tmp_path):
    from engine.events import ConnectionFinished, StepEnergies
    from sessions.disk.eventlog import EventLogWriter
    from sessions.events import RunnerStarted, SessionFinished

    folder = SessionFolder.create(tmp_path, "long", {"problem": {"kind": "surface", "surface": "muller-brown"},
                                                     "schedule": SCHEDULE})
    with EventLogWriter(folder.events_path) as log:
        log.append(RunnerStarted(pid=1, devices=["cpu"], resumed=False))
        for step in range(1, 3000):
            log.append(StepEnergies(pair=(0, 1), restart=0, cycle=1, step=step, losses=[-1.0, -0.5, -2.0]))
        log.append(ConnectionFinished(pair=(0, 1), saddle_energy=-0.5, saddle_position=0.5, linear_saddle_energy=1.0,
                                      pivots=3, cycles=1, restarts=1))
        log.append(SessionFinished(reason="all pairs", pairs_done=1, mst=[[0, 1, -0.5]]))
    app = SessionListApp(tmp_path)
    async with app.run_test(size=(100, 24)) as pilot:
        table = app.query_one("DataTable")
        assert table.get_row("long")[0] == "long"  # listed before any log is read
        for _ in range(200):  # 10 s at most
            if table.get_row("long")[1] != "…":
                break
            await pilot.pause(0.05)
        assert table.get_row("long")[1:5] == ["finished", "muller-brown", "autoneb", "1/3"]
        await pilot.press("q")


@app_test
async def test_the_method_tells_autoneb_and_bezier_sessions_apart(tmp_path):
    surface = {"kind": "surface", "surface": "himmelblau"}
    SessionFolder.create(tmp_path, "neb", {"problem": surface, "schedule": SCHEDULE, "method": "autoneb"})
    SessionFolder.create(tmp_path, "curve", {"problem": surface, "schedule": SCHEDULE, "method": "bezier",
                                             "align": True})
    app = SessionListApp(tmp_path)
    async with app.run_test(size=(120, 24)) as pilot:
        table = app.query_one("DataTable")
        method = list(table.columns).index(next(k for k, c in table.columns.items() if str(c.label) == "method"))
        for _ in range(200):  # 10 s at most
            if all(table.get_row(name)[1] != "…" for name in ("neb", "curve")):
                break
            await pilot.pause(0.05)
        assert [table.get_row(name)[method] for name in ("neb", "curve")] == ["autoneb", "bezier aligned"]
        await pilot.press("q")


@app_test
async def test_the_keys_stay_on_screen_when_the_data_home_is_deep(tmp_path):
    from textual.geometry import Region

    deep = tmp_path.joinpath(*["a-folder-of-some-length"] * 8)  # 200 characters and more
    deep.mkdir(parents=True)
    SessionFolder.create(deep, "only", {"schedule": SCHEDULE})
    app = SessionListApp(deep)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.1)
        heading = app.query_one("#heading")
        shown = "".join(strip.text for strip in heading.render_lines(Region(0, 0, *heading.size)))
        assert "Enter attaches" in shown
        await pilot.press("q")

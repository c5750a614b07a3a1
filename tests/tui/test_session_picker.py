"""The session picker shown by `nebtui` alone: lists the sessions, Enter picks one."""

from __future__ import annotations

import pytest
from tui_fakes import SCHEDULE, app_test

from nebtui.app import SessionListApp
from sessions.folder import SessionFolder

pytestmark = pytest.mark.timeout(30)


@app_test
async def test_enter_picks_the_highlighted_session(tmp_path):
    older = SessionFolder.create(tmp_path, "older", {"schedule": SCHEDULE}, [])
    newer = SessionFolder.create(tmp_path, "newer", {"schedule": SCHEDULE}, [])
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
        assert "no sessions in" in str(app.query_one("#heading").render())
        await pilot.press("q")
    assert app.return_value is None

"""SVG snapshots of a running, a paused and a finished session at 80x24 and 160x48,
from fixed event lists and a fixed clock (nothing on screen depends on wall time)."""

from __future__ import annotations

import time

import pytest
from tui_fakes import CONFIG, FakeSource, finished_events, paused_events, running_events

from nebtui.app import SessionApp

STATES = {"running": running_events, "paused": paused_events, "finished": finished_events}


def make(state: str) -> SessionApp:
    return SessionApp(FakeSource(STATES[state]()), None, session_id=f"{state}-session", config=CONFIG,
                      clock=lambda: 0.0, pairs_total=3, minima_total=3)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
@pytest.mark.parametrize("state", list(STATES))
def test_session_screens(snap_compare, state, size):
    app = make(state)
    count = len(STATES[state]())

    async def settle(pilot) -> None:
        """Every event applied, the status probed, and no redraw due for half a second
        (a fixed pause was not enough on a loaded machine)."""
        deadline = time.monotonic() + 20
        quiet_since = None
        while True:
            now = time.monotonic()
            if app.model.view.events >= count and app.status_line.plain and not app.redraw_pending:
                quiet_since = quiet_since or now
                if now - quiet_since >= 0.5:
                    break
            else:
                quiet_since = None
            assert now < deadline, "the screen did not settle within 20 s"
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=settle)

"""The app on a real Mueller-Brown session: a detached runner started by the CLI,
its real event log, its control socket and its status from the lock."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tui_fakes import app_test, wait_until

from nebtui.app import build_app
from nebtui.app.panes import EnergyPane, LogPane, MSTPane, SchedulePane
from sessions.disk.control import ControlError, send_command
from sessions.disk.folder import SessionFolder
from sessions.disk.lock import holder

NEBTUI = str(Path(sys.executable).with_name("nebtui"))
pytestmark = pytest.mark.timeout(120)


def start_demo(home: Path, name: str, scale: str) -> SessionFolder:
    done = subprocess.run([NEBTUI, "demo", "muller-brown", "--detach", "--scale", scale, "--session", name],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "NEBTUI_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    return SessionFolder.open(home, name)


def end(folder: SessionFolder) -> None:
    """Stop the runner if it still runs, and wait until it has left."""
    try:
        send_command(folder.control_socket_path, "stop", timeout=5)
    except ControlError:
        pass
    deadline = time.monotonic() + 30
    while holder(folder.lock_path) is not None:
        assert time.monotonic() < deadline, "the runner did not exit within 30 s of stop"
        time.sleep(0.1)


def log_shown(app) -> bool:
    """Every line the model logged is written to the log pane and laid out."""
    pane = app.query_one(LogPane)
    return pane.written == app.model.log_count and len(pane.lines) > 0 and not app.redraw_pending


def seen(app) -> str:
    """The app's status and the end of its log, for a failure message."""
    return f"status {app.status!r}, log ...{pane_text(app, LogPane)[-600:]}"


def pair_lines(log: str) -> list[str]:
    """The per-cycle lines of the pairs ("pair (0, 1) restart 1 cycle 2: 7 pivots, saddle ...")."""
    return re.findall(r"pair \(\d+, \d+\) restart \d+ cycle \d+: \d+ pivots, saddle -?[\d.]+ at [\d.]+", log)


def pane_text(app, pane) -> str:
    widget = app.query_one(pane)
    if isinstance(widget, LogPane):  # its lines wrap at the pane's width: read them as one run of words
        return " ".join(" ".join(strip.text for strip in widget.lines).split())
    return widget.render().plain


@app_test
async def test_pause_resume_stop_on_a_real_session_then_attach_replays(nebtui_home):
    # ten times the surface's schedule (about 35 s quiet): the session cannot finish before the
    # pause lands, however far a busy machine lets the app lag behind its runner; it is stopped
    folder = start_demo(nebtui_home, "tui-real", "10")
    try:
        app = build_app(folder)
        async with app.run_test(size=(160, 48)) as pilot:
            await wait_until(pilot, lambda: app.status == "running" and app.model.shown_pair() is not None,
                             timeout=60, what="the runner to run its first steps")
            await pilot.press("p")
            await wait_until(pilot, lambda: app.status == "paused", timeout=30, what="the session to pause",
                             seen=lambda: seen(app))
            assert app.check_action("resume", ()) is True and app.check_action("pause", ()) is None
            await wait_until(pilot, lambda: "session paused" in pane_text(app, LogPane), what="the pause in the log")
            await pilot.press("r")
            await wait_until(pilot, lambda: app.status == "running" and "session resumed" in pane_text(app, LogPane),
                             timeout=30, what="the resume", seen=lambda: seen(app))
            await wait_until(pilot, lambda: pair_lines(pane_text(app, LogPane)), timeout=60,
                             what="a cycle's line in the log", seen=lambda: seen(app))
            await pilot.press("s")
            await pilot.press("y")
            await wait_until(pilot, lambda: app.status == "stopped", timeout=30, what="the stop", seen=lambda: seen(app))
            assert app.check_action("pause", ()) is None and app.check_action("stop", ()) is None
            await wait_until(pilot, lambda: app.model.view.lifecycle == "stopped" and log_shown(app),
                             what="the live log pane written to the end")
            live_log = pane_text(app, LogPane)
        app.source.close()
        app.status_probe.close()

        again = build_app(folder)  # attach afresh: the whole history is replayed
        async with again.run_test(size=(160, 48)) as pilot:
            await wait_until(pilot, lambda: again.status == "stopped" and again.model.view.lifecycle == "stopped"
                             and log_shown(again), timeout=15, what="the replay")
            log = pane_text(again, LogPane)
            assert "session paused" in log and "session resumed" in log
            assert pair_lines(log) and pair_lines(log) == pair_lines(live_log)
            # the pane names its pair in its border when it draws: on the next frame
            await wait_until(pilot, lambda: "energy · pair (" in str(again.query_one(EnergyPane).border_title),
                             what="the energy pane's border to name its pair")
            assert "now: pair" in pane_text(again, SchedulePane)
            assert "minimum 0 (E -146.6995)" in pane_text(again, MSTPane)  # the lowest Mueller-Brown minimum
        again.source.close()
        again.status_probe.close()
    finally:
        end(folder)

"""A runner the CLI has just started is a starting session at once: by the time
start_runner returns, the log says the runner is starting and the heartbeat that it is
alive, though the runner's process is still importing. (Before, it held the lock with
no heartbeat for a third of a second or more, and every reader called it unresponsive.)"""

from __future__ import annotations

import os
import signal

from cli_runs import logged_events, wait_until

from sessions.disk.folder import SessionFolder
from sessions.disk.lock import holder
from sessions.processes.spawn import start_runner
from sessions.view import read_view, status


def test_a_started_runner_has_announced_itself_when_start_runner_returns(nebtui_home, mb_session):
    nebtui_home.mkdir()
    reference = SessionFolder.open(mb_session.parent, mb_session.name)
    folder = SessionFolder.create(nebtui_home, "fresh", reference.config())
    pid = start_runner(folder)
    try:
        assert status(folder, read_view(folder)) == ("running", pid)
        first = logged_events(folder.events_path)[0]
        assert (first["kind"], first["phase"]) == ("startup_phase_started", "runner")
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: holder(folder.lock_path) is None, 120, "the runner to leave")
    phases = [e["phase"] for e in logged_events(folder.events_path) if e["kind"] == "startup_phase_started"]
    assert phases.count("runner") == 1  # announced once: the runner does not say it again

"""A worker frozen halfway through a message holds up nothing but itself: the runner
reads each worker's pipe on a thread of its own, so the other worker's pairs go on."""

from __future__ import annotations

import os
import signal
import time

import pytest
from cli_runs import digits_args, logged_events, nebtui, wait_until

from sessions.disk.lock import holder


@pytest.mark.timeout(240)
def test_a_worker_frozen_mid_message_leaves_the_other_working(nebtui_home, digits_minima, digits_schedule):
    # Long cycles: a band state of the digits MLP is far larger than a pipe's 64 kB buffer.
    done = nebtui(nebtui_home, *digits_args(digits_minima, digits_schedule), "--scale", "4", "--workers", "2",
                  "--detach", "--session", "frozen")
    assert done.returncode == 0, done.stderr
    log = nebtui_home / "frozen" / "events.jsonl"
    runner = holder(nebtui_home / "frozen" / "lock")
    assert runner is not None

    def steps() -> int:
        return sum(e["kind"] == "step_energies" for e in logged_events(log))

    def two_stepping() -> dict[int, tuple[int, int]] | None:
        events = logged_events(log)
        pids = {e["worker"]: e["pid"] for e in events if e["kind"] == "worker_started"}
        stepping = {tuple(e["pair"]) for e in events if e["kind"] == "step_energies"}
        finished = {tuple(e["pair"]) for e in events if e["kind"] == "connection_finished"}
        return pids if len(pids) == 2 and len(stepping - finished) == 2 else None

    pids = wait_until(two_stepping, 120, "both workers stepping")
    try:
        # The runner stops reading while each worker sends its state (every 0.2 s): worker
        # 0's message fills its pipe and waits half written; then worker 0 is frozen there.
        os.kill(runner, signal.SIGSTOP)
        time.sleep(1.0)
        os.kill(pids[0], signal.SIGSTOP)
        os.kill(runner, signal.SIGCONT)
        time.sleep(1.0)  # what both had sent before is read by now (or never, by a runner stuck on worker 0)
        seen = steps()
        # only worker 1 can step now: its steps keep coming
        wait_until(lambda: steps() > seen, 60, "the other worker's steps to go on")
    finally:
        os.kill(pids[0], signal.SIGCONT)
        os.kill(runner, signal.SIGCONT)
    wait_until(lambda: holder(nebtui_home / "frozen" / "lock") is None, 180, "the end of the session")
    assert logged_events(log)[-1]["kind"] == "session_finished"

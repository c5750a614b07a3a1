"""A control command expires with its client's deadline: a runner that could not
take it in time (here: stopped with SIGSTOP) never applies it later."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from sessions.disk.control import ControlError, send_command
from sessions.disk.lock import holder

NEBTUI = str(Path(sys.executable).with_name("nebtui"))


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:g} s")
        time.sleep(0.05)
    return value


def logged(folder: Path) -> list[dict[str, Any]]:
    """The events of the log as written (complete lines only)."""
    data = (folder / "events.jsonl").read_bytes()
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines() if line.strip()]


def status(folder: Path) -> str | None:
    try:
        return send_command(folder / "control.sock", "status", timeout=10)["status"]
    except ControlError:
        return None


@pytest.mark.timeout(120)
def test_a_command_that_times_out_is_never_applied(nebtui_home):
    done = subprocess.run([NEBTUI, "demo", "muller-brown", "--detach", "--device", "cpu", "--scale", "50",
                           "--session", "frozen"], capture_output=True, text=True, timeout=90,
                          env={**os.environ, "NEBTUI_HOME": str(nebtui_home)})
    assert done.returncode == 0, done.stderr
    folder = nebtui_home / "frozen"
    pid = holder(folder / "lock")
    assert pid is not None
    wait_until(lambda: status(folder) == "running", 60, "a running session answering on its socket")

    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(ControlError) as caught:
            send_command(folder / "control.sock", "pause", timeout=1.0)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert str(caught.value) == ("its runner did not answer within 1 s (stopped or overloaded?): the pause command "
                                 "expired unapplied; try again")

    # The socket answers in order: once this status is answered, the stale pause has been dealt with.
    assert status(folder) == "running"
    assert not [e for e in logged(folder) if e["kind"] in ("control_received", "session_paused")]

    reply = send_command(folder / "control.sock", "stop", timeout=10)  # a live command is applied as ever
    assert reply["accepted"]
    wait_until(lambda: holder(folder / "lock") is None, 60, "the runner to stop")
    kinds = [e["kind"] for e in logged(folder)]
    assert kinds[-1] == "session_stopped" and "session_paused" not in kinds
    received = [(e["command"], e["accepted"]) for e in logged(folder) if e["kind"] == "control_received"]
    assert received == [("stop", True)]

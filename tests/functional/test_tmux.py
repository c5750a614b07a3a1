"""The product in a real terminal: tmux runs `nebtui demo`, we read the screen."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

NEBTUI = str(Path(sys.executable).with_name("nebtui"))
pytestmark = pytest.mark.timeout(240)


SOCKET = f"nebtui-test-{uuid.uuid4().hex[:8]}"  # a tmux server of our own, never the user's


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, *args], capture_output=True, text=True, timeout=30, check=True).stdout


def screen(target: str) -> str:
    return tmux("capture-pane", "-p", "-t", target)


def big(target: str) -> None:
    """160x48: with no client attached, tmux would keep its default 80x24."""
    tmux("resize-window", "-t", target, "-x", "160", "-y", "48")


def wait_for(target: str, check, what: str, deadline: float = 90.0) -> str:
    end = time.monotonic() + deadline
    text = ""
    while time.monotonic() < end:
        text = screen(target)
        if check(text):
            return text
        time.sleep(0.3)
    raise AssertionError(f"no {what} on the screen within {deadline:g} s; it shows:\n{text}")


@pytest.fixture
def session_name():
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: .ci/run installs it (apt-get install tmux)")
    name = f"nebtui-test-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True, timeout=30)


def test_demo_in_a_terminal_then_detach_and_attach(session_name, nebtui_home):
    # COLUMNS/LINES from the test process (set by the snapshot plugin) would pin the app at 80x24
    command = f"env -u COLUMNS -u LINES TERM=xterm-256color NEBTUI_HOME={nebtui_home} {NEBTUI} demo muller-brown --scale 0.2; sleep 120"
    tmux("new-session", "-d", "-s", session_name, "-x", "160", "-y", "48", command)
    target = f"{session_name}:0"
    big(target)
    # the panes may be drawn while the runner still starts (on a busy machine): wait for its status too
    wait_for(target, lambda s: "energy ·" in s and "schedule" in s and "MST" in s and "╭─ log" in s
             and ("RUNNING" in s or "FINISHED" in s), "the energy, schedule and MST panes (and the log), running")
    wait_for(target, lambda s: "FINISHED" in s, "finished status")
    tmux("send-keys", "-t", target, "q")
    wait_for(target, lambda s: "detached from session" in s, "detach message")

    listed = subprocess.run([NEBTUI, "sessions", "list", "--json"], capture_output=True, text=True, timeout=60)
    (session,) = json.loads(listed.stdout)
    assert session["status"] == "finished"
    tmux("new-window", "-t", session_name, f"env -u COLUMNS -u LINES TERM=xterm-256color NEBTUI_HOME={nebtui_home} "
         f"{NEBTUI} sessions attach {session['id']}; sleep 120")
    big(f"{session_name}:1")
    again = wait_for(f"{session_name}:1", lambda s: "FINISHED" in s and "saddle" in s, "replayed session")
    assert "muller-brown" in again
    tmux("send-keys", "-t", f"{session_name}:1", "q")
    wait_for(f"{session_name}:1", lambda s: "detached from session" in s, "second detach")

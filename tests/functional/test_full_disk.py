"""A disk that fills up under a running session, for real: the data home on a small
tmpfs in a mount namespace of its own (unshare, as root or as a user where user
namespaces are on). The runner stops, says why where the user looks (the attached
command's one line, `sessions show`), and once there is room `sessions resume`
finishes the session as one that never stopped."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from cli_runs import MB_ARGS, NEBTUI

pytestmark = pytest.mark.timeout(300)

SCRIPT = """
set -u
mount -t tmpfs -o size=$SIZE,mode=0700 tmpfs "$DATA_HOME"
export NEBTUI_HOME="$DATA_HOME"
$NEBTUI $ARGS --headless --session full > "$OUT/run.out" 2> "$OUT/run.err"; echo $? > "$OUT/run.rc"
$NEBTUI sessions show full > "$OUT/show.out" 2> "$OUT/show.err"
$NEBTUI sessions list > "$OUT/list.out" 2>&1
mount -o remount,size=8m "$DATA_HOME"  # room again
$NEBTUI sessions resume full > "$OUT/resume.out" 2> "$OUT/resume.err"; echo $? > "$OUT/resume.rc"
$NEBTUI sessions show full --json > "$OUT/after.json" 2>&1
cp "$DATA_HOME/full/results/result.json" "$OUT/result.json"
"""


def _mount_namespaces() -> bool:
    """Whether this machine lets a process mount a tmpfs of its own (root, or user namespaces on)."""
    try:
        return subprocess.run(["unshare", "--mount", "--map-root-user", "true"], capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _mount_namespaces(), reason="needs a mount namespace of its own (unshare --map-root-user), "
                                                    "which this machine refuses")
def test_a_full_disk_stops_the_session_with_its_reason_and_resume_finishes_it(tmp_path, mb_session):
    """At 400 kB, 256 of them the runner's reserve, the event log fills up during the first
    pair (at 600 kB a finished path's file does not fit first: the same stop, 20 s more
    here; a file size limit there is test_demo_cli's)."""
    home, out = tmp_path / "home", tmp_path / "out"
    home.mkdir()
    out.mkdir()
    env = {**os.environ, "DATA_HOME": str(home), "OUT": str(out), "NEBTUI": NEBTUI, "ARGS": shlex.join(MB_ARGS),
           "SIZE": "400k"}
    done = subprocess.run(["unshare", "--mount", "--map-root-user", "bash", "-c", SCRIPT], env=env,
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0 and not done.stderr, done.stderr

    # the attached command: one line that says why and how to go on, no traceback
    assert (out / "run.rc").read_text().strip() == "1"
    run_err = (out / "run.err").read_text()
    [line] = run_err.splitlines()
    assert line.startswith("nebtui: session full stopped: disk full: ") and "No space left on device" in line
    assert line.endswith("free space, then nebtui sessions resume full continues from the last checkpoint")
    # what sessions show and list say of it
    show = (out / "show.out").read_text()
    assert "status     stopped" in show and "stopped_because disk full: " in show
    assert "full" in (out / "list.out").read_text() and "(disk full)" in (out / "list.out").read_text()

    # with room again, resume finishes it as the session that never stopped
    assert (out / "resume.rc").read_text().strip() == "0", (out / "resume.err").read_text()
    after = json.loads((out / "after.json").read_text())
    assert after["status"] == "finished" and after["stopped_because"] is None
    assert json.loads((out / "result.json").read_text()) == json.loads(
        (mb_session / "results" / "result.json").read_text())

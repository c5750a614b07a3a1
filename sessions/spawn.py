"""Starting a session's runner as a detached process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from sessions.folder import SessionError, SessionFolder
from sessions.lock import holder


def start_runner(folder: SessionFolder, wait: float = 60.0) -> int:
    """Start the runner in its own process session (immune to SIGHUP and to the
    terminal going away; stdin from /dev/null; stdout and stderr to runner.log)
    and wait until it holds the session's lock. Returns its pid."""
    pid = holder(folder.lock_path)
    if pid is not None:
        raise SessionError(
            f"session {folder.id} is being run by pid {pid}: stop it with nebtui sessions stop {folder.id}, or wait"
        )
    with open(folder.runner_log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sessions.runner", str(folder.path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=folder.path,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **cpu_friendly_env()},
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if holder(folder.lock_path) == process.pid:
            return process.pid
        code = process.poll()
        if code is not None:
            raise SessionError(
                f"the runner of session {folder.id} exited at once (code {code}): {last_line(folder)}"
            )
        time.sleep(0.05)
    raise SessionError(f"the runner of session {folder.id} did not start within {wait:g} s: see {folder.runner_log_path}")


def cpu_friendly_env() -> dict[str, str]:
    """OpenMP threads that sleep instead of spinning while they wait: with spinning
    threads, torch on a CPU shared with other processes (the runner, a viewer,
    another session) was measured 30-100x slower. A value the user set is kept."""
    return {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def last_line(folder: SessionFolder) -> str:
    """The runner log's last non-empty line (what a failing runner said last)."""
    try:
        lines = folder.runner_log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no runner log"
    return lines[-1] if lines else "the runner log is empty"

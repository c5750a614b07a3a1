"""A local session's workers are forked from multiprocessing's fork server, not from
the runner (which holds the session's lock), and they end with their runner: a runner
killed -9 leaves no worker and no fork server behind. They run with the runner's
environment: OpenMP threads that sleep while they wait, and malloc settings that
reuse freed memory."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from cli_runs import alive, logged_events, nebtui, wait_until

from sessions.disk.lock import holder
from sessions.processes.spawn import MALLOC_TUNABLES


def environment_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode(errors="replace").split("=", 1) for e in entries if b"=" in e)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.timeout(120)
def test_workers_come_from_the_fork_server_and_end_with_a_killed_runner(nebtui_home):
    done = nebtui(nebtui_home, "demo", "muller-brown", "--detach", "--device", "cpu", "--scale", "50",
                  "--workers", "2", "--session", "forked")
    assert done.returncode == 0, done.stderr
    folder = nebtui_home / "forked"
    runner = holder(folder / "lock")
    assert runner is not None
    try:  # the runner is killed whatever happens: a failed check leaves no run behind
        log = folder / "events.jsonl"
        started = wait_until(lambda: len(pids := [e["pid"] for e in logged_events(log) if e["kind"] == "worker_started"])
                             == 2 and pids, 60, "both workers started")
        servers = {parent_of(pid) for pid in started}
        assert len(servers) == 1 and runner not in servers  # one fork server, started by the runner
        [server] = servers
        assert parent_of(server) == runner
        for pid in started:
            environment = environment_of(pid)
            # glibc parses the variable in place in the initial environment block that /proc
            # shows, cutting it after the first tunable (the process's environ keeps it whole)
            tunables = environment.get("GLIBC_TUNABLES")
            assert tunables and os.environ.get("GLIBC_TUNABLES", MALLOC_TUNABLES).startswith(tunables), tunables
            assert environment.get("OMP_WAIT_POLICY") == os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    finally:
        os.kill(runner, signal.SIGKILL)
    for pid in (*started, server):
        wait_until(lambda: not alive(pid), 30, f"process {pid} to end with its runner")
    assert holder(folder / "lock") is None

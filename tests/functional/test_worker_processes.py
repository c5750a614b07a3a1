"""A local session's workers are forked from multiprocessing's fork server, not from
the runner (which holds the session's lock); on the CPU that server is a fork of the
runner made once its imports are, holding none of its files. They end with their runner: a runner
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


def files_of(pid: int) -> list[str]:
    """What the process's descriptors point at."""
    targets = []
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            targets.append(os.readlink(entry))
        except FileNotFoundError:  # closed while listed
            pass
    return targets


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
        # a fork of the runner once its imports are made (not an interpreter importing torch
        # again), holding none of the runner's files but its standard streams (runner.log):
        # neither the session's lock nor its event log
        assert Path(f"/proc/{server}/cmdline").read_bytes() == Path(f"/proc/{runner}/cmdline").read_bytes()
        assert {Path(t).name for t in files_of(server) if t.startswith(str(folder))} <= {"runner.log"}
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


# A runner of its own: its one worker, frozen once ready, is sent a job far larger than a
# pipe holds, so that the queue's feeder thread stops halfway through writing it.
HALF_WRITTEN = """
import os, signal, sys, time
from sessions.disk.folder import SessionFolder
from sessions.processes.messages import WorkerReady
from sessions.processes.workers import LocalPool

folder = SessionFolder.open(sys.argv[1], sys.argv[2])
pool = LocalPool(["cpu"], folder.config(), 60.0)
pool.start()
deadline, ready = time.monotonic() + 120, None
while ready is None and time.monotonic() < deadline:
    ready = next((m for m in pool.poll(0.5) if isinstance(m, WorkerReady)), None)
os.kill(ready.pid, signal.SIGSTOP)
pool.submit(0, (0, 1), bytes(4 << 20))
print(ready.pid, flush=True)
time.sleep(300)
"""


def _writing_to_a_full_pipe(pid: int) -> bool:
    tasks = Path(f"/proc/{pid}/task")
    return any("pipe_write" in (task / "wchan").read_text() for task in tasks.iterdir())


@pytest.mark.timeout(120)
def test_a_worker_whose_runner_died_halfway_through_sending_a_job_ends(mb_session):
    """Killed -9 while it wrote a job into a worker's queue, the runner leaves half a message
    there; the worker, reading it, would wait for ever for the rest (its own copy of the
    queue's writing end keeps the pipe open), and must end all the same."""
    import subprocess
    import sys

    runner = subprocess.Popen([sys.executable, "-c", HALF_WRITTEN, str(mb_session.parent), mb_session.name],
                              stdout=subprocess.PIPE, text=True)
    worker = None
    try:
        worker = int(runner.stdout.readline())
        wait_until(lambda: _writing_to_a_full_pipe(runner.pid), 30, "the job's write to stop at a full pipe")
    finally:
        runner.kill()
        runner.wait(timeout=30)
        if worker is not None:
            os.kill(worker, signal.SIGCONT)  # it reads what there is of the job, then waits for the rest
    try:
        wait_until(lambda: not alive(worker), 30, f"worker {worker} to end with its runner")
    finally:  # nothing left running after a failure
        if alive(worker):
            server = parent_of(worker)
            os.kill(worker, signal.SIGKILL)
            os.kill(server, signal.SIGKILL)

"""Starting a session's runner as a detached process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sessions.disk.folder import SessionError, SessionFolder
from sessions.disk.lock import LockedError, RunnerLock, holder

if TYPE_CHECKING:
    from sessions.disk.eventlog import EventLogWriter


def start_runner(folder: SessionFolder, wait: float = 60.0) -> int:
    """Start the runner in its own process session (immune to SIGHUP and to the
    terminal going away; stdin from /dev/null; stdout and stderr to runner.log)
    and wait until it holds the session's lock and has announced itself (``announce``).
    Returns its pid."""
    pid = holder(folder.lock_path)
    if pid is not None:
        raise SessionError(
            f"session {folder.id} is being run by pid {pid}: stop it with nebtui sessions stop {folder.id}, or wait"
        )
    from sessions.problem.trust import runnable_config

    runnable_config(folder)  # what the runner would refuse, refused here in the user's words
    since = time.time()
    with open(folder.runner_log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sessions.processes.spawn", str(folder.path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=folder.path,
            # the folder is its working directory, and it is data: no module is imported from it
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONSAFEPATH": "1", **cpu_friendly_env()},
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if holder(folder.lock_path) == process.pid and _beaten_since(folder, since):
            return process.pid
        code = process.poll()
        if code is not None:
            raise SessionError(
                f"the runner of session {folder.id} exited at once (code {code}): {last_line(folder)}"
            )
        time.sleep(0.05)
    raise SessionError(f"the runner of session {folder.id} did not start within {wait:g} s: see {folder.runner_log_path}")


def _beaten_since(folder: SessionFolder, since: float) -> bool:
    age = folder.heartbeat_age()
    return age is not None and age <= time.time() - since


def announce(folder: SessionFolder) -> EventLogWriter:
    """The runner's first word, before its imports (a third of a second or more): the log
    says the runner is starting and the heartbeat that it is alive. A viewer that opens the
    session as soon as the CLI has started its runner then shows "starting the runner" at
    once, not a session held by a process with no heartbeat ("unresponsive"). Returns the
    log's writer, for the runner to go on with."""
    from sessions.disk.eventlog import EventLogWriter
    from sessions.events import StartupPhaseStarted

    log = EventLogWriter(folder.events_path)
    try:
        log.append(StartupPhaseStarted(phase="runner"))
        folder.beat()
    except BaseException:
        log.close()
        raise
    return log


# glibc's malloc keeps freed memory for reuse instead of handing every large block
# back to the system: by default each activation of a few MB or more is a fresh mmap,
# faulted in page by page at every step (ResNet-20 at batch 512 on two cores: about
# 550,000 page faults per forward and backward, 2.06 s; with these, none and 1.24 s).
# A worker's peak memory then stays with it until it exits; it needs that peak at
# every step anyway. Other C libraries ignore the variable.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296"


def cpu_friendly_env() -> dict[str, str]:
    """The environment of the runner, and so of its fork server and workers:
    OpenMP threads that sleep instead of spinning while they wait (with spinning
    threads, torch on a CPU shared with other processes, the runner, a viewer,
    another session, was measured 30-100x slower), and malloc settings that reuse
    freed memory (``MALLOC_TUNABLES``). Under an address-space limit (``ulimit -v``),
    two malloc arenas in all: glibc reserves 64 MB of address space for each thread's
    arena, and a thread refused one asks again at every allocation (a runner under a
    limit was seen spinning in mmap for minutes). Values the user set are kept."""
    import resource

    env = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
           "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES", MALLOC_TUNABLES)}
    if resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY:
        env["MALLOC_ARENA_MAX"] = os.environ.get("MALLOC_ARENA_MAX", "2")
    return env


def last_line(folder: SessionFolder) -> str:
    """The runner log's last non-empty line (what a failing runner said last)."""
    try:
        lines = folder.runner_log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no runner log"
    return lines[-1] if lines else "the runner log is empty"


def runner_main(argv: list[str] | None = None) -> int:
    """The runner's process (``python -m sessions.processes.spawn SESSION_FOLDER``). It takes the
    session's lock and announces the runner (``announce``) before it imports the runner (a
    third of a second of schedules and engine modules), so that the CLI, which waits for
    that, paints its app sooner and with the runner's first phase on it;
    and the workers, which multiprocessing starts by importing this main module again,
    import only this light one."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sessions.processes.spawn SESSION_FOLDER", file=sys.stderr)
        return 2
    path = Path(args[0])
    try:
        folder = SessionFolder.open(path.parent, path.name)
        lock = RunnerLock(folder.lock_path)
        lock.acquire()
    except SessionError as error:  # LockedError: another runner holds the session
        print(f"nebtui runner: {error}", file=sys.stderr)
        return 3 if isinstance(error, LockedError) else 2
    try:
        log = announce(folder)
    except (SessionError, OSError) as error:  # a full disk, say: nothing was run
        print(f"nebtui runner: {error}", file=sys.stderr)
        lock.release()
        return 2
    from sessions.processes.runner import Runner

    try:
        runner = Runner(folder)
    except SessionError as error:  # its config: damaged, or naming a factory this user did not vouch for
        print(f"nebtui runner: {error}", file=sys.stderr)
        _refused(log, str(error))
        lock.release()
        return 2
    return runner.main(lock, log=log)


def _refused(log: EventLogWriter, message: str) -> None:
    """The session's log says why the runner would not run it, as a failed session."""
    from sessions.events import SessionFailed

    try:
        log.append(SessionFailed(message=message))
    except SessionError:
        pass
    finally:
        log.close()


if __name__ == "__main__":
    sys.exit(runner_main())

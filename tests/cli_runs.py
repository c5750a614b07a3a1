"""Running nebtui in tests: the installed script as a real process, the command
line in this process, and the commands that make the shared finished sessions
(see conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

NEBTUI = str(Path(sys.executable).with_name("nebtui"))

# The shared Mueller-Brown session: long enough to be killed several times while
# it runs (about 3 s of work on an idle core, 3 pairs), so the same command makes
# the reference that interrupted runs are compared with.
MB_ARGS = ("demo", "muller-brown", "--device", "cpu", "--scale", "0.6", "--checkpoint-every", "0.2")
# The shared digits minima: three MLPs trained to about 97 % on the test set.
DIGITS_TRAIN_ARGS = ("train", "--model", "mlp", "--data", "digits", "--count", "3", "--scale", "0.3")
def sgd_schedule(name: str, max_pivots: int, inserting: tuple[int, int], settling: tuple[int, int]) -> str:
    """A schedule file's text: ``inserting`` = (cycles, steps) at lr 0.1 with insertion, then
    ``settling`` = (cycles, steps) at lr 0.01 without; SGD with momentum 0.9, minibatch 128."""
    phases = [(inserting, 0.1, "true"), (settling, 0.01, "false")]
    return (f'name = "{name}"\n[band]\ninitial_pivots = 3\nmax_pivots = {max_pivots}\n' + "".join(
        f"[[phase]]\nrepeat = {repeat}\nsteps = {steps}\nlr = {lr}\noptimiser = \"SGD\"\n"
        f"optimiser_args = {{ momentum = 0.9 }}\nbatch_size = 128\ninsert = {insert}\n"
        for (repeat, steps), lr, insert in phases))


# The shared digits session's schedule: a few seconds of work.
DIGITS_SCHEDULE = sgd_schedule("tiny", 12, (3, 30), (2, 30))


# `nebtui report` without its costlier analyses (Hessian, slices, ensembles): what a test of the rest asks
QUICK_REPORT = ("--hessian-k", "0", "--slices", "0", "--ensemble-k", "0")


def digits_args(minima: Path, schedule: Path) -> tuple[str, ...]:
    """The explore command of the shared digits session: the same command makes the same session."""
    return ("explore", str(minima), "--schedule", str(schedule), "--strategy", "loop", "--device", "cpu",
            "--checkpoint-every", "0.2")


def nebtui(home: Path | None, *args: str, timeout: float = 240, **run: Any) -> subprocess.CompletedProcess[str]:
    """The installed ``nebtui`` script as a real process, in the data home ``home`` if given."""
    env = {**os.environ, **({"NEBTUI_HOME": str(home)} if home is not None else {})}
    return subprocess.run([NEBTUI, *args], capture_output=True, text=True, timeout=timeout, env=env, **run)


def in_process(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The command line run in this process (Typer's CliRunner), as a CompletedProcess.
    An exception that escapes the command (a traceback a user would see) is raised here."""
    from typer.testing import CliRunner

    from nebtui.cli import app

    result = CliRunner().invoke(app, list(args), env={"NEBTUI_HOME": str(home)} if home is not None else None)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["nebtui", *args], result.exit_code, result.stdout, result.stderr)


def assert_one_clear_line(done: subprocess.CompletedProcess[str], message: str) -> None:
    """Bad input: a non-zero exit and one line on stderr saying what is wrong, no traceback."""
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nebtui: "), done.stderr
    assert message in lines[0], lines[0]


def copy_session(folder: Path, home: Path, name: str | None = None) -> Path:
    """A copy of the session ``folder`` in the data home ``home``, to change freely."""
    home.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(folder, home / (name or folder.name), ignore=shutil.ignore_patterns("*.sock")))


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):  # gone before the open, or between it and the read
        return False
    return state not in ("Z", "X")


class _LogView:
    """A session log read as it grows: each line parsed once."""

    def __init__(self, path: Path) -> None:
        from sessions.disk.eventlog import EventLogReader

        self.reader = EventLogReader(path)
        self.events: list[dict[str, Any]] = []


_log_views: dict[Path, _LogView] = {}


def logged_events(path: Path) -> list[dict[str, Any]]:
    """Every event of the log at ``path`` as a dict with its seq and time, as read_log
    gives them. Tests poll logs of thousands of events every 50 ms, and parsing the
    whole log each time took half a core from the runners they wait on; this parses
    only what was appended since the last call (a log started over is read afresh)."""
    view = _log_views.get(path)
    if view is None:
        view = _log_views[path] = _LogView(path)
    new = view.reader.poll()
    if new and view.events and new[0].seq <= view.events[-1]["seq"]:  # the session was made again
        view.reader.close()
        view = _log_views[path] = _LogView(path)
        new = view.reader.poll()
    view.events.extend({"seq": e.seq, "time": e.time, **e.event.to_dict()} for e in new)
    return list(view.events)


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """The first true value of ``condition()``, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:g} s")
        time.sleep(every)

"""How soon nebtui answers, as a user on a terminal sees it (the app in a pty):

- ``demo_paint``: ``nebtui demo muller-brown`` until its app has painted (the status line is on screen);
- ``demo_first_step``: the same command until the session's log holds its first NEB step;
- ``attach_100k``: ``nebtui sessions attach`` of a finished session with 100k events, until the
  app shows it finished (the whole log replayed);
- ``picker_paint``: ``nebtui`` alone until the session list is on screen.

One JSON line of medians (seconds) over ``--runs`` runs. With ``--baseline DIR`` (another
source tree of nebtui, e.g. ``git archive COMMIT | tar -x -C DIR``) both trees run
interleaved in the same run, and the line holds their ratios (baseline / this):

    python bench/startup.py [--runs 3] [--source DIR] [--baseline /tmp/before] [--compiled]

Python compiles each module it imports, unless a cached compilation is in ``__pycache__``:
it writes one on the first run unless PYTHONDONTWRITEBYTECODE is set (as on the development
machine), and then every process (the CLI, the runner, its fork server) compiles nebtui's
modules again at every start. The line says which way it ran (``"bytecode"``); ``--compiled``
writes the trees' caches first (``compileall``, what a first run writes where Python may).

Goals on the development machine: first paint <= 1.0 s, first step <= 6 s, attach of
100k events <= 2 s.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIZE = (160, 48)  # columns, rows: the app's wide layout
DEADLINE = 120.0  # seconds for any one measurement
EVENTS = 100_000


def nebtui_command(source: Path) -> list[str]:
    return [sys.executable, "-c", "import sys; from nebtui.cli import main; sys.argv[0] = 'nebtui'; main()"]


def environment(source: Path, home: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(source), "NEBTUI_HOME": str(home), "TERM": "xterm-256color",
            "COLUMNS": str(SIZE[0]), "LINES": str(SIZE[1])}


class Terminal:
    """A command on a pseudo-terminal: what it writes, and when a marker first appeared."""

    def __init__(self, argv: list[str], env: dict[str, str], source: Path) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        self.started = time.perf_counter()
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=source,
                                        start_new_session=True)
        os.close(slave)
        self.output = b""
        self.closed = False

    def seconds_until(self, marker: bytes, condition=None) -> float:
        """Seconds from the start until ``marker`` is in the output (or ``condition()`` holds)."""
        deadline = self.started + DEADLINE
        while not (marker and marker in self.output) and not (condition and condition()):
            if self.closed:
                raise RuntimeError(f"the command exited before {marker!r}: {self.output[-300:]!r}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{marker!r} not seen within {DEADLINE:g} s: {self.output[-300:]!r}")
            ready, _, _ = select.select([self.master], [], [], 0.01)
            if ready:
                try:
                    self.output += os.read(self.master, 1 << 16)
                except OSError:  # the command has exited
                    self.closed = True
        return time.perf_counter() - self.started

    def drain(self) -> None:
        while select.select([self.master], [], [], 0)[0]:
            try:
                if not os.read(self.master, 1 << 16):
                    return
            except OSError:
                return

    def quit(self) -> None:
        os.write(self.master, b"q")
        try:
            for _ in range(200):
                self.drain()
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
            else:
                os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        finally:
            os.close(self.master)


def gone(pid: int) -> bool:
    """The process has exited (a zombie counts: it writes nothing more)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def processes_of(home: Path) -> list[int]:
    """Live processes whose command line names a folder under ``home``: a runner, and its fork
    server (multiprocessing passes the session folder on its sys.path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(home).encode() in (entry / "cmdline").read_bytes() and not gone(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def stop_runners(home: Path) -> None:
    """SIGTERM every runner under ``home`` (a runner stops at its next step) and wait until it
    has left with its fork server and workers: a runner left running, or a fork server still
    importing torch, would slow the next measurement."""
    from sessions.disk.folder import LOCK_FILE
    from sessions.disk.lock import holder

    for lock in home.glob(f"*/{LOCK_FILE}"):
        pid = holder(lock)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while processes_of(home):
        if time.monotonic() > deadline:
            for pid in processes_of(home):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)


def has_step(home: Path) -> bool:
    return any(b'"kind":"step_energies"' in path.read_bytes() for path in home.glob("*/events.jsonl"))


def demo(source: Path) -> tuple[float, float]:
    """(first paint, first step) of the Mueller-Brown demo in the app."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:  # a worker may outlive its runner
        home = Path(tmp)
        terminal = Terminal([*nebtui_command(source), "demo", "muller-brown", "--device", "cpu"],
                            environment(source, home), source)
        try:
            paint = terminal.seconds_until(b"elapsed")  # the status line: the app is on screen
            step = terminal.seconds_until(b"", condition=lambda: has_step(home))
        finally:
            terminal.quit()
            stop_runners(home)
    return paint, step


def finished_session(home: Path) -> str:
    """A finished Mueller-Brown session whose log holds EVENTS events (mostly steps of three pairs)."""
    from engine.events import ConnectionFinished, CycleStarted, StepEnergies
    from sessions.disk.eventlog import EventLogWriter
    from sessions.disk.folder import SessionFolder
    from sessions.events import RunnerStarted, SessionFinished

    home.mkdir(parents=True, exist_ok=True)
    folder = SessionFolder.create(home, "long", {"problem": {"kind": "surface", "surface": "muller-brown"}}, [])
    pairs = [(0, 1), (0, 2), (1, 2)]
    per_pair = (EVENTS - 10) // len(pairs)
    with EventLogWriter(folder.events_path) as log:
        log.append(RunnerStarted(pid=1, devices=["cpu"], resumed=False))
        for pair in pairs:
            log.append(CycleStarted(pair=pair, restart=0, cycle=1, cycles=1, steps=per_pair, lr=0.001,
                                    optimiser="SGD", batch_size=None, insert=False, climb=False, pivots=9))
            for step in range(1, per_pair - 1):
                log.append(StepEnergies(pair=pair, restart=0, cycle=1, step=step,
                                        losses=[-146.7 + 0.001 * ((step + i) % 97) for i in range(9)]))
            log.append(ConnectionFinished(pair=pair, saddle_energy=-72.2, saddle_position=0.5,
                                          linear_saddle_energy=3.3, pivots=9, cycles=1, restarts=1))
        log.append(SessionFinished(reason="all pairs", pairs_done=3, mst=[[0, 1, -72.2], [0, 2, -40.7]]))
    return folder.id


def attach(source: Path, home: Path, session: str) -> float:
    terminal = Terminal([*nebtui_command(source), "sessions", "attach", session], environment(source, home), source)
    try:
        return terminal.seconds_until(b"FINISHED")
    finally:
        terminal.quit()


def picker(source: Path, home: Path) -> float:
    terminal = Terminal(nebtui_command(source), environment(source, home), source)
    try:
        return terminal.seconds_until(b"Enter attaches")
    finally:
        terminal.quit()


def measure(source: Path, home: Path, session: str) -> dict[str, float]:
    paint, step = demo(source)
    return {"demo_paint": paint, "demo_first_step": step, "attach_100k": attach(source, home, session),
            "picker_paint": picker(source, home)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per tree (default 3: about a minute on a quiet machine)")
    parser.add_argument("--source", type=Path, default=ROOT, help="the nebtui source tree to measure (default: this one)")
    parser.add_argument("--baseline", type=Path, help="another nebtui source tree, measured interleaved")
    parser.add_argument("--compiled", action="store_true",
                        help="compile the trees' modules into __pycache__ first (as a first run does where Python may)")
    parser.add_argument("--each", action="store_true", help="also print every run's figures to stderr")
    args = parser.parse_args()
    trees = {"this": args.source.resolve(), **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    if args.compiled:
        for source in trees.values():
            subprocess.run([sys.executable, "-m", "compileall", "-q", "nebtui", "engine", "sessions"], cwd=source,
                           check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        session = finished_session(home)
        for _ in range(args.runs):
            for name, source in trees.items():  # interleaved: both see the same load
                samples[name].append(measure(source, home, session))
                if args.each:
                    print(json.dumps({name: {key: round(value, 3) for key, value in samples[name][-1].items()}}),
                          file=sys.stderr)
    medians = {name: {key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0]}
               for name, runs in samples.items()}
    bytecode = "compiled first" if args.compiled else (
        "compiled at each start (PYTHONDONTWRITEBYTECODE)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "as found")
    line: dict[str, object] = {"runs": args.runs, "events": EVENTS, "bytecode": bytecode, **medians,
                               "goals": {"demo_paint": 1.0, "demo_first_step": 6.0, "attach_100k": 2.0}}
    if args.baseline:
        line["ratio_baseline_over_this"] = {key: round(medians["baseline"][key] / medians["this"][key], 2)
                                            for key in medians["this"]}
    print(json.dumps(line))


if __name__ == "__main__":
    main()

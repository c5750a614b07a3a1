"""Until the first step the app says what the runner is doing. The runner here is a
slow stand-in: a real process that holds the session's lock, beats, and writes the
start-up phases into the real event log, each one only once the test lets it (a
file per phase), so what the app shows is asserted phase by phase."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from tui_fakes import app_test, wait_until

from nebtui.app import build_app
from sessions.disk.folder import SessionFolder
from sessions.disk.lock import holder

pytestmark = pytest.mark.timeout(120)

SLOW_RUNNER = """
import sys, time
from pathlib import Path
from engine.events import StepEnergies
from sessions.disk.eventlog import EventLogWriter
from sessions.disk.folder import SessionFolder
from sessions.events import RunnerStarted, SessionFailed, StartupPhaseStarted
from sessions.disk.lock import RunnerLock

folder = SessionFolder.open(Path(sys.argv[1]).parent, Path(sys.argv[1]).name)
gates = Path(sys.argv[2])
script = sys.argv[3]  # "steps": phases, then the first step; "refuse": a failure while checking the minima
lock = RunnerLock(folder.lock_path)
lock.acquire()
log = EventLogWriter(folder.events_path)

def after(gate, event):
    while not (gates / gate).exists():  # the test opens each gate; the test's timeout bounds the wait
        folder.beat()
        time.sleep(0.05)
    folder.beat()
    log.append(event)

folder.beat()
log.append(StartupPhaseStarted(phase="runner"))
after("minima", StartupPhaseStarted(phase="minima", detail="2 files"))
if script == "refuse":
    after("fail", SessionFailed(message="minimum b.safetensors has no parameter '0.bias'"))
else:
    after("evaluating", StartupPhaseStarted(phase="evaluating", detail="2 minima"))
    after("started", RunnerStarted(pid=0, devices=["cpu"], resumed=False))
    log.append(StartupPhaseStarted(phase="first cycle"))
    after("step", StepEnergies(pair=(0, 1), restart=0, cycle=1, step=1, losses=[0.1, 0.5, 0.2]))
    while not (gates / "exit").exists():
        folder.beat()
        time.sleep(0.05)
log.close()
lock.release()
"""


def start_slow_runner(home: Path, name: str, script: str, gates: Path) -> tuple[SessionFolder, subprocess.Popen]:
    home.mkdir(parents=True, exist_ok=True)
    folder = SessionFolder.create(home, name, {"problem": {"kind": "surface", "surface": "muller-brown"}})
    gates.mkdir()
    process = subprocess.Popen([sys.executable, "-c", SLOW_RUNNER, str(folder.path), str(gates), script],
                               stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while holder(folder.lock_path) != process.pid:
        assert process.poll() is None and time.monotonic() < deadline, "the slow runner did not take the lock"
        time.sleep(0.05)
    return folder, process


def open_gate(gates: Path, name: str) -> None:
    (gates / name).touch()


def finish(gates: Path, process: subprocess.Popen) -> None:
    for gate in ("minima", "evaluating", "started", "step", "fail", "exit"):
        open_gate(gates, gate)
    process.wait(timeout=30)


@app_test
async def test_the_status_line_and_energy_pane_say_each_start_up_phase(nebtui_home, tmp_path):
    folder, process = start_slow_runner(nebtui_home, "slow", "steps", tmp_path / "gates")
    app = build_app(folder)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            status, energy = app.status_line, app.energy

            def shows(words: str) -> bool:
                return words in status.plain and words in energy.render().plain

            await wait_until(pilot, lambda: shows("starting the runner and its workers"), what="the runner phase")
            assert "STARTING" in status.plain
            assert " 0:0" in status.plain  # its elapsed time, m:ss
            open_gate(tmp_path / "gates", "minima")
            await wait_until(pilot, lambda: shows("loading and hashing the minima (2 files)"), what="the minima phase")
            assert "✓ starting the runner" in energy.render().plain  # the phase before, done
            open_gate(tmp_path / "gates", "evaluating")
            await wait_until(pilot, lambda: shows("evaluating the minima (2 minima)"), what="the evaluating phase")
            open_gate(tmp_path / "gates", "started")
            await wait_until(pilot, lambda: shows("starting the first cycle"), what="the first-cycle phase")
            open_gate(tmp_path / "gates", "step")
            await wait_until(pilot, lambda: "STARTING" not in status.plain and "RUNNING" in status.plain,
                             what="the running status after the first step")
            await wait_until(pilot, lambda: "first cycle" not in status.plain + energy.render().plain,
                             what="the start-up display to go")
            assert "energy · pair (0, 1)" in str(energy.border_title)
    finally:
        app.source.close()
        app.status_probe.close()
        finish(tmp_path / "gates", process)


@app_test
async def test_a_new_sessions_first_frame_says_what_the_runner_is_doing(nebtui_home, tmp_path):
    # what the CLI does for a session it has just started: read its log and status before the
    # app runs, so the first frame shows the phase, not "waiting for the first cycle"
    folder, process = start_slow_runner(nebtui_home, "fresh", "steps", tmp_path / "gates")
    app = build_app(folder)
    try:
        app.read_now()
        assert app.status == "running" and app.model.view.starting
        async with app.run_test(size=(160, 48)):
            assert "starting the runner and its workers" in app.status_line.plain
            assert "STARTING" in app.status_line.plain
            assert "starting the runner and its workers" in app.energy.render().plain
    finally:
        app.source.close()
        app.status_probe.close()
        finish(tmp_path / "gates", process)


@app_test
async def test_a_new_sessions_app_closes_when_the_runner_refuses_its_problem(nebtui_home, tmp_path):
    folder, process = start_slow_runner(nebtui_home, "refused", "refuse", tmp_path / "gates")
    app = build_app(folder)
    app.close_on_refusal = True
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            open_gate(tmp_path / "gates", "minima")
            await wait_until(pilot, lambda: "loading and hashing the minima" in app.status_line.plain,
                             what="the minima phase")
            assert app.is_running
            open_gate(tmp_path / "gates", "fail")
            await wait_until(pilot, lambda: not app.is_running, what="the app to close")
    finally:
        app.source.close()
        app.status_probe.close()
        finish(tmp_path / "gates", process)


@app_test
async def test_a_refusal_already_in_the_log_when_the_app_starts_closes_it(nebtui_home, tmp_path):
    # read_now takes the refusal in before the app runs: the reader never sees it again
    folder, process = start_slow_runner(nebtui_home, "refused-early", "refuse", tmp_path / "gates")
    open_gate(tmp_path / "gates", "minima")
    open_gate(tmp_path / "gates", "fail")
    deadline = time.monotonic() + 30
    while b"session_failed" not in folder.events_path.read_bytes():
        assert time.monotonic() < deadline, "the slow runner did not refuse"
        time.sleep(0.05)
    app = build_app(folder)
    app.close_on_refusal = True
    try:
        app.read_now()
        assert app.model.view.refusal == "minimum b.safetensors has no parameter '0.bias'"
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_until(pilot, lambda: not app.is_running, what="the app to close")
    finally:
        app.source.close()
        app.status_probe.close()
        finish(tmp_path / "gates", process)

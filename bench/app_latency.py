"""The live app's event-to-screen latency and its CPU while following an idle session.

A session folder with a real event log; the app is built as the CLI builds it
(build_app: log reader, control socket client, status probe) and run headless.
Latency: append one event to the log, time until the log pane has drawn its
line (goal <= 250 ms). Idle CPU: process time of this process over a window in
which nothing is appended, as a share of one core (goal <= 3%).

Prints one JSON line.  python bench/app_latency.py [--trials N] [--idle SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.events import CycleStarted, MSTEdgeAdded, PairChosen, StepEnergies  # noqa: E402
from nebtui.app import build_app  # noqa: E402
from sessions.disk.eventlog import EventLogWriter  # noqa: E402
from sessions.disk.folder import SessionFolder  # noqa: E402
from sessions.events import RunnerStarted  # noqa: E402

SCHEDULE = {"name": "bench", "band": {"restarts": 1}, "phase": [
    {"repeat": 4, "steps": 100, "lr": 0.01, "optimiser": "SGD", "optimiser_args": {}, "batch_size": None,
     "insert": True, "climb": False, "max_insert": None}]}


def history(writer: EventLogWriter) -> None:
    """A session part way through its first pair."""
    writer.append(RunnerStarted(pid=1, devices=["cpu"], resumed=False, pairs_done=0))
    writer.append(PairChosen(pair=(0, 1), reason="initial", attacked_edge=None))
    writer.append(CycleStarted(pair=(0, 1), restart=0, cycle=1, cycles=4, steps=100, lr=0.01, optimiser="SGD",
                               batch_size=None, insert=True, climb=False, pivots=5))
    for step in range(10, 60, 10):
        writer.append(StepEnergies(pair=(0, 1), restart=0, cycle=1, step=step, losses=[0.0, 1.0, 2.0 - step / 100, 1.0, 0.5]))


def log_lines(app) -> list[str]:
    return [strip.text for strip in app.log_pane.lines]


async def measure(folder: SessionFolder, writer: EventLogWriter, trials: int, idle: float) -> dict:
    app = build_app(folder)
    latencies = []
    async with app.run_test(size=(160, 48)) as pilot:
        deadline = time.monotonic() + 10
        while app.model.view.events < writer.next_seq:
            if time.monotonic() > deadline:
                raise SystemExit("the app did not replay the history within 10 s")
            await pilot.pause(0.01)
        for trial in range(trials):
            await pilot.pause(0.3)  # events arrive spread out, as from a real run
            energy = 1000.0 + trial
            start = time.perf_counter()
            writer.append(MSTEdgeAdded(a=0, b=1, saddle_energy=energy))
            wanted = f"saddle {energy:.4f}"
            deadline = time.monotonic() + 5
            while not any(wanted in line for line in log_lines(app)[-3:]):
                if time.monotonic() > deadline:
                    raise SystemExit(f"event {trial} did not reach the screen within 5 s")
                await pilot.pause(0.002)
            latencies.append((time.perf_counter() - start) * 1000)
        await pilot.pause(1.0)  # let the last redraw settle
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await pilot.pause(idle)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    app.source.close()
    app.status_probe.close()
    latencies.sort()
    return {
        "latency_ms_median": round(statistics.median(latencies), 1),
        "latency_ms_p95": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1),
        "latency_ms_max": round(latencies[-1], 1),
        "idle_cpu_percent": round(100 * cpu / wall, 2),
        "idle_seconds": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--idle", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        folder = SessionFolder.create(Path(home), "bench", {"schedule": SCHEDULE}, [])
        with EventLogWriter(folder.events_path) as writer:
            history(writer)
            figures = asyncio.run(measure(folder, writer, args.trials, args.idle))
    print(json.dumps({
        "bench": "app_latency", "trials": args.trials, **figures,
        "goal_latency_ms": 250, "goal_idle_cpu_percent": 3.0,
        "python": platform.python_version(), "machine": platform.machine(),
    }))


if __name__ == "__main__":
    main()

"""How close a session's estimate comes to what the session then takes.

Runs real sessions as a user would (the installed `nebtui`, a fresh data home)
and reads each one's log: the runner's estimate, made before its first pair
(engine.estimate: a few timed steps, the schedule and the stop rule), against
the pairs' measured times and the session's time from the estimate to its end.

Cases:
- demo: `nebtui demo digits` (4 MLP minima, the paper schedule at 5 % of its
  steps), one worker and two;
- small_cnn: 3 small CNN minima on 8x8 digit images (`nebtui train`), explored
  with the paper schedule at --scale (default 0.02), one worker.

The estimate is a range: a band that never grows past its first fill (low) to
one pivot inserted per inserting cycle (high). Passed when each session's time
lies within [low / FACTOR, high x FACTOR].

Prints a table and one JSON line.  python bench/estimate.py [--scale 0.02] [--quick]
(--quick: the demo with one worker only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.events import ConnectionFinished, CycleStarted  # noqa: E402
from sessions.disk.eventlog import read_log  # noqa: E402
from sessions.events import SessionEstimated, SessionFinished  # noqa: E402

FACTOR = 1.5
NEBTUI = str(Path(sys.executable).with_name("nebtui"))


def nebtui(home: Path, *args: str) -> float:
    """Run the command to its end in the data home ``home``; its wall-clock seconds."""
    began = time.perf_counter()
    done = subprocess.run([NEBTUI, *args], capture_output=True, text=True, env={**os.environ, "NEBTUI_HOME": str(home)})
    if done.returncode != 0:
        raise SystemExit(f"nebtui {' '.join(args)} failed: {done.stderr.strip() or done.stdout[-400:]}")
    return time.perf_counter() - began


def measured(folder: Path) -> dict:
    """The estimate in the session's log, and what the session then took."""
    estimate = estimated_at = ended = None
    started: dict = {}
    took: list[float] = []
    for entry in read_log(folder / "events.jsonl"):
        event = entry.event
        if isinstance(event, SessionEstimated):
            estimate, estimated_at = event, entry.time
        elif isinstance(event, CycleStarted):
            started.setdefault(event.pair, entry.time)
        elif isinstance(event, ConnectionFinished):
            took.append(entry.time - started[event.pair])
        elif isinstance(event, SessionFinished):
            ended = entry.time
    if estimate is None or ended is None:
        raise SystemExit(f"{folder}: no estimate or no end in its log")
    seconds = ended - estimated_at
    low, high = estimate.seconds
    return {
        "pairs": len(took),
        "estimate_pair_s": [round(v, 2) for v in estimate.pair_seconds],
        "pair_s_median": round(statistics.median(took), 2),
        "pair_s_range": [round(min(took), 2), round(max(took), 2)],
        "estimate_s": [round(low, 1), round(high, 1)],
        "session_s": round(seconds, 1),
        "session_over_low": round(seconds / low, 2),
        "session_over_high": round(seconds / high, 2),
        "within": low / FACTOR <= seconds <= high * FACTOR,
        "timed": f"a step on {estimate.step_points} points {estimate.step_seconds * 1000:.3g} ms, "
                 f"a point's evaluation {estimate.point_seconds * 1000:.3g} ms",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.02, help="the small CNN's schedule: paper x this")
    parser.add_argument("--quick", action="store_true", help="the demo with one worker only")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="nebtui-estimate-") as scratch:
        home = Path(scratch) / "home"
        for workers in (1,) if args.quick else (1, 2):
            name = f"demo-{workers}w"
            nebtui(home, "demo", "digits", "--headless", "--device", "cpu", "--workers", str(workers),
                   "--session", name)
            results[name] = measured(home / name)
        if not args.quick:
            minima = Path(scratch) / "cnn"
            nebtui(home, "train", "--model", "small_cnn", "--data", "digits-images", "--count", "3",
                   "--out", str(minima))
            name = f"small_cnn-x{args.scale:g}"
            nebtui(home, "explore", str(minima), "--headless", "--device", "cpu", "--scale", str(args.scale),
                   "--session", name)
            results[name] = measured(home / name)
    print(f"{'case':<18}{'pairs':>6}  {'estimate a pair':>16}  {'measured (median, range)':>26}  "
          f"{'estimate':>14}  {'session':>8}  within x{FACTOR:g}")
    for name, row in results.items():
        pair_low, pair_high = row["estimate_pair_s"]
        fastest, slowest = row["pair_s_range"]
        session_low, session_high = row["estimate_s"]
        estimate_pair = f"{pair_low:.2f} to {pair_high:.2f} s"
        measured_pair = f"{row['pair_s_median']:.2f} s ({fastest:.2f} to {slowest:.2f})"
        estimate_session = f"{session_low:.0f} to {session_high:.0f} s"
        print(f"{name:<18}{row['pairs']:>6}  {estimate_pair:>16}  {measured_pair:>26}  {estimate_session:>14}  "
              f"{row['session_s']:>7.0f}s  {'yes' if row['within'] else 'NO'}")
    print(json.dumps({"factor": FACTOR, "passed": all(r["within"] for r in results.values()), "cases": results}))


if __name__ == "__main__":
    main()

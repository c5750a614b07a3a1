"""Event log throughput: events per second appended (one os.write per event), and
the time to replay 100k events: read_log (lines to typed events) and read_log
plus SessionView (what `sessions show` and the app do). Goal: replay <= 2 s.

A typical event is a step report as the engine sends it (a pair, restart,
cycle, step and the losses of 9 pivots). Also times appends with fsync on, for scale.

Prints one JSON line.  python bench/eventlog.py [--events N] [--fsync-events N]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.events import StepEnergies  # noqa: E402
from sessions.disk.eventlog import EventLogWriter, read_log  # noqa: E402
from sessions.view import SessionView  # noqa: E402


def typical_event(i: int) -> StepEnergies:
    return StepEnergies(pair=(i % 7, i % 7 + 1), restart=0, cycle=1 + i // 1000, step=1 + i % 1000,
                        losses=[0.123456789 * k + 1e-7 * i for k in range(9)])


def replay_view(log: Path) -> SessionView:
    view = SessionView()
    for entry in read_log(log):
        view.apply(entry)
    return view


def write(path: Path, count: int, fsync: bool) -> float:
    events = [typical_event(i) for i in range(count)]
    with EventLogWriter(path, fsync=fsync) as writer:
        start = time.perf_counter()
        for event in events:
            writer.append(event)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--fsync-events", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nebtui-bench-") as tmp:
        log = Path(tmp) / "events.jsonl"
        write_s = write(log, args.events, fsync=False)
        size = log.stat().st_size
        replays, views = [], []
        for _ in range(3):
            start = time.perf_counter()
            events = read_log(log)
            replays.append(time.perf_counter() - start)
            assert len(events) == args.events
            del events
            start = time.perf_counter()
            assert replay_view(log).events == args.events
            views.append(time.perf_counter() - start)
        fsync_s = write(Path(tmp) / "fsynced.jsonl", args.fsync_events, fsync=True)
    print(
        json.dumps(
            {
                "events": args.events,
                "bytes_per_event": round(size / args.events, 1),
                "append_events_per_s": round(args.events / write_s),
                "append_fsync_events_per_s": round(args.fsync_events / fsync_s),
                "replay_s": round(min(replays), 3),
                "replay_s_runs": [round(r, 3) for r in replays],
                "replay_view_s": round(min(views), 3),
                "replay_goal_s": 2.0,
                "python": platform.python_version(),
                "machine": platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()

"""Event log throughput: events per second appended (one os.write per event), and
the time to replay 100k events with read_log. Goal: replay <= 2 s.

A typical event is a step report of about ten fields (a few numbers, a pair,
a short list of pivot energies). Also times appends with fsync on, for scale.

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

from sessions.eventlog import EventLogWriter, read_log  # noqa: E402


def typical_event(i: int) -> dict:
    return {
        "kind": "step_energies",
        "pair": [i % 7, i % 7 + 1],
        "cycle": i // 1000,
        "step": i % 1000,
        "lr": 0.1,
        "max_energy": 0.123456789 + i * 1e-6,
        "mean_energy": 0.0456789,
        "energies": [0.01 * k + 1e-7 * i for k in range(9)],
        "grad_norm": 1.2345,
        "batch_size": 128,
    }


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
        replays = []
        for _ in range(3):
            start = time.perf_counter()
            events = read_log(log)
            replays.append(time.perf_counter() - start)
            assert len(events) == args.events
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
                "replay_goal_s": 2.0,
                "python": platform.python_version(),
                "machine": platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()

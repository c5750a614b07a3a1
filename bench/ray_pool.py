"""What the Ray pool costs per pair against the local pool: the same digits pair
job (its state packed as the runner packs it) sent again and again through a
``LocalPool`` and a ``RayPool``, one worker each, interleaved, timed from
``submit`` to ``JobDone`` as the runner sees it; and the bytes that travel per
pair (the packed state down, every message up, pickled).

    python bench/ray_pool.py SESSION_FOLDER [--rounds 5]

SESSION_FOLDER: a digits session (its config.json names the minima and the
schedule), e.g. one made by ``nebtui explore MINIMA --schedule tests' tiny.toml
--strategy loop --device cpu``. Joins the Ray cluster of this machine (start one
with ``ray start --head --num-cpus 2 --include-dashboard false``, or set
RAY_ADDRESS). Prints one JSON line per pool and one with the differences.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sessions.processes.messages import JobDone, StateSaved, WorkerReady  # noqa: E402


def ready(pool, deadline: float = 180.0) -> None:  # noqa: ANN001
    end = time.monotonic() + deadline
    while not pool.idle():
        for message in pool.poll(0.1):
            assert not isinstance(message, StateSaved)
        if time.monotonic() > end:
            raise SystemExit("a worker did not start in time")


def one_pair(pool, pair, packed: bytes) -> tuple[float, int, int]:  # noqa: ANN001
    """(seconds, bytes down, bytes up) of one pair job from submit to JobDone."""
    started = time.perf_counter()
    pool.submit(pool.idle()[0], pair, packed)
    up = 0
    while True:
        for message in pool.poll(0.05):
            up += len(pickle.dumps(message))
            if isinstance(message, JobDone):
                return time.perf_counter() - started, len(packed), up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("session", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from engine.landscape.exploration import Exploration
    from sessions.disk.config import SessionConfig
    from sessions.problem.build import build
    from sessions.processes.raypool import RayPool
    from sessions.disk.statepack import pack_state
    from sessions.processes.workers import LocalPool

    config = json.loads((args.session / "config.json").read_text())
    config["checkpoint_interval"] = 1e9  # states at cycle ends only, as a long session sends them
    session = SessionConfig.from_dict(config)
    built = build(session, "cpu")
    schedule = session.run_schedule()
    exploration = Exploration(built.energy, built.minima, schedule, seed=session.seed, landscape=session.landscape)
    pair = exploration.pending()[0]
    packed = pack_state(exploration.running[pair].state_dict())

    pools = {"local": LocalPool(["cpu"], session, 1e9), "ray": RayPool("ray", session, 1e9)}
    for pool in pools.values():
        pool.start()
    try:
        for pool in pools.values():
            ready(pool)
        runs: dict[str, list[tuple[float, int, int]]] = {name: [] for name in pools}
        for _ in range(args.rounds):
            for name, pool in pools.items():  # interleaved: the machine's load falls on both alike
                runs[name].append(one_pair(pool, pair, packed))
    finally:
        for pool in pools.values():
            pool.close()
    medians = {}
    for name, rows in runs.items():
        seconds = statistics.median(r[0] for r in rows)
        medians[name] = seconds
        print(json.dumps({"pool": name, "pair": list(pair), "rounds": len(rows), "median_s": round(seconds, 4),
                          "all_s": [round(r[0], 3) for r in rows], "bytes_down": rows[0][1], "bytes_up": rows[0][2]}))
    overhead = medians["ray"] - medians["local"]
    print(json.dumps({"ray_overhead_s": round(overhead, 4), "share_of_pair": round(overhead / medians["local"], 4)}))


if __name__ == "__main__":
    main()

"""What checkpointing costs a session: the share of run time spent on checkpoints.

A session checkpoints at every cycle's end and at least every interval (60 s by
default). One checkpoint here is everything the session does for it: the
worker's connection.state_dict() packed to safetensors bytes, the runner
unpacking it into a Connection, the exploration's state, and the fsynced write
(temp file, rename, previous kept).

Two measurements, in one run:
- digits: a real AutoNEB connection of two digits MLP minima with the paper
  schedule scaled to 100-step cycles (short cycles: a worst case for the share),
  checkpointed at every cycle end and every interval; the share is the summed
  checkpoint time over the whole run time.
- resnet20_sized: one checkpoint of a band as large as the paper's ResNet-20
  runs (31 pivots x 0.27M parameters), against the interval.
Goal: share < 5% at the default interval.

Prints one JSON line.  python bench/checkpoint.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the product's processes run (sessions.processes.spawn)

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.paths.autoneb import Connection  # noqa: E402
from engine.networks.data import digits  # noqa: E402
from engine.energy.base import CallableEnergy  # noqa: E402
from engine.energy.network import NetworkEnergy  # noqa: E402
from engine.networks.layout import ParameterLayout  # noqa: E402
from engine.networks.models import mlp  # noqa: E402
from engine.paths.schedule import load_schedule  # noqa: E402
from engine.networks.training import train  # noqa: E402
from sessions.disk.checkpoint import save_checkpoint  # noqa: E402
from sessions.disk.config import DEFAULT_CHECKPOINT_INTERVAL  # noqa: E402
from sessions.disk.statepack import pack_state, unpack_state  # noqa: E402


def one_checkpoint(connection: Connection, energy, schedule, folder: Path) -> float:
    """Seconds for the whole path of one checkpoint, worker to disk."""
    start = time.perf_counter()
    packed = pack_state(connection.state_dict())  # in the worker
    state = unpack_state(packed)  # in the runner
    rebuilt = Connection.from_state(energy, schedule, state)
    full = rebuilt.state_dict()
    save_checkpoint(folder, {f"running.0-1.{k}": v for k, v in full["tensors"].items()}, {"running": full["meta"]})
    return time.perf_counter() - start


def digits_share(scale: float, interval: float, folder: Path) -> dict:
    data = digits()
    minima = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = mlp()
        minima.append(train(model, data.train.inputs, data.train.targets, seed=seed).parameters)
    energy = NetworkEnergy(mlp(), data.train.inputs, data.train.targets, strategy="vmap")
    schedule = load_schedule("paper").scaled(scale)
    connection = Connection(energy, schedule, minima[0], minima[1])
    spent = {"checkpoints": 0, "seconds": 0.0}
    marks = {"time": time.monotonic(), "cycle": (0, 0)}

    def should_stop() -> bool:  # the worker's rule: at each cycle's end and every interval
        now = time.monotonic()
        position = (connection.restart, connection.cycle)
        if position != marks["cycle"] or now - marks["time"] >= interval:
            spent["seconds"] += one_checkpoint(connection, energy, schedule, folder)
            spent["checkpoints"] += 1
            marks["time"], marks["cycle"] = time.monotonic(), position
        return False

    start = time.perf_counter()
    connection.run(should_stop)
    total = time.perf_counter() - start
    return {
        "D": energy.dim,
        "steps_per_cycle": schedule.cycles[0].steps,
        "run_s": round(total, 3),
        "checkpoints": spent["checkpoints"],
        "checkpoint_s": round(spent["seconds"] / max(spent["checkpoints"], 1), 5),
        "share": round(spent["seconds"] / total, 4),
    }


def resnet20_sized(interval: float, folder: Path) -> dict:
    dim, pivots = 270_000, 31
    energy = CallableEnergy(lambda x: (x * x).sum(dim=1), dim=dim)
    schedule = load_schedule("reference")
    start, end = torch.zeros(dim), torch.ones(dim)
    connection = Connection(energy, schedule, start, end)
    connection.run(lambda: True)  # a band exists now, with its optimiser
    # grow the band to the reference cap, with momentum state, as late in a run
    from engine.band.geometry import linear_path

    band = linear_path(start, end, pivots)
    connection._set_band(band, torch.linspace(0, 1, pivots, dtype=torch.float64))
    connection.optimiser = torch.optim.SGD([connection.interior], lr=0.1, momentum=0.9)
    connection.interior.grad = torch.ones_like(connection.interior)
    connection.optimiser.step()
    connection.restart_best = None
    seconds = min(one_checkpoint(connection, energy, schedule, folder) for _ in range(3))
    return {
        "D": dim,
        "pivots": pivots,
        "checkpoint_s": round(seconds, 4),
        "share_at_interval": round(seconds / interval, 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter digits run")
    args = parser.parse_args()
    interval = DEFAULT_CHECKPOINT_INTERVAL
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        result = {
            "bench": "checkpoint",
            "interval_s": interval,
            "digits": digits_share(0.05 if args.quick else 0.1, interval, folder),
            "resnet20_sized": resnet20_sized(interval, folder),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

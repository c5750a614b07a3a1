"""The full NEB step with its training data streamed from a memory-mapped file, against
the same step with the data in memory.

The small CNN with BatchNorm (models.small_cnn, 8x8 images), N pivots at batch B each
(default 16 x 128); one full step is the engine's own (engine.paths.autoneb.Connection:
each pivot's batch drawn from the band's generator, losses and gradients, forces, one
SGD step, re-spacing). The images and labels are written to .npy files in a temporary
folder and read back memory-mapped by a map-style Dataset whose ``__getitem__`` reads
one row, as a user's would (``--batched-reads``: it also reads a batch's rows at once); "memory" reads the Dataset whole into tensors
(datasets.user_tensors, placement "memory"), "stream" streams it (placement "stream":
DataLoader workers read each step's rows, the next step's ahead of it). Both bands start
from the same ends with the same seed, so they draw the same batches; their losses are
checked equal. The two run interleaved in rounds of ``--steps`` steps (each round's
first step not counted: it takes rows read ahead while the other band ran), the order
reversed every other round (the machine is shared), and the line reports the median
step of each and their ratio, with the load average before and after.

    python bench/stream_step.py [--items 50000] [--pivots 16] [--batch 128] [--rounds 20] [--steps 4]
        [--threads T]

Goal: stream / memory <= 1.15.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.energy.network import NetworkEnergy  # noqa: E402
from engine.networks import models  # noqa: E402
from engine.networks.datasets import UserData, user_tensors  # noqa: E402
from engine.networks.layout import ParameterLayout  # noqa: E402
from engine.paths.autoneb import Connection  # noqa: E402
from engine.paths.schedule import BandOptions, Cycle, Schedule  # noqa: E402


class MappedImages(torch.utils.data.Dataset):
    """Images (n, 1, 8, 8) float32 and labels (n,) from .npy files, memory-mapped: one row a read."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.images = np.load(folder / "images.npy", mmap_mode="r")
        self.labels = np.load(folder / "labels.npy", mmap_mode="r")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return torch.from_numpy(np.array(self.images[i])), int(self.labels[i])


class MappedBatches(MappedImages):
    """The same, also reading a batch's rows at once (``__getitems__``, which a DataLoader calls
    when a Dataset has it): one indexed read of the mapped file per batch instead of a read per row."""

    def __getitems__(self, rows: list[int]):
        images = torch.from_numpy(self.images[np.asarray(rows)])  # (R, 1, 8, 8), copied out of the map
        return list(zip(images.unbind(0), self.labels[np.asarray(rows)].tolist()))


def write_files(folder: Path, items: int) -> None:
    generator = np.random.default_rng(0)
    np.save(folder / "images.npy", generator.standard_normal((items, 1, 8, 8), dtype=np.float32))
    np.save(folder / "labels.npy", generator.integers(0, 10, items))


class Band:
    """The engine's band between two ends, stepped ``count`` steps at a time."""

    def __init__(self, energy: NetworkEnergy, start: torch.Tensor, end: torch.Tensor, pivots: int, batch: int):
        schedule = Schedule(
            cycles=(Cycle(steps=10**9, lr=0.01, optimiser_args={"momentum": 0.9}, batch_size=batch),),
            band=BandOptions(initial_pivots=pivots - 2, max_pivots=pivots),
        )
        self.energy = energy
        self.connection = Connection(energy, schedule, start, end, seed=0)
        self.connection.run(lambda: True)  # the linear profile and the cycle's set-up, untimed

    def steps(self, count: int) -> list[float]:
        """The seconds of ``count`` steps, after one more that is not counted: the first of a
        round takes rows read ahead while the other band ran, at no cost to itself."""
        seconds: list[float] = []
        last: list[float] = []

        def stop() -> bool:
            now = time.perf_counter()
            if last:
                seconds.append(now - last[0])
            last[:] = [now]
            return len(seconds) > count

        self.connection.run(stop)
        return seconds[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000, help="training images in the file")
    parser.add_argument("--pivots", type=int, default=16)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=4, help="counted steps per round")
    parser.add_argument("--strategy", default="batched", help="the energy's strategy, the same for both")
    parser.add_argument("--batched-reads", action="store_true",
                        help="the Dataset reads a batch's rows at once (__getitems__) instead of row by row")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the steps, the same for both (default: torch's count)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        write_files(Path(folder), args.items)
        train = (MappedBatches if args.batched_reads else MappedImages)(Path(folder))
        held_out = (torch.from_numpy(np.array(train.images[:64])), torch.from_numpy(np.array(train.labels[:64])))
        torch.manual_seed(0)
        a, b = models.small_cnn(width=8, batchnorm=True), models.small_cnn(width=8, batchnorm=True)
        layout = ParameterLayout.from_module(a)
        start, end = layout.flatten(a).detach(), layout.flatten(b).detach()
        bands = {}
        for placement in ("memory", "stream"):
            data = user_tensors(UserData(train, held_out, classes=10), spec="bench:mapped", placement=placement)
            # the set-up's evaluation is not what is timed: a small held-out set and calibration
            energy = NetworkEnergy(a, *data.train, batch_size=args.batch, strategy=args.strategy, threads=args.threads,
                                   eval_inputs=held_out[0], eval_targets=held_out[1], calibration_size=256)
            bands[placement] = Band(energy, start, end, args.pivots, args.batch)
        for band in bands.values():  # warm-up (the loader's workers start here)
            band.steps(2)
        seconds: dict[str, list[float]] = {name: [] for name in bands}
        for round_ in range(args.rounds):
            order = list(bands) if round_ % 2 == 0 else list(reversed(bands))
            for name in order:
                seconds[name] += bands[name].steps(args.steps)
        same = torch.equal(bands["memory"].connection.pivots, bands["stream"].connection.pivots)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    ratio = median["stream"] / median["memory"]
    threads = args.threads or torch.get_num_threads()
    print(f"small CNN with BatchNorm, {args.pivots} pivots x {args.batch}, {args.items} images memory-mapped, "
          f"strategy {args.strategy}, {threads} torch threads, {os.cpu_count()} cores")
    print(f"full NEB step: in memory {median['memory'] * 1e3:.2f} ms, streamed {median['stream'] * 1e3:.2f} ms, "
          f"ratio {ratio:.3f} (goal <= 1.15); the same band both ways: {same}")
    print(json.dumps({
        "bench": "stream_step", "pivots": args.pivots, "batch": args.batch, "items": args.items,
        "strategy": args.strategy, "threads": threads, "batched_reads": args.batched_reads, "rounds": args.rounds, "steps": args.steps,
        "memory_ms": round(median["memory"] * 1e3, 3), "stream_ms": round(median["stream"] * 1e3, 3),
        "ratio": round(ratio, 3), "same_band": same, "cpus": os.cpu_count(),
        "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()

"""Seconds per NEB step of a network energy: loop vs vmap vs auto, against training.

For an MLP (64-32-10) and the small CNN (BatchNorm) on the digits, with N pivots
at batch 128 each, one NEB step is the engine's own (engine.neb.autoneb.Connection):
the energy call on all N pivots, tangents, the perpendicular loss force, one SGD
step on the (N-2, D) interior, and the re-spacing of the string method. The reference is one plain training step of the same network at batch
N x 128 (forward, backward, SGD step). Goal: auto / best <= 1.1 and
auto / training step <= 1.1.

"auto" is a fresh energy: its trial phase (the first four calls: a warm-up and
a timed call of each strategy) as measured, plus 96 steps at its median step
time after the trial, divided by 100. Steps of loop, vmap, auto and training
are interleaved in rounds and reported as medians (the machine is shared).

Prints one JSON line.  python bench/neb_step.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the product's processes run (sessions.spawn)

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.networks import data, models  # noqa: E402
from engine.neb.autoneb import Connection  # noqa: E402
from engine.energy.network import TRIAL_CALLS, NetworkEnergy, ParameterLayout  # noqa: E402
from engine.neb.schedule import BandOptions, Cycle, Schedule  # noqa: E402

BATCH = 128


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Band:
    """The engine's own band: a Connection whose stop callback, called before
    every step, times the steps (energy, tangents, forces, optimiser, re-spacing)."""

    def __init__(self, energy: NetworkEnergy, start: torch.Tensor, end: torch.Tensor, n_pivots: int, batch: int):
        schedule = Schedule(
            cycles=(Cycle(steps=10**9, lr=0.01, optimiser_args={"momentum": 0.9}, batch_size=batch),),
            band=BandOptions(initial_pivots=n_pivots - 2, max_pivots=n_pivots),
        )
        self.energy = energy
        self.connection = Connection(energy, schedule, start, end)
        self.connection.run(lambda: True)  # the linear profile and the first cycle's set-up, untimed

    def seconds(self, steps: int) -> list[float]:
        times: list[float] = []
        last: list[float] = []

        def should_stop() -> bool:
            _sync(self.energy.device)
            now = time.perf_counter()
            if last:
                times.append(now - last[0])
            last[:] = [now]
            return len(times) >= steps

        self.connection.run(should_stop)
        return times


def train_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int,
                  micro_batch: int | None = None) -> list[float]:
    """Seconds per training step at ``batch``; with ``micro_batch`` the step's
    gradient is accumulated over micro-batches (for batches that do not fit)."""
    model.train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator, times = torch.Generator().manual_seed(0), []
    micro = micro_batch or batch
    for _ in range(steps):
        start = time.perf_counter()
        rows = torch.randint(0, x.shape[0], (batch,), generator=generator).to(x.device)
        optimiser.zero_grad(set_to_none=True)
        for part in rows.split(micro):
            loss = torch.nn.functional.cross_entropy(model(x[part]), y[part]) * (part.numel() / batch)
            loss.backward()
        optimiser.step()
        _sync(x.device)
        times.append(time.perf_counter() - start)
    return times


def bench_one(name: str, make, x, y, n_pivots: int, steps: int, auto_steps: int, rounds: int, batch: int,
              speed: dict | None = None, train_micro_batch: int | None = None) -> dict:
    torch.manual_seed(0)
    a, b = make(), make()
    layout = ParameterLayout.from_module(a)
    alphas = torch.linspace(0, 1, n_pivots).unsqueeze(1)
    pivots = (1 - alphas) * layout.flatten(a) + alphas * layout.flatten(b)  # (N, D)
    pivots = pivots.to(x.device)

    # evaluation (the band's linear profile at set-up) is not what is timed: keep it small
    small = {"eval_inputs": x[:64], "eval_targets": y[:64], "calibration_size": 64, **(speed or {})}
    energies = {s: NetworkEnergy(a, x, y, batch_size=batch, strategy=s, **small) for s in ("loop", "vmap", "auto")}
    bands = {s: Band(energies[s], pivots[0], pivots[-1], n_pivots, batch) for s in energies}
    model = make().to(x.device)
    for s in ("loop", "vmap"):  # warm-up of the fixed strategies
        bands[s].seconds(2)
    train_seconds(model, x, y, n_pivots * batch, 2, train_micro_batch)
    samples: dict[str, list[float]] = {"loop": [], "vmap": [], "auto": [], "train": []}
    for _ in range(rounds):  # interleaved, so that machine noise hits all alike
        for s in energies:
            samples[s] += bands[s].seconds(steps)
        samples["train"] += train_seconds(model, x, y, n_pivots * batch, steps, train_micro_batch)
    med = {k: statistics.median(v) for k, v in samples.items()}
    # auto over a run of auto_steps steps: its trial phase (the first TRIAL_CALLS
    # calls, warm-ups included) as measured, the remaining steps at its median step time.
    trial = samples["auto"][:TRIAL_CALLS]
    after = samples["auto"][TRIAL_CALLS:]
    auto_s = (sum(trial) + (auto_steps - len(trial)) * statistics.median(after)) / auto_steps
    auto = energies["auto"]
    best = min(med["loop"], med["vmap"])
    return {
        "net": name,
        "D": layout.dim,
        "N": n_pivots,
        "loop_s": round(med["loop"], 6),
        "vmap_s": round(med["vmap"], 6),
        "auto_s": round(auto_s, 6),
        "auto_choice": auto.strategy_used,
        "train_s": round(med["train"], 6),
        "auto_over_best": round(auto_s / best, 3),
        "auto_over_train": round(auto_s / med["train"], 3),
        "best_over_train": round(best / med["train"], 3),
        "train_samples_per_s": round(n_pivots * batch / med["train"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (under a minute on 2 CPUs)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--pivots", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--nets", default="mlp,cnn", help="comma-separated: mlp, cnn (digits), resnet20 (CIFAR-shaped "
                        "random images; e.g. --nets resnet20 --pivots 16 --batch 512 on a GPU)")
    parser.add_argument("--batch", type=int, default=BATCH, help="minibatch per pivot")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast in the NEB steps")
    parser.add_argument("--channels-last", action="store_true", help="channels-last image batches")
    parser.add_argument("--compile", action="store_true", help="torch.compile the per-pivot loss (loop)")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (default 5 quick, 10 full)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3 quick, 5 full)")
    parser.add_argument("--train-micro-batch", type=int, default=None,
                        help="accumulate the training step's gradient over micro-batches of this size (for a "
                        "N x batch training step that does not fit in memory; the time is then the sum)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps, rounds, auto_steps = (5, 3, 100) if args.quick else (10, 5, 100)
    steps, rounds = args.steps or steps, args.rounds or rounds
    if steps * rounds < TRIAL_CALLS + 1:
        parser.error(f"steps x rounds must exceed auto's {TRIAL_CALLS} trial calls, got {steps} x {rounds}")
    device = torch.device(args.device)

    digits = data.digits().train
    x, y = digits.inputs.to(device), digits.targets.to(device)
    generator = torch.Generator().manual_seed(0)
    cifar_x = torch.randn(max(4096, args.batch * 2), 3, 32, 32, generator=generator).to(device)
    cifar_y = torch.randint(0, 10, (cifar_x.shape[0],), generator=generator).to(device)
    available = {
        "mlp": ("mlp_64_32_10", lambda: models.mlp(64, (32,), 10), x, y),
        "cnn": ("small_cnn_bn", lambda: models.small_cnn(width=8, batchnorm=True), x.view(-1, 1, 8, 8), y),
        "resnet20": ("resnet20", lambda: models.ZOO["resnet20"](), cifar_x, cifar_y),
    }
    chosen = [n.strip() for n in args.nets.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in available]
    if unknown:
        parser.error(f"unknown nets {unknown}: use {', '.join(available)}")
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    speed = {"precision": "bf16" if args.bf16 else "fp32", "channels_last": args.channels_last, "compile": args.compile}
    results = [
        bench_one(name, make, inputs, targets, n, steps, auto_steps, rounds, args.batch, speed, args.train_micro_batch)
        for name, make, inputs, targets in (available[c] for c in chosen)
        for n in args.pivots
    ]
    print(
        json.dumps(
            {
                "bench": "neb_step",
                "mode": "quick" if args.quick else "full",
                "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
                "cpu_threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "python": platform.python_version(),
                "batch_per_pivot": args.batch,
                "speed_options": {**speed, "cudnn_benchmark": args.cudnn_benchmark},
                "steps_x_rounds": [steps, rounds],
                "train_micro_batch": args.train_micro_batch,
                "auto_steps": auto_steps,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Where a NEB step's time goes, and what it costs against one training step.

For the digits MLP (64-32-10) and the small CNN with BatchNorm, N pivots at
batch B each (default 16 x 128), one full NEB step is the engine's own
(engine.paths.autoneb.Connection, the string method: the losses of all N pivots and
the gradients of the N-2 interior ones, the two fixed ends forward only where the
energy evaluates them apart (``NetworkEnergy.ends_apart``; else all N are
differentiated), tangents, perpendicular loss force, one SGD step with momentum on
the interior, re-spacing). Each strategy (batched, vmap, loop) runs at each intra-op thread
count (1 and the cap, the energy's own ``threads``); the reference is one plain
training step of the same network at batch P x B (forward, backward, SGD
step) at each thread count, where P is the pivots the step differentiates: N-2
where the ends are apart, N where they are not (the output names P for each ratio). All contenders are interleaved in rounds of
``steps`` steps (the machine is shared) and reported as medians; each is
compared at its own best thread count.

The breakdown of a step, from timers around the engine's own functions:
draws (each pivot's batch indices), inputs (gathering the batches), forward,
backward (the rest of the energy's batched or looped evaluation; for an MLP the
batched network's written-out backward), tangents,
forces (the band strategy's descent directions: projection, springs, climbing
image), optimiser, respacing, and rest
(the step's remaining work: divergence check, events, the rest of the energy call).
The timers (about a dozen Python wrappers, some 3% of the digits MLP's step) are in
place only in every other round: the breakdown and "timed step" come from those
rounds, the "full step" and the ratios from the untimed rounds between them, the
engine's step alone. Every other pair of rounds runs the contenders in reverse
order (the first after the training step measured a few percent slower).

"before" = the best of vmap and loop, "after" = batched; ratios are full NEB
step / training step at P x B (P: the pivots it differentiates), each at its best
thread count.

``--baseline REV`` adds the step of the engine at git revision REV (its
engine/neb and engine/energy, loaded beside today's: its band and its network
energy, batch draws included) as contenders "<strategy>@base...", interleaved
with today's, so that a change to the step is measured before/after in one run
("baseline" in the JSON).

Prints a table per net, then one JSON line (with the start time and the load
average before and after).   python bench/neb_step.py [--quick]
The MLP and CNN-BN ratios at N = 16, every strategy, 20 rounds (about two
minutes on two cores):   python bench/neb_step.py --rounds 20
ResNet-20 at 16 x 512 on two CPU cores, the loop at two threads only (one thread
doubles a step of twenty seconds; the batched step measured 1.9x a training step
there), one step per round (about six minutes):
    python bench/neb_step.py --nets resnet20 --pivots 16 --batch 512 --strategies loop \
        --thread-counts 2 --steps 1 --rounds 4 --train-micro-batch 512

The process restarts itself at once with the environment the product's workers run
with (sessions.processes.spawn.cpu_friendly_env: OpenMP waits and glibc malloc settings), so
that every contender, the training step included, runs as a worker would.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sessions.processes.spawn import cpu_friendly_env  # noqa: E402

if any(os.environ.get(k) != v for k, v in cpu_friendly_env().items()):
    # as the product's workers run (OpenMP waits, malloc settings): glibc reads the
    # latter at start-up only, so this process starts again with them
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **cpu_friendly_env()})

import torch  # noqa: E402

import engine.paths.autoneb as autoneb  # noqa: E402
from engine.energy.network import NetworkEnergy  # noqa: E402
from engine.networks.layout import ParameterLayout  # noqa: E402
from engine.threads import intra_op_threads  # noqa: E402
from engine.paths.schedule import BandOptions, Cycle, Schedule  # noqa: E402
from engine.networks import data, models  # noqa: E402

BATCH = 128
PARTS = ("draws", "inputs", "forward", "backward", "tangents", "forces", "optimiser", "respacing", "rest")


class Clock:
    """Seconds spent in named parts during the current step (synchronised on CUDA)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.parts: dict[str, float] = defaultdict(float)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def timed(self, part: str, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            self.sync()
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.sync()
                self.parts[part] += time.perf_counter() - start

        return wrapper


CLOCK: Clock | None = None  # the band being timed now (bands run one after the other)


_SWAPS: dict[object, list[tuple[str, object, object]]] = {}  # module -> (name, original, timed)


def _time_module(module, names: dict[str, str]) -> None:
    """Wrap the module-level functions ``name`` of an autoneb module in the current clock's timer
    (switched on and off with ``_swap``)."""
    for name, part in names.items():
        if not hasattr(module, name):
            continue
        original = getattr(module, name)

        def timed(*args, __original=original, __part=part, **kwargs):
            clock = CLOCK
            assert clock is not None
            clock.sync()
            start = time.perf_counter()
            try:
                return __original(*args, **kwargs)
            finally:
                clock.sync()
                clock.parts[__part] += time.perf_counter() - start

        setattr(module, name, timed)
        _SWAPS.setdefault(module, []).append((name, original, timed))


def _swap(swaps: list[tuple[object, str, object, object]], timed: bool) -> None:
    """Put the timed wrappers (or the originals) in place."""
    for owner, name, original, wrapper in swaps:
        setattr(owner, name, wrapper if timed else original)


# forces: descent_directions (today), neb_forces (an older step, --baseline); the optimiser
# update: _optimiser_step where a step has one, else the connection's optimiser.step (Band)
_TIMED = {"descent_directions": "forces", "neb_forces": "forces", "_optimiser_step": "optimiser"}
_time_module(autoneb, _TIMED)


def load_baseline(rev: str):
    """The autoneb and energy.network modules of git revision ``rev`` (engine/paths or,
    earlier, engine/neb), with its own engine beside today's."""
    import importlib
    import subprocess
    import tarfile
    import tempfile
    from io import BytesIO

    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(root), "archive", rev, "engine"], check=True, capture_output=True).stdout
    folder = tempfile.mkdtemp(prefix="neb_step_baseline_")
    tarfile.open(fileobj=BytesIO(archive)).extractall(folder, filter="data")
    ours = {k: v for k, v in sys.modules.items() if k == "engine" or k.startswith("engine.")}
    for k in ours:
        del sys.modules[k]
    sys.path.insert(0, folder)
    try:
        try:  # where AutoNEB lives since the path methods share engine/paths, and before
            module = importlib.import_module("engine.paths.autoneb")
        except ModuleNotFoundError:
            module = importlib.import_module("engine.neb.autoneb")
        network = importlib.import_module("engine.energy.network")
    finally:
        sys.path.remove(folder)
        for k in [k for k in sys.modules if k == "engine" or k.startswith("engine.")]:
            del sys.modules[k]
        sys.modules.update(ours)
    _time_module(module, _TIMED)
    return module, network


class Band:
    """The engine's own band, with timers around the parts of its step."""

    def __init__(self, energy: NetworkEnergy, start: torch.Tensor, end: torch.Tensor, n_pivots: int, batch: int,
                 engine_autoneb=autoneb):
        schedule = Schedule(
            cycles=(Cycle(steps=10**9, lr=0.01, optimiser_args={"momentum": 0.9}, batch_size=batch),),
            band=BandOptions(initial_pivots=n_pivots - 2, max_pivots=n_pivots),
        )
        self.energy = energy
        self.clock = Clock(energy.device)
        self.connection = engine_autoneb.Connection(energy, schedule, start, end)
        self.connection.run(lambda: True)  # the linear profile and the first cycle's set-up, untimed
        clock, c = self.clock, self.connection
        # (owner, name, original, timed): the timers are in place only in timed rounds, so
        # that the full step of an untimed round is the engine's alone (they cost about 3%)
        self.swaps: list[tuple[object, str, object, object]] = [
            (engine_autoneb, name, original, wrapper) for name, original, wrapper in _SWAPS.get(engine_autoneb, [])
        ]
        # "evaluation" (the energy's passes, the ends' forward-only one included) less
        # "forward" is the backward; the forces are the band strategy's descent directions
        timers = [(energy, "batch_indices", "draws"), (energy, "_step_inputs", "inputs"),
                  (energy, "_direct_loss", "forward"), (energy, "_direct_forward", "forward"),
                  (energy, "_pivots_loss", "forward"), (energy, "_looped_loss", "forward"),
                  (energy, "_batched", "evaluation"), (energy, "_looped", "evaluation"),
                  (energy, "_forward_only", "evaluation"),
                  (c, "tangent", "tangents"), (c, "_respace", "respacing")]
        if hasattr(c, "strategy") and hasattr(c.strategy, "directions"):
            timers.append((c.strategy, "directions", "forces"))
        # the pivots a step differentiates: the training step it is set against is at P x B
        ends_apart = getattr(energy, "ends_apart", None)
        self.differentiated = n_pivots - 2 if ends_apart is not None and ends_apart(energy.strategy_used or "") \
            else n_pivots
        if not hasattr(engine_autoneb, "_optimiser_step"):  # a step that calls optimiser.step itself
            timers.append((c.optimiser, "step", "optimiser"))
        for owner, name, part in timers:
            if hasattr(owner, name):  # _direct_forward: the batched network's written-out backward
                original = getattr(owner, name)
                self.swaps.append((owner, name, original, clock.timed(part, original)))

    def steps(self, count: int, timed: bool = True) -> list[dict[str, float]]:
        """Run ``count`` steps; each step's seconds in all ("step") and, when ``timed``,
        per part (untimed: the engine's step with no timer in it)."""
        global CLOCK
        CLOCK = self.clock
        _swap(self.swaps, timed)
        out: list[dict[str, float]] = []
        last: list[float] = []

        def should_stop() -> bool:
            self.clock.sync()
            now = time.perf_counter()
            if last and not timed:
                out.append({"step": now - last[0]})
            elif last:
                parts = dict(self.clock.parts)
                evaluation = parts.pop("evaluation", 0.0)
                parts["backward"] = evaluation - parts.get("forward", 0.0)
                parts["step"] = now - last[0]
                parts["rest"] = parts["step"] - sum(parts.get(p, 0.0) for p in PARTS if p != "rest")
                out.append(parts)
            self.clock.parts.clear()
            last[:] = [now]
            return len(out) >= count

        self.connection.run(should_stop)
        return out


def count_syncs(make, x, y, n_pivots: int, batch: int, steps: int) -> dict:
    """Host synchronisations per NEB step of the engine's band on a CUDA device, counted
    with torch.cuda.set_sync_debug_mode("warn") over ``steps`` steps after a warm-up
    (the energy's strategy trial and the cycle's set-up excluded)."""
    import warnings

    torch.manual_seed(0)
    a, b = make(), make()
    layout = ParameterLayout.from_module(a)
    start, end = layout.flatten(a), layout.flatten(b)
    energy = NetworkEnergy(a, x, y, batch_size=batch, strategy="batched", eval_inputs=x[:64], eval_targets=y[:64],
                           calibration_size=64)
    band = Band(energy, start, end, n_pivots, batch)
    band.steps(3)
    counted: list[int] = []

    def should_stop() -> bool:
        counted.append(0)
        return len(counted) > steps

    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            band.connection.run(should_stop)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    result = {"steps": steps, "syncs": len(syncs), "syncs_per_step": round(len(syncs) / steps, 3),
              "check_every": autoneb.CHECK_EVERY}
    print(f"host synchronisations: {len(syncs)} in {steps} steps ({result['syncs_per_step']} per step)")
    return result


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
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        times.append(time.perf_counter() - start)
    return times


def bench_one(name: str, make, x, y, n_pivots: int, batch: int, strategies: list[str], counts: list[int | None],
              steps: int, rounds: int, speed: dict, train_micro_batch: int | None, baseline=None) -> dict:
    torch.manual_seed(0)
    a, b = make(), make()
    layout = ParameterLayout.from_module(a)
    start, end = layout.flatten(a).to(x.device), layout.flatten(b).to(x.device)
    # evaluation (the band's linear profile at set-up) is not what is timed: keep it small
    small = {"eval_inputs": x[:64], "eval_targets": y[:64], "calibration_size": 64, **speed}
    bands: dict[str, Band] = {}
    for strategy in strategies:
        for count in counts:
            energy = NetworkEnergy(a, x, y, batch_size=batch, strategy=strategy, threads=count, **small)
            bands[_key(strategy, count)] = Band(energy, start, end, n_pivots, batch)
            if baseline is not None:
                base_autoneb, base_network = baseline
                energy = base_network.NetworkEnergy(a, x, y, batch_size=batch, strategy=strategy, threads=count, **small)
                bands[_key(strategy + "@base", count)] = Band(energy, start, end, n_pivots, batch, base_autoneb)
    model = make().to(x.device)
    for key, band in bands.items():  # warm-up
        band.steps(2)
    differentiated = sorted({band.differentiated for band in bands.values()})  # P: N-2, N or both
    for count in counts:
        with intra_op_threads(count):
            train_seconds(model, x, y, differentiated[-1] * batch, 2, train_micro_batch)
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in bands}  # timed rounds: the parts
    full: dict[str, list[float]] = {k: [] for k in bands}  # untimed rounds: the full step
    train: dict[str, list[float]] = {_train_key(p, c): [] for p in differentiated for c in counts}
    for round_ in range(rounds):  # interleaved, so that machine noise hits all alike
        # every other round timed (the breakdown) or untimed (the full step, no timer in it);
        # the order of the contenders reversed every other pair of rounds (the first one
        # after the training step measured a few percent slower)
        timed = round_ % 2 == 0 or rounds == 1
        order = list(bands.items())
        if round_ // 2 % 2:
            order.reverse()
        for key, band in order:
            rows = band.steps(steps, timed=timed)
            (samples if timed else full)[key].extend(rows if timed else [r["step"] for r in rows])
        for p in differentiated:
            for count in counts:
                with intra_op_threads(count):
                    train[_train_key(p, count)] += train_seconds(model, x, y, p * batch, steps, train_micro_batch)
    breakdown = {
        key: {part: statistics.median(s.get(part, 0.0) for s in rows) for part in (*PARTS, "step")}
        for key, rows in samples.items()
    }
    for key, steps_s in full.items():
        breakdown[key]["timed_step"] = breakdown[key]["step"]
        if steps_s:
            breakdown[key]["step"] = statistics.median(steps_s)
    train_med = {k: statistics.median(v) for k, v in train.items()}

    def best_train(p: int) -> str:
        return min((_train_key(p, c) for c in counts), key=lambda k: train_med[k])

    def best(names: list[str]) -> str | None:
        keys = [_key(s, c) for s in names for c in counts if _key(s, c) in breakdown]
        return min(keys, key=lambda k: breakdown[k]["step"]) if keys else None

    before, after = best(["vmap", "loop"]), best(["batched"])
    base = best([s + "@base" for s in strategies])
    result = {
        "net": name,
        "D": layout.dim,
        "N": n_pivots,
        "B": batch,
        "step_ms": {k: round(v["step"] * 1e3, 3) for k, v in breakdown.items()},
        "timed_step_ms": {k: round(v["timed_step"] * 1e3, 3) for k, v in breakdown.items()},
        "full_step_from": "untimed rounds" if rounds > 1 else "the timed round (one round only)",
        "train_ms": {k: round(v * 1e3, 3) for k, v in train_med.items()},
        "breakdown_ms": {k: {p: round(v[p] * 1e3, 3) for p in PARTS} for k, v in breakdown.items()},
        # the pivots each contender's step differentiates (P): its ratio is against a training step at P x B
        "differentiated": {k: band.differentiated for k, band in bands.items()},
        "before": before,
        "after": after,
        "baseline": base,
    }
    for label, key in (("before", before), ("after", after), ("baseline", base)):
        if key is not None:
            train_key = best_train(bands[key].differentiated)
            result[f"{label}_train"] = train_key
            result[f"{label}_over_train"] = round(breakdown[key]["step"] / train_med[train_key], 3)
    _print_table(result)
    return result


def _key(strategy: str, count: int | None) -> str:
    return strategy if count is None else f"{strategy}@{count}"


def _train_key(pivots: int, count: int | None) -> str:
    """A training step at ``pivots`` x B: "train 14xB@2"."""
    return _key(f"train {pivots}xB", count)


def _print_table(r: dict) -> None:
    keys = list(r["breakdown_ms"])
    print(f"\n{r['net']}  N={r['N']}  B={r['B']}  D={r['D']}   (ms, medians per step)")
    print(f"{'part':<11}" + "".join(f"{k:>12}" for k in keys))
    for part in PARTS:
        print(f"{part:<11}" + "".join(f"{r['breakdown_ms'][k][part]:>12.3f}" for k in keys))
    print(f"{'timed step':<11}" + "".join(f"{r['timed_step_ms'][k]:>12.3f}" for k in keys))
    print(f"{'full step':<11}" + "".join(f"{r['step_ms'][k]:>12.3f}" for k in keys) + f"   ({r['full_step_from']})")
    print("pivots differentiated per step (P): " + ", ".join(f"{k} {v}" for k, v in r["differentiated"].items()))
    print("training step at P x B: " + ", ".join(f"{k} {v:.3f}" for k, v in r["train_ms"].items()))
    for label in ("before", "after", "baseline"):
        if r.get(label):
            print(f"{label} ({r[label]}) / training ({r[f'{label}_train']}): {r[f'{label}_over_train']}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (about a minute on 2 CPUs)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--pivots", type=int, nargs="+", default=[16])
    parser.add_argument("--threads", type=int, default=None,
                        help="the thread cap: each contender runs at 1 and at the cap (default: torch's count)")
    parser.add_argument("--thread-counts", default=None, metavar="COUNTS",
                        help="comma-separated intra-op thread counts to run each contender at, instead of 1 and "
                        "the cap (e.g. 2 for ResNet-20 on two cores, where one thread only doubles the time)")
    parser.add_argument("--strategies", default="batched,vmap,loop", help="comma-separated: batched, vmap, loop")
    parser.add_argument("--nets", default="mlp,cnn", help="comma-separated: mlp, cnn (digits), resnet20 (CIFAR-shaped "
                        "random images; e.g. --nets resnet20 --pivots 16 --batch 512 on a GPU)")
    parser.add_argument("--batch", type=int, default=BATCH, help="minibatch per pivot")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast in the NEB steps")
    parser.add_argument("--channels-last", action="store_true", help="channels-last image batches")
    parser.add_argument("--compile", action="store_true", help="torch.compile the per-pivot loss (loop)")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (default 5 quick, 10 full)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3 quick, 10 full)")
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="also time the step of the engine at this git revision, interleaved (before/after)")
    parser.add_argument("--count-syncs", type=int, default=0, metavar="STEPS",
                        help="on CUDA: count host synchronisations over this many steps of each net (batched)")
    parser.add_argument("--train-micro-batch", type=int, default=None,
                        help="accumulate the training step's gradient over micro-batches of this size (for a "
                        "N x batch training step that does not fit in memory; the time is then the sum)")
    args = parser.parse_args()
    steps, rounds = (5, 3) if args.quick else (10, 10)
    steps, rounds = args.steps or steps, args.rounds or rounds
    device = torch.device(args.device)
    cap = args.threads or torch.get_num_threads()
    counts: list[int | None] = [None] if device.type != "cpu" else sorted({1, cap})
    if args.thread_counts and device.type == "cpu":
        counts = sorted({int(c) for c in args.thread_counts.split(",")})
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not set(strategies) <= {"batched", "vmap", "loop"}:
        parser.error(f"unknown strategies in {args.strategies!r}: use batched, vmap, loop")

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
    baseline = load_baseline(args.baseline) if args.baseline else None
    started, load_before = time.strftime("%Y-%m-%d %H:%M:%S %Z"), os.getloadavg()
    results = [
        bench_one(name, make, inputs, targets, n, args.batch, strategies, counts, steps, rounds, speed,
                  args.train_micro_batch, baseline)
        for name, make, inputs, targets in (available[c] for c in chosen)
        for n in args.pivots
    ]
    syncs = {}
    if args.count_syncs and device.type == "cuda":
        for name, make, inputs, targets in (available[c] for c in chosen):
            syncs[name] = count_syncs(make, inputs, targets, args.pivots[0], args.batch, args.count_syncs)
    elif args.count_syncs:
        print("host synchronisations: not counted (no CUDA device)")
    print(
        json.dumps(
            {
                "bench": "neb_step",
                "syncs": syncs,
                "mode": "quick" if args.quick else "full",
                "started": started,
                "load_1_5_15_before": [round(v, 2) for v in load_before],
                "load_1_5_15_after": [round(v, 2) for v in os.getloadavg()],
                "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
                "thread_counts": counts,
                "torch": torch.__version__, "environment": cpu_friendly_env(),
                "python": platform.python_version(),
                "batch_per_pivot": args.batch,
                "speed_options": {**speed, "cudnn_benchmark": args.cudnn_benchmark},
                "steps_x_rounds": [steps, rounds],
                "train_micro_batch": args.train_micro_batch,
                "baseline_rev": args.baseline,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()

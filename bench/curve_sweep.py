"""The sweep that chose CurveSchedule's defaults (lr, weight decay, points per step)
for the curves a session derives from a network schedule.

On ``--seeds`` pairs of digits MLP minima (bench/compare_methods.py's, seeds 2s
and 2s+1), trains each curve kind at the budget the digits demo gives it
(engine.paths.registry.curve_schedule of the paper schedule at 0.05 of its steps,
minibatch 128: 4000 gradient evaluations) under each setting, and scores it by
its saddle train loss. Every setting spends the same: the same gradient
evaluations (steps x points) and the same dense evaluations, so their total cost
(cost account, a backward counted as 2 forwards) is equal, and the JSON says so.

The settings, to fit two shared cores: lr x weight decay at 8 points per step,
and the points/steps split (4 x 1000, 16 x 250 beside 8 x 500) at the two highest
lrs without weight decay. Each is SGD with momentum 0.9 and the lr schedule of
Garipov et al. (constant for half the steps, then falling linearly to 1%), as
CurveSchedule runs it. The chosen setting: of those whose median saddle (over
seeds) is within 20% of the best median for both kinds, the smallest lr (the
best median sits next to the lr where single seeds blow up). ``--seed N`` runs one seed only and
writes its rows; ``--merge FILE...`` builds the table from such files (seeds run
side by side).

Writes ``--out`` (bench/results/curve-sweep-cpu.json) and prints one JSON line.
    python bench/curve_sweep.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from compare_methods import RESULTS, autoneb_schedule, connect, make_problem  # noqa: E402
from engine.networks import data  # noqa: E402
from engine.paths.curve_schedule import CURVE_KINDS, CurveSchedule  # noqa: E402
from engine.paths.registry import curve_schedule  # noqa: E402


def setting_schedule(kind: str, budget: int, lr: float, weight_decay: float, points: int) -> CurveSchedule:
    base = CurveSchedule(kind=kind, points=points, lr=lr, weight_decay=weight_decay)
    return base.with_budget(budget)


def median_saddles(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    """Per setting (``key`` of a row) and kind: the median saddle over seeds."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        out.setdefault(row[key], {}).setdefault(row["kind"], [])  # type: ignore[arg-type]
        out[row[key]][row["kind"]].append(row["saddle_loss"])  # type: ignore[union-attr]
    return {s: {k: round(statistics.median(v), 5) for k, v in kinds.items()} for s, kinds in out.items()}


def best(medians: dict[str, dict[str, float]], rows: list[dict[str, Any]], margin: float = 1.2) -> str:
    """The lowest median saddle (the lowest sum over kinds of its rank; ties: the lower sum of medians),
    then, of the settings within ``margin`` of that one's median for every kind, the one with the smallest
    lr (then the fewest points): near the lr at which a curve blows up the median still looks best, while
    single seeds already go astray."""
    kinds = next(iter(medians.values())).keys()
    ranks = {s: 0 for s in medians}
    for kind in kinds:
        for rank, s in enumerate(sorted(medians, key=lambda s: medians[s][kind])):
            ranks[s] += rank
    top = min(medians, key=lambda s: (ranks[s], sum(medians[s].values())))
    near = [s for s in medians if all(medians[s][k] <= margin * medians[top][k] for k in kinds)]
    setting = {r["setting"]: (r["lr"], r["points"]) for r in rows}
    return min(near, key=lambda s: setting[s])


def settings(lrs: list[float], decays: list[float], splits: list[int]) -> list[tuple[float, float, int]]:
    """(lr, weight decay, points): lr x decay at 8 points; the other splits at the two highest lrs, no decay."""
    grid = [(lr, decay, 8) for lr in lrs for decay in decays]
    return grid + [(lr, 0.0, points) for lr in sorted(lrs)[-2:] for points in splits if points != 8]


def summary(rows: list[dict[str, Any]], budget: int, seconds: float, load: float) -> dict[str, Any]:
    medians = median_saddles(rows, "setting")
    chosen = next(r for r in rows if r["setting"] == best(medians, rows))
    costs = sorted({r["cost"] for r in rows if "cost" in r})
    return {
        "what": "curve settings by median saddle train loss over seeds, digits MLP pairs, equal budget",
        "budget_gradient_evaluations": budget,
        "batch": 128,
        "cost_convention": "cost account, per-sample passes, forward 1, backward 2, evaluation included",
        "total_cost_range": [costs[0], costs[-1]] if costs else None,
        "seeds": sorted({r["seed"] for r in rows}),
        "medians": medians,
        "chosen": {"lr": chosen["lr"], "weight_decay": chosen["weight_decay"], "points": chosen["points"]},
        "rows": rows,
        "seconds": round(seconds, 1),
        "load_average": round(load, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None, help="run this seed only")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, help="per-seed outputs to combine")
    parser.add_argument("--lrs", default="0.01,0.03,0.1,0.3")
    parser.add_argument("--weight-decays", default="0,5e-4")
    parser.add_argument("--points", default="4,8,16")
    parser.add_argument("--autoneb-scale", type=float, default=0.05, help="the budget: the digits demo's")
    parser.add_argument("--out", type=Path, default=RESULTS / "curve-sweep-cpu.json")
    parser.add_argument("--quick", action="store_true", help="one seed, two lrs, a tenth of the budget, into /tmp")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.lrs, args.weight_decays, args.points = 1, "0.03,0.1", "0", "4,8"
        args.autoneb_scale, args.out = 0.005, Path("/tmp/curve-sweep-quick.json")
    budget = curve_schedule("bezier", autoneb_schedule(args.autoneb_scale)).gradient_evaluations
    if args.merge:
        parts = [json.loads(path.read_text()) for path in args.merge]
        rows = [row for part in parts for row in part["rows"]]
        out = summary(rows, budget, sum(p["seconds"] for p in parts), max(p["load_average"] for p in parts))
        args.out.write_text(json.dumps(out, indent=1) + "\n")
        print(json.dumps({"out": str(args.out), "chosen": out["chosen"], "medians": out["medians"]}))
        return
    torch.set_num_threads(1 if args.seed is not None else max(1, min(2, os.cpu_count() or 1)))
    lrs = [float(v) for v in args.lrs.split(",")]
    decays = [float(v) for v in args.weight_decays.split(",")]
    splits = [int(v) for v in args.points.split(",")]

    started = time.perf_counter()
    load = os.getloadavg()[0]
    digits = data.digits()
    seeds = range(args.seeds) if args.seed is None else [args.seed]
    rows = []
    for seed in seeds:
        problem = make_problem(seed, digits)
        for lr, decay, points in settings(lrs, decays, splits):
            for kind in CURVE_KINDS:
                schedule = setting_schedule(kind, budget, lr, decay, points)
                try:
                    _, figures = connect(problem, schedule, aligned=False)
                except RuntimeError as error:  # DivergedError: the setting is out
                    figures = {"saddle_loss": float("inf"), "max_test_error": 1.0, "diverged": str(error)[:80]}
                row = {"seed": seed, "kind": kind, "lr": lr, "weight_decay": decay, "points": points,
                       "steps": schedule.steps, "setting": f"lr={lr:g} wd={decay:g} points={points}", **figures}
                print(f"[{time.perf_counter() - started:6.0f}s] {row['setting']:28} seed {seed} {kind:9} "
                      f"saddle {row['saddle_loss']:.4f}", file=sys.stderr, flush=True)
                rows.append(row)
    out = summary(rows, budget, time.perf_counter() - started, max(load, os.getloadavg()[0]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({"out": str(args.out), "chosen": out["chosen"], "medians": out["medians"],
                      "seconds": out["seconds"]}))


if __name__ == "__main__":
    main()

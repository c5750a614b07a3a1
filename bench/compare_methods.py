"""AutoNEB, Bezier curves and polygonal chains, each with and without weight
matching, between the same digits minima at matched total cost.

For each of ``--seeds`` seeds, trains a pair of MLPs (64-32-10, the digits demo's
network and recipe; seeds 2s and 2s+1) and connects them by every method at
``--budgets`` multiples of the cost of AutoNEB's paper schedule at ``--autoneb-scale``
of its steps (0.05, as the digits demo runs it). Each path is scored by its saddle
train loss (the highest loss along the path, every point evaluated on the whole
training set) and its largest test error; the straight segments before and after
weight matching are given beside them.

Cost is the run's own cost account (``ConnectionResult.cost``), in per-sample
passes: every forward of a sample counts 1 and every backward 2 (the usual
convention: a backward costs about two forwards), over the training steps, the
dense evaluations of the path on the whole training set (the straight segment's
included) and BatchNorm's recalibration (none in this MLP). Scoring the finished
path for the table (its saddle and test error) is outside the account, the same
for every method.

Matching: AutoNEB runs first at 1x, the reference every multiple is of. Its
cost does not follow its steps linearly, nor even monotonically (more steps, more
pivots inserted: the linear guess spent 3.2x at 2x), so each other multiple k is
calibrated: the steps (the paper's, times one factor) come from the secant
through the pair's runs so far that are closest to k times the 1x cost on either
side (their midpoint if the secant's steps have been run; where every run spent
less, the closest run's steps scaled by the ratio of the costs beyond the dense
evaluations: at 2x, from the 1x run alone, the linear guess), a run is made, and
again, up to ``TRIES`` (3) runs, until one spends within ``TOLERANCE`` (5%) of the
target; else the closest run is kept. 2x and 4x go up from 1x, 0.5x and 0.25x
down from it. Every run's factor and cost are in the row's ``tries``, and
``spent`` is the cost it actually spent over 1x. At 0.25x AutoNEB cannot match:
its 14 cycles' evaluations alone cost more, so it runs one step a cycle and says
what it spent.
Each curve gets as many steps as bring its total to k times AutoNEB's 1x cost on
that pair: steps of ``points`` minibatches of 128, plus its ``cycles`` + 1 dense
evaluations of ``eval_points`` points.

Early stop (``autoneb-converge``): AutoNEB with ``--converge 0.003:2`` (the
setting bench/converge.py measured on the digits demo), at each multiple on the
schedule AutoNEB's row was calibrated to; it ends once its saddle has settled,
so it spends less than its budget, and its ``spent`` is what it spent. The
summary's ``converge_saving`` gives, pair by pair, its cost over AutoNEB's on the
same schedule and its saddle over AutoNEB's.

Alignment (``+aligned``): the pair's higher-loss minimum is permuted to match the
lower one (weight matching, engine.alignment.weight_matching.align), as a session
with --align aligns every minimum to the lowest; the path then runs between the
lower minimum and the permuted one.

Writes the table (median and min-max over the seeds per method and multiple) to
``--out`` and the frontier figure to ``--figure``, and prints one JSON line.
``--seed N`` runs one seed on one thread (no figure); ``--merge FILE...`` builds
the table and figure from such files, so that seeds can run side by side. Time:
the recorded result (3 seeds, 0.25x-4x) ran as six one-thread parts of 5 to 15
minutes (AutoNEB's calibration and the early stop's runs add 0.8 times the work
of the methods alone), about 28 minutes three at a time on 2 cores shared with
other work (load 3.6 to 10.8); ``--quick`` (one seed, 0.5x-2x of a tenth of the
schedule) about 2 minutes.
    python bench/compare_methods.py [--quick]
    for s in 0 1 2; do for a in none aligned; do
        python bench/compare_methods.py --seed $s --alignment $a --out part-$s-$a.json; done; done
    python bench/compare_methods.py --merge part-*.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the product's processes run (sessions.processes.spawn)

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.alignment.weight_matching import align  # noqa: E402
from engine.band.geometry import dense_points, linear_path  # noqa: E402
from engine.energy.network import NetworkEnergy  # noqa: E402
from engine.networks import data, models  # noqa: E402
from engine.networks.training import RECIPES, train  # noqa: E402
from engine.paths.curve_schedule import CURVE_KINDS, CurveSchedule  # noqa: E402
from engine.paths.registry import CURVE_POINTS, new_run  # noqa: E402
from engine.paths.run import CostAccount, ConnectionResult, seed_for_pair  # noqa: E402
from engine.paths.schedule import Schedule, load_schedule  # noqa: E402

BATCH = 128  # samples per minibatch, every method
STRAIGHT_POINTS = 61  # evaluation points of a straight segment, as of a curve
BACKWARD = 2  # a backward pass counted as this many forwards
RESULTS = Path(__file__).resolve().parent / "results"
TOLERANCE = 0.05  # AutoNEB's spent cost within this fraction of its target, else the closest of its tries
TRIES = 3  # runs of AutoNEB per multiple at most
CONVERGE = (0.003, 2)  # --converge 0.003:2, the setting bench/converge.py found saddles 0.2-0.3% above at


def total_cost(cost: CostAccount) -> int:
    """The account in forward-sample equivalents: forwards + BACKWARD x backwards."""
    return cost.steps_forward + BACKWARD * cost.steps_backward + cost.evaluation_forward + cost.recalibration_forward


def step_cost(cost: CostAccount) -> int:
    """The part of ``total_cost`` the training steps spent."""
    return cost.steps_forward + BACKWARD * cost.steps_backward


@dataclass
class Problem:
    """One seed's pair of minima on digits, with the energy every method uses."""

    seed: int
    energy: NetworkEnergy
    model: torch.nn.Module
    test: data.DigitsSplit
    minima: tuple[torch.Tensor, torch.Tensor]  # (D,) each, the lower-loss minimum first
    aligned: torch.Tensor  # (D,), the higher one permuted to match the lower
    losses: tuple[float, float]

    @property
    def train_size(self) -> int:
        return int(self.energy.eval_inputs.shape[0])  # what a dense evaluation runs on

    def ends(self, aligned: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.minima[0], self.aligned if aligned else self.minima[1])


def make_problem(seed: int, digits: data.Digits) -> Problem:
    """The pair of minima of ``seed``: two MLPs trained by the digits recipe (seeds 2s, 2s+1)."""
    trained = []
    for i in (2 * seed, 2 * seed + 1):
        torch.manual_seed(i)
        trained.append(train(models.mlp(), digits.train.inputs, digits.train.targets,
                             recipe=RECIPES["digits"], seed=i).parameters)
    model = models.mlp()
    energy = NetworkEnergy(model, digits.train.inputs, digits.train.targets, batch_size=BATCH, strategy="loop")
    losses = [float(v) for v in energy.evaluate(torch.stack(trained))]
    order = sorted(range(2), key=lambda i: losses[i])
    low, high = trained[order[0]], trained[order[1]]
    aligned = align(model, low, high).params
    return Problem(seed, energy, model, digits.test, (low, high), aligned, (losses[order[0]], losses[order[1]]))


def path_figures(problem: Problem, points: torch.Tensor) -> dict[str, float]:
    """The saddle train loss and the largest test error along ``points`` (M, D)."""
    losses = problem.energy.evaluate(points)
    _, errors = problem.energy.metrics(points, problem.test.inputs, problem.test.targets)
    return {"saddle_loss": round(float(losses.max()), 5), "max_test_error": round(float(errors.max()), 5)}


def autoneb_schedule(scale: float) -> Schedule:
    """The paper's schedule at ``scale`` of its steps, minibatches of BATCH."""
    return load_schedule("paper").scaled(scale).replace_cycles(batch_size=BATCH)


def curve_for_cost(base: CurveSchedule, target: float, train_size: int) -> CurveSchedule:
    """``base`` with as many steps as bring its total cost to about ``target``: its
    ``cycles`` + 1 dense evaluations (the straight segment's first) and the rest in steps."""
    evaluation = (base.cycles + 1) * base.eval_points * train_size
    per_step = base.points * BATCH * (1 + BACKWARD)
    steps = max(base.cycles, round((target - evaluation) / per_step))
    return CurveSchedule(**{**base.to_dict(), "steps": steps})


def connect(problem: Problem, schedule: Any, aligned: bool) -> tuple[ConnectionResult, dict[str, Any]]:
    """One run of the method ``schedule`` is for, and its figures: saddle, test error, cost."""
    start, end = problem.ends(aligned)
    started = time.perf_counter()
    result = new_run(problem.energy, schedule, start, end, seed=seed_for_pair(problem.seed, (0, 1))).run()
    seconds = time.perf_counter() - started
    assert result is not None and result.cost is not None
    points = result.pivots if isinstance(schedule, CurveSchedule) else dense_points(result.pivots,
                                                                                     schedule.band.dense_points)
    _, errors = problem.energy.metrics(points, problem.test.inputs, problem.test.targets)
    # the saddle of the run's own dense profile: every point of ``points`` on the whole training set
    figures = {"saddle_loss": round(result.saddle_energy, 5), "max_test_error": round(float(errors.max()), 5)}
    return result, {**figures, "cost": total_cost(result.cost), "step_cost": step_cost(result.cost),
                    "seconds": round(seconds, 2)}


def curve_base(kind: str) -> CurveSchedule:
    """The curve as a session derives it from a network schedule (CurveSchedule's defaults)."""
    return CurveSchedule(kind=kind, points=CURVE_POINTS)


def spent_rows(problem: Problem, runs: list[tuple[str, Any]], aligned: bool, k: float,
               reference: int) -> list[dict[str, Any]]:
    """Rows for ``runs`` (method, schedule) at multiple ``k``, each with what it spent."""
    rows = []
    for method, schedule in runs:
        result, figures = connect(problem, schedule, aligned)
        extra = {"steps": schedule.steps} if isinstance(schedule, CurveSchedule) else {
            "cycles": len(result.history), "cycle_steps": [c.steps for c in schedule.cycles]}
        rows.append({"seed": problem.seed, "method": method + ("+aligned" if aligned else ""), "multiple": k,
                     "spent": round(figures["cost"] / reference, 4), **extra, **figures})
    return rows


def next_factor(runs: list[tuple[float, int]], fixed: int, target: float) -> list[float]:
    """Factors of AutoNEB's 1x steps expected to cost ``target``, best first, from
    ``runs`` (factor, cost: this pair's runs so far) and ``fixed`` (the 1x run's dense
    evaluations, the cost of no steps, standing for a run below the target until one
    is made; where a run spent less than it, the floor ``0`` instead, as no steps at
    all would be). Where runs bracket the target: the secant through the closest on each
    side, then their midpoint (cost is not monotone in the steps: pivots are inserted
    as the band goes). Where every run spent less: the closest run's steps scaled by
    the ratio of the costs beyond ``fixed`` (from the 1x run alone: the linear guess),
    or the secant through the two closest where it rises and asks for fewer steps."""
    above = [m for m in runs if m[1] > target]
    below = [m for m in runs if m[1] <= target]
    if not below:
        if min(m[1] for m in runs) <= fixed:  # runs with few steps evaluate fewer pivots than 1x
            return [0.0]
        below = [(0.0, fixed)]
    if above:
        a, b = max(below, key=lambda m: m[1]), min(above, key=lambda m: m[1])
        return [a[0] + (target - a[1]) * (b[0] - a[0]) / (b[1] - a[1]), (a[0] + b[0]) / 2]
    nearest = sorted(below, key=lambda m: target - m[1])
    a = nearest[0]
    b = next((m for m in nearest[1:] if m[0] != a[0] and m[1] != a[1]), None)
    ratio = a[0] * (target - fixed) / (a[1] - fixed) if a[1] > fixed else a[0] * target / a[1]
    if b is not None and (b[1] - a[1]) / (b[0] - a[0]) > 0:
        # a shallow secant reaches far: no further than the ratio goes
        return [min(a[0] + (target - a[1]) * (b[0] - a[0]) / (b[1] - a[1]), ratio), ratio]
    return [ratio]


def autoneb_for_cost(problem: Problem, scale: float, aligned: bool, k: float, reference: int, fixed: int,
                     runs: dict[tuple[int, ...], dict[str, Any]], log: Any
                     ) -> tuple[Schedule, dict[str, Any], list[dict[str, Any]]]:
    """AutoNEB's schedule scaled to cost about ``k`` x ``reference``, by up to TRIES runs:
    each run's steps from ``next_factor`` on the pair's runs so far (``runs``, by their
    cycles' steps, which every try joins), the first guess whose steps no run has had;
    done once a run is within TOLERANCE of the target, else the closest try (the
    closest of the pair's runs if every guess had been run). Returns that schedule,
    its run's figures and this multiple's tries."""
    target = k * reference
    paper = load_schedule("paper")
    floor = 0.49 / (scale * max(c.steps for c in paper.cycles))  # every cycle one step
    tries: list[dict[str, Any]] = []
    for _ in range(TRIES):
        guesses = [max(floor, f) for f in next_factor([(r["factor"], r["cost"]) for r in runs.values()],
                                                      fixed, target)]
        fresh = [(f, autoneb_schedule(scale * f)) for f in guesses]
        fresh = [(f, s) for f, s in fresh if tuple(c.steps for c in s.cycles) not in runs]
        if not fresh:  # no other number of steps left to try (the floor, or rounding)
            break
        factor, schedule = fresh[0]
        steps = tuple(c.steps for c in schedule.cycles)
        result, figures = connect(problem, schedule, aligned)
        runs[steps] = {"factor": round(factor, 5), "cost": figures["cost"], "schedule": schedule,
                       "figures": {**figures, "cycles": len(result.history), "cycle_steps": list(steps)}}
        tries.append({**runs[steps], "off": round(figures["cost"] / target - 1, 4)})
        log({"seed": problem.seed, "method": "(autoneb try)" + ("+aligned" if aligned else ""),
             "multiple": k, **figures})
        if abs(figures["cost"] / target - 1) <= TOLERANCE:
            break
        if factor <= floor and figures["cost"] > target:  # one step a cycle already spends more
            break
    best = min(tries or runs.values(), key=lambda t: abs(t["cost"] / target - 1))
    return best["schedule"], best["figures"], tries


def frontier_rows(problem: Problem, multiples: list[float], autoneb_scale: float,
                  curves: dict[str, CurveSchedule], log: Any,
                  alignments: tuple[bool, ...] = (False, True),
                  converge: tuple[float, int] | None = CONVERGE) -> list[dict[str, Any]]:
    """Every method, without and with alignment, at each multiple of AutoNEB's 1x cost, on
    one pair; AutoNEB calibrated to each multiple, and with the early stop at the same
    schedule (``converge``: change, cycles; None: not run)."""
    rows: list[dict[str, Any]] = []
    for aligned in alignments:
        one = autoneb_schedule(autoneb_scale)
        _, first = connect(problem, one, aligned)
        reference = first["cost"]
        fixed = reference - first["step_cost"]  # dense evaluations: do not scale with the steps
        # AutoNEB's runs on this pair, by their cycles' steps
        runs = {tuple(c.steps for c in one.cycles): {
            "factor": 1.0, "cost": reference, "schedule": one,
            "figures": {**first, "cycles": len(one.cycles), "cycle_steps": [c.steps for c in one.cycles]}}}
        # 1x first, then up from it and down from it, so that each multiple's first guess
        # starts from the runs nearest to it
        order = [1.0] + sorted(k for k in multiples if k > 1) + sorted((k for k in multiples if k < 1), reverse=True)
        for k in order:
            if k == 1.0:
                schedule, figures, tries = one, runs[tuple(c.steps for c in one.cycles)]["figures"], [
                    {"factor": 1.0, "cost": reference, "off": 0.0}]
            else:
                schedule, figures, tries = autoneb_for_cost(problem, autoneb_scale, aligned, k, reference, fixed,
                                                            runs, log)
            result_rows = [{"seed": problem.seed, "method": "autoneb" + ("+aligned" if aligned else ""),
                            "multiple": k, "spent": round(figures["cost"] / reference, 4), **figures,
                            "tries": [{key: t[key] for key in ("factor", "cost", "off")} for t in tries]}]
            others: list[tuple[str, Any]] = [(kind, curve_for_cost(base, k * reference, problem.train_size))
                                             for kind, base in curves.items()]
            if converge is not None:
                change, cycles = converge
                others.append(("autoneb-converge", schedule.replace_band(converge_change=change,
                                                                         converge_cycles=cycles)))
            result_rows += spent_rows(problem, others, aligned, k, reference)
            for row in result_rows:
                log(row)
            rows += result_rows
    return rows


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 5), "min": round(min(values), 5),
            "max": round(max(values), 5)}


def table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method and multiple: median and min-max over seeds of saddle, test error and cost."""
    out = []
    keys = sorted({(r["method"], r["multiple"]) for r in rows}, key=lambda mk: (mk[0], mk[1]))
    for method, k in keys:
        group = [r for r in rows if r["method"] == method and r["multiple"] == k]
        out.append({"method": method, "multiple": k, "seeds": len(group),
                    **{name: spread([r[name] for r in group])
                       for name in ("saddle_loss", "max_test_error", "cost", "spent", "seconds")},
                    **({"cycles": spread([r["cycles"] for r in group])} if "cycles" in group[0] else {})})
    return out


def converge_saving(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per alignment and multiple, AutoNEB with the early stop against AutoNEB on the same
    schedule without it, pair by pair: the fraction of the cost it spent, its saddle's ratio."""
    out = []
    full = {(r["method"], r["multiple"], r["seed"]): r for r in rows if r["method"].startswith("autoneb")}
    for suffix in ("", "+aligned"):
        for k in sorted({r["multiple"] for r in rows}):
            pairs = [(full[("autoneb" + suffix, k, seed)], stopped)
                     for (method, multiple, seed), stopped in full.items()
                     if method == "autoneb-converge" + suffix and multiple == k]
            if pairs:
                out.append({"method": "autoneb-converge" + suffix, "multiple": k, "seeds": len(pairs),
                            "cost_fraction": spread([s["cost"] / f["cost"] for f, s in pairs]),
                            "saddle_ratio": spread([s["saddle_loss"] / f["saddle_loss"] for f, s in pairs])})
    return out


def figure(summary: list[dict[str, Any]], straight: list[dict[str, Any]], path: Path) -> None:
    """Saddle train loss and largest test error against total cost: median, min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    methods = sorted({s["method"] for s in summary})
    colours = {"autoneb": "C0", "bezier": "C1", "polychain": "C2", "autoneb-converge": "C3"}
    for ax, name, label in ((axes[0], "saddle_loss", "saddle train loss"),
                            (axes[1], "max_test_error", "largest test error along the path")):
        for method in methods:
            rows = sorted((s for s in summary if s["method"] == method), key=lambda s: s["multiple"])
            cost = [s["cost"]["median"] for s in rows]
            style = "--" if method.endswith("+aligned") else "-"
            colour = colours[method.split("+")[0]]
            ax.plot(cost, [s[name]["median"] for s in rows], style, marker="o", color=colour, label=method)
            ax.fill_between(cost, [s[name]["min"] for s in rows], [s[name]["max"] for s in rows],
                            color=colour, alpha=0.12)
        for line, colour in (("linear", "grey"), ("aligned linear", "black")):
            values = [s[name] for s in straight if s["line"] == line]
            ax.axhline(statistics.median(values), color=colour, linestyle=":", linewidth=1,
                       label=f"{line} (median)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("total cost (per-sample forwards; a backward = 2)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("digits MLP pairs: median over seeds, band min-max")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="pairs of minima, one per seed")
    parser.add_argument("--budgets", default="0.25,0.5,1,2,4", help="multiples of AutoNEB's 1x cost")
    parser.add_argument("--autoneb-scale", type=float, default=0.05, help="1x: the paper schedule at this of its steps")
    parser.add_argument("--out", type=Path, default=RESULTS / "compare-methods-cpu.json")
    parser.add_argument("--figure", type=Path, default=RESULTS / "compare-methods.png")
    parser.add_argument("--quick", action="store_true", help="one seed, tiny budgets, results in /tmp")
    parser.add_argument("--seed", type=int, default=None, help="run this seed only (one thread), rows to --out")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, help="--seed outputs to combine")
    parser.add_argument("--alignment", choices=("both", "none", "aligned"), default="both",
                        help="run the methods without alignment, with it, or both")
    parser.add_argument("--converge", default=f"{CONVERGE[0]}:{CONVERGE[1]}",
                        help="AutoNEB's early stop CHANGE:CYCLES as one more method, or 'off'")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.budgets, args.autoneb_scale = 1, "0.5,1,2", 0.005
        args.out, args.figure = Path("/tmp/compare-methods-quick.json"), Path("/tmp/compare-methods-quick.png")
    multiples = [float(v) for v in args.budgets.split(",")]
    if 1.0 not in multiples:
        parser.error("--budgets must include 1 (the reference the others are multiples of)")
    converge = None
    if args.converge != "off":
        try:
            change, cycles = args.converge.split(":")
            converge = (float(change), int(cycles))
        except ValueError:
            parser.error(f"--converge takes CHANGE:CYCLES (e.g. 0.003:2) or off, got {args.converge!r}")
    curves = {kind: curve_base(kind) for kind in CURVE_KINDS}
    if args.merge:
        parts = [json.loads(path.read_text()) for path in args.merge]
        rows = [row for part in parts for row in part["rows"]]
        straight = [row for part in parts for row in part["straight"]]
        minima = list({m["seed"]: m for part in parts for m in part["minima"]}.values())
        seconds = max(part["seconds"] for part in parts)  # the seeds ran side by side
        load = max(part["load_average_at_start"] for part in parts)
        load_end = max(part["load_average_at_end"] for part in parts)
        loads = [v for part in parts for v in (part["load_average"]["min"], part["load_average"]["max"])]
        threads = parts[0]["threads"]
        multiples, reference = parts[0]["multiples"], parts[0]["reference"]
        args.seeds = len(minima)
    else:
        reference = f"1x = AutoNEB, paper schedule x {args.autoneb_scale} of its steps, minibatch {BATCH}"
        torch.set_num_threads(1 if args.seed is not None else max(1, min(2, os.cpu_count() or 1)))
        threads = torch.get_num_threads()
        started = time.perf_counter()
        load = os.getloadavg()[0]
        digits = data.digits()
        rows, straight, minima = [], [], []
        loads = [load]

        def log(row: dict[str, Any]) -> None:
            loads.append(os.getloadavg()[0])
            print(f"[{time.perf_counter() - started:6.0f}s] seed {row['seed']} {row['method']:18} "
                  f"x{row['multiple']:<4g} saddle {row['saddle_loss']:.4f} cost {row['cost']:.3g}"
                  f" ({row['seconds']:.0f} s)",
                  file=sys.stderr, flush=True)

        for seed in range(args.seeds) if args.seed is None else [args.seed]:
            problem = make_problem(seed, digits)
            minima.append({"seed": seed, "train_losses": [round(v, 5) for v in problem.losses]})
            alignments = {"both": (False, True), "none": (False,), "aligned": (True,)}[args.alignment]
            for line, aligned in (("linear", False), ("aligned linear", True)):
                start, end = problem.ends(aligned)
                if aligned in alignments:
                    straight.append({"seed": seed, "line": line,
                                     **path_figures(problem, linear_path(start, end, STRAIGHT_POINTS))})
            rows += frontier_rows(problem, multiples, args.autoneb_scale, curves, log, alignments, converge)
        seconds = time.perf_counter() - started
        load_end = os.getloadavg()[0]

    summary = table(rows)
    out = {
        "what": "saddle train loss and largest test error of each method at matched total cost, digits MLP pairs",
        "cost_convention": f"per-sample passes from the run's cost account: forward 1, backward {BACKWARD}; "
                           "steps + dense evaluation (straight segment included) + BatchNorm recalibration",
        "reference": reference,
        "alignment": "the higher-loss minimum of each pair permuted to match the lower (weight matching)",
        "autoneb_matching": f"steps calibrated by secant, up to {TRIES} runs, until within {TOLERANCE:.0%} "
                            "of the target, else the closest run; 'spent' is cost / 1x as spent",
        "converge": None if converge is None else
        f"autoneb-converge: AutoNEB's schedule at each multiple with --converge {converge[0]}:{converge[1]}",
        "curves": {kind: base.to_dict() for kind, base in curves.items()},
        "seeds": args.seeds,
        "multiples": multiples,
        "minima": minima,
        "straight": straight,
        "summary": summary,
        "converge_saving": converge_saving(rows),
        "rows": rows,
        "seconds": round(seconds, 1),
        "load_average_at_start": round(load, 2),
        "load_average_at_end": round(load_end, 2),
        "load_average": {"min": round(min(loads), 2), "max": round(max(loads), 2)},
        "threads": threads,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    if args.seed is None:
        figure(summary, straight, args.figure)
    print(json.dumps({"out": str(args.out), "figure": str(args.figure), "seconds": out["seconds"],
                      "saddle_median": {f"{s['method']} x{s['multiple']:g}": s["saddle_loss"]["median"]
                                        for s in summary}}))


if __name__ == "__main__":
    main()

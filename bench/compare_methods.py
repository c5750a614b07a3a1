"""AutoNEB, Bezier curves, polygonal chains and straight lines (before and after
weight matching) between the same digits minima.

Trains ``--minima`` MLPs (64-32-10, the digits demo's network and recipe, one seed
each) and, for every pair, reports the saddle's train loss (the highest loss along
the path, every point evaluated on the whole training set) and the largest test
error along the path:

- ``linear``: the straight segment between the two minima;
- ``aligned``: the straight segment after permuting the second network's hidden
  units to match the first (weight matching: no data, no gradients);
- ``bezier`` / ``polychain``: the curve's bend trained for ``--curve-budget``
  gradient evaluations (one minibatch of 128 per point of the curve);
- ``autoneb``: the paper's schedule at ``--autoneb-scale`` of its steps, as the
  digits demo runs it (the gradient evaluations it spent are counted).

Costs are gradient evaluations (minibatch gradients at one point) and seconds.
Prints one JSON line.  python bench/compare_methods.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the product's processes run (sessions.processes.spawn)

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.alignment.weight_matching import align  # noqa: E402
from engine.paths.curves import fit_curve  # noqa: E402
from engine.paths.curve_schedule import CurveSchedule  # noqa: E402
from engine.energy.network import NetworkEnergy  # noqa: E402
from engine.paths.autoneb import connect  # noqa: E402
from engine.paths.run import seed_for_pair  # noqa: E402
from engine.band.geometry import dense_points, linear_path  # noqa: E402
from engine.paths.schedule import load_schedule  # noqa: E402
from engine.networks import data, models  # noqa: E402
from engine.networks.training import RECIPES, train  # noqa: E402

POINTS = 61  # evaluation points of a straight segment, as of a curve


class Counted:
    """An energy that counts the gradient evaluations asked of it (one per row)."""

    def __init__(self, energy: NetworkEnergy):
        self.energy = energy
        self.dim = energy.dim
        self.gradients = 0

    def __call__(self, pivots, generator=None, batch_size=None):
        self.gradients += pivots.shape[0]
        return self.energy(pivots, generator=generator, batch_size=batch_size)

    def evaluate(self, points):
        return self.energy.evaluate(points)


def _path_figures(energy: NetworkEnergy, points: torch.Tensor, test: data.DigitsSplit) -> dict:
    losses = energy.evaluate(points)
    _, errors = energy.metrics(points, test.inputs, test.targets)
    return {"saddle_loss": round(float(losses.max()), 5), "max_test_error": round(float(errors.max()), 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minima", type=int, default=3)
    parser.add_argument("--curve-budget", type=int, default=4000, help="gradient evaluations per curve")
    parser.add_argument("--curve-lr", type=float, default=0.05, help="the bend's learning rate (SGD, momentum 0.9)")
    parser.add_argument("--autoneb-scale", type=float, default=0.05, help="fraction of the paper schedule's steps")
    parser.add_argument("--no-autoneb", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks that the script runs")
    args = parser.parse_args()
    if args.quick:
        args.curve_budget, args.autoneb_scale = 400, 0.005
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    digits = data.digits()
    train_x, train_y = digits.train.inputs, digits.train.targets
    minima = []
    started = time.perf_counter()
    for i in range(args.minima):
        torch.manual_seed(i)
        net = models.mlp()
        minima.append(train(net, train_x, train_y, recipe=RECIPES["digits"], seed=i).parameters)
    training_seconds = time.perf_counter() - started
    model = models.mlp()
    energy = NetworkEnergy(model, train_x, train_y, batch_size=128, strategy="loop")
    minimum_losses = [float(v) for v in energy.evaluate(torch.stack(minima))]

    curves = {kind: CurveSchedule(kind=kind, points=8, lr=args.curve_lr).with_budget(args.curve_budget)
              for kind in ("bezier", "polychain")}
    autoneb = load_schedule("paper").scaled(args.autoneb_scale).replace_cycles(batch_size=128)
    pairs = []
    for a in range(args.minima):
        for b in range(a + 1, args.minima):
            row: dict = {"pair": [a, b]}
            row["linear"] = _path_figures(energy, linear_path(minima[a], minima[b], POINTS), digits.test)
            started = time.perf_counter()
            aligned = align(model, minima[a], minima[b])
            seconds = time.perf_counter() - started
            row["aligned"] = {
                **_path_figures(energy, linear_path(minima[a], aligned.params, POINTS), digits.test),
                "distance_before": round(aligned.distance_before, 3),
                "distance_after": round(aligned.distance_after, 3),
                "seconds": round(seconds, 2),
            }
            for kind, schedule in curves.items():
                counted = Counted(energy)
                started = time.perf_counter()
                result = fit_curve(counted, minima[a], minima[b], schedule, pair=(a, b), seed=seed_for_pair(0, (a, b)))
                seconds = time.perf_counter() - started
                figures = _path_figures(energy, result.pivots, digits.test)
                assert abs(figures["saddle_loss"] - result.saddle_energy) < 1e-4
                row[kind] = {**figures, "gradient_evaluations": counted.gradients, "seconds": round(seconds, 1)}
            if not args.no_autoneb:
                counted = Counted(energy)
                started = time.perf_counter()
                result = connect(counted, minima[a], minima[b], autoneb, pair=(a, b), seed=seed_for_pair(0, (a, b)))
                seconds = time.perf_counter() - started
                points = dense_points(result.pivots, autoneb.band.dense_points)
                row["autoneb"] = {**_path_figures(energy, points, digits.test),
                                  "gradient_evaluations": counted.gradients, "seconds": round(seconds, 1)}
            pairs.append(row)

    methods = [m for m in ("linear", "aligned", "bezier", "polychain", "autoneb") if m in pairs[0]]
    mean = {m: round(sum(p[m]["saddle_loss"] for p in pairs) / len(pairs), 5) for m in methods}
    print(json.dumps({
        "minima": args.minima,
        "minimum_train_losses": [round(v, 5) for v in minimum_losses],
        "training_seconds": round(training_seconds, 1),
        "curve_schedule": curves["bezier"].to_dict() | {"kind": "bezier|polychain"},
        "autoneb_schedule": f"paper x {args.autoneb_scale}, batch 128",
        "mean_saddle_loss": mean,
        "aligned_over_linear": round(mean["aligned"] / mean["linear"], 3),
        "pairs": pairs,
    }))


if __name__ == "__main__":
    main()

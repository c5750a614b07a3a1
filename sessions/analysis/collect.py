"""Everything a report says, gathered from one session folder: the config, the
event log (times, devices) and the finished paths' states (results/paths/),
with the minima and saddles evaluated again on the train and test sets.

Whatever the session's method (AutoNEB, a Bezier curve, a polygonal chain) and
whether it aligned its minima, every path is set beside two straight lines: the
segment between the minima as their files hold them, and the segment between
the same minima aligned as ``--align`` aligns them (every minimum's hidden units
permuted by weight matching to match the lowest one, by the sessions' own code,
``sessions.problem.build.AlignedBuilt``), so the aligned line of a pair is the one an
aligned session's path sets out from. ``comparison`` puts several reports over
the same minima side by side, pair by pair and method by method.

A running session is reported as far as it has got: its finished paths only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


class ReportError(Exception):
    """A report that cannot be made; the message is one line: what is wrong and what to do."""


@dataclass(frozen=True)
class ReportOptions:
    """How much analysis the report does (the defaults keep it cheap)."""

    device: str = "cpu"
    hessian_k: int = 3  # extreme eigenvalues at each end of the spectrum; 0: no Hessian
    hessian_batch: int = 512  # training samples of the fixed evaluation batch (networks)
    hessian_dense_limit: int = 3000  # up to this many parameters: the whole spectrum (near-zero count)
    near_zero_tolerance: float = 1e-3  # relative to max |eigenvalue|
    slices: int = 1  # MST paths with a 2-D slice, highest saddle first (networks)
    slice_grid: int = 15  # grid points per side of a network's slice
    surface_grid: int = 81  # grid points per side of a surface's picture
    ensemble_k: int = 5  # networks along each MST path in its ensemble; 0: none
    saddle_weights: bool = False  # the MST saddles' networks as state dicts (networks)
    path_test: str = "mst"  # which paths are evaluated on the test set all along: "mst" or "all"
    line_points: int = 41  # evenly spaced points of each straight line (before and after alignment)

    def problems(self) -> list[str]:
        found = []
        for name in ("hessian_k", "slices", "ensemble_k"):
            if getattr(self, name) < 0:
                found.append(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        for name in ("hessian_batch", "slice_grid", "surface_grid"):
            if getattr(self, name) < 2:
                found.append(f"--{name.replace('_', '-')} must be at least 2, got {getattr(self, name)}")
        if self.path_test not in ("mst", "all"):
            found.append(f"path_test must be mst or all, got {self.path_test!r}")
        if self.line_points < 3:
            found.append(f"line_points must be at least 3, got {self.line_points}")
        if self.ensemble_k == 1:
            found.append("--ensemble-k must be 0 (no ensembles) or at least 2 (the two ends)")
        return found


@dataclass
class Report:
    """The JSON document and the arrays the figures need beyond it."""

    document: dict[str, Any]
    curves: dict[int, list[float]] = field(default_factory=dict)  # minimum -> training-loss curve (sidecar)
    curve_every: dict[int, int] = field(default_factory=dict)
    weights: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)  # name -> (state, about)


def _metric(loss: float | None, error: float | None, split: str, bn: bool) -> dict[str, Any]:
    return {"loss": loss, "error": error, "split": split, "bn_recalibrated": bn}


def average(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None and math.isfinite(v)]
    return sum(known) / len(known) if known and len(known) == len(values) else None


class _Evaluator:
    """Train and test metrics of points, for a surface or a network."""

    def __init__(self, config: Any, built: Any):
        self.network = config.problem.kind == "network"
        self.energy = built.energy
        self.bn = False
        if self.network:
            import torch

            data = built.data  # loaded once, by build, for the energy and for these metrics
            self.train, self.test = data["train"], data["test"]
            self.prepare = data["prepare"]
            self.model = built.model
            self.bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.model.modules())
            self.classification = config.problem.loss == "cross_entropy"

    def metrics(self, points: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any] | None]]:
        """(train metrics, test metrics) of points (M, D), one dict each."""
        if not self.network:
            losses = [float(v) for v in self.energy.evaluate(points)]
            return [_metric(v, None, "train", False) for v in losses], [None] * len(losses)
        out = []
        for split, (x, y) in (("train", self.train), ("test", self.test)):
            losses, errors = self.energy.metrics(points, x, y)
            out.append([
                _metric(float(l), float(e) if math.isfinite(float(e)) else None, split, self.bn)
                for l, e in zip(losses, errors)
            ])
        return out[0], out[1]

    def test_losses(self, points: Any) -> list[float] | None:
        if not self.network:
            return None
        losses, _ = self.energy.metrics(points, *self.test)
        return [float(v) for v in losses]

    def test_metrics(self, points: Any) -> tuple[list[float], list[float | None]] | None:
        """(test losses, test errors) of points (M, D); None for a surface."""
        if not self.network:
            return None
        losses, errors = self.energy.metrics(points, *self.test)
        return [float(v) for v in losses], [float(e) if math.isfinite(float(e)) else None for e in errors]


def _largest(values: list[float | None] | None) -> float | None:
    known = [v for v in values or [] if v is not None]
    return max(known) if known else None


def _straight(evaluator: _Evaluator, start: Any, end: Any, count: int) -> dict[str, Any]:
    """The straight segment from ``start`` to ``end`` at ``count`` evenly spaced points:
    its saddle (highest train loss) and its largest test error."""
    from engine.band.geometry import linear_path

    train, test = evaluator.metrics(linear_path(start, end, count))
    losses = [m["loss"] for m in train]
    top = max(range(count), key=lambda i: losses[i])
    return {
        "saddle": losses[top],
        "saddle_position": top / (count - 1),
        "max_test_error": _largest([None if m is None else m["error"] for m in test]),
        "losses": losses,
        "split": "train",
        "bn_recalibrated": evaluator.bn,
    }


ALIGNMENT_RULE = ("every minimum's hidden units permuted by weight matching to match the lowest minimum "
                  "(train loss); the files are unchanged")
PAIRWISE_RULE = ("each pair's second minimum's hidden units permuted by weight matching to match its first, "
                 "pair by pair; the files are unchanged")


def _aligned_minima(config: Any, built: Any) -> tuple[Any, dict[str, Any] | None]:
    """The straight lines' aligned ends as the session's alignment makes them (a function
    of a pair: its two ends, each (D,)), and how they were aligned: an --align-pairwise
    session's pairs aligned one by one; every other session's minima aligned to the lowest,
    as --align connects them (the session's own if it aligned them, else the same alignment
    done here by the same code). (None, None) for a surface; (None, refusal) for a network
    weight matching cannot analyse."""
    if config.problem.kind != "network":
        return None, None
    from sessions.disk.folder import SessionError
    from sessions.problem.build import AlignedBuilt, PairwiseBuilt

    if config.align and config.alignment == "pairwise":
        pairwise = built if isinstance(built, PairwiseBuilt) else PairwiseBuilt(built, seed=config.seed)
        return pairwise.ends, {"reference": None, "mode": "pairwise", "rule": PAIRWISE_RULE}
    aligned = built if isinstance(built, AlignedBuilt) else AlignedBuilt(built, seed=config.seed)
    try:
        minima = aligned.minima  # (M, D)
    except SessionError as error:  # a layer weight matching cannot analyse: the report says why
        return None, {"reference": None, "refused": str(error).removeprefix("--align: ")}
    return (lambda pair: (minima[pair[0]], minima[pair[1]])), {
        "reference": aligned.reference, "mode": "lowest", "rule": ALIGNMENT_RULE}


def _lines(evaluator: _Evaluator, originals: Any, aligned: Any, alignment: dict[str, Any] | None,
           pair: tuple[int, int], count: int) -> dict[str, Any]:
    """The two straight lines of a pair: between the minima as their files hold them,
    and between the same minima aligned as ``_aligned_minima`` gives them."""
    a, b = pair
    lines: dict[str, Any] = {"points": count, "straight": _straight(evaluator, originals[a], originals[b], count),
                             "aligned": None}
    if aligned is not None:
        start, end = aligned(pair)
        lines["aligned"] = {
            **_straight(evaluator, start, end, count),
            "reference": alignment["reference"] if alignment else None,
            "mode": alignment.get("mode") if alignment else None,
            "distance_before": (originals[a].double() - originals[b].double()).norm().item(),
            "distance_after": (start.double() - end.double()).norm().item(),
        }
    elif alignment is not None and alignment.get("refused"):
        lines["aligned_refused"] = alignment["refused"]
    return lines


def _mst(energies: list[float], saddles: dict[tuple[int, int], float]) -> list[tuple[int, int, float]]:
    """The MST of the finished paths, as the session's landscape builds it: (a, b, saddle), sorted."""
    import networkx as nx

    from engine.landscape.graph import minimum_spanning_tree

    graph = nx.Graph()
    graph.add_nodes_from(range(len(energies)))
    graph.add_edges_from((a, b, {"saddle": s}) for (a, b), s in saddles.items())
    return [(a, b, s) for (a, b), s in sorted(minimum_spanning_tree(graph, energies).items())]


def _method_facts(config: Any, schedule: Any, run_schedule: Any, built: Any) -> dict[str, Any]:
    """How the session connected its minima: the method, the curve's schedule and
    budget (derived from the AutoNEB schedule), and the alignment it did first."""
    from engine.paths.registry import CURVE_POINTS, autoneb_budget

    facts: dict[str, Any] = {"method": config.method, "align": config.align, "curve": None, "alignment": None}
    if config.method != "autoneb":
        facts["curve"] = {
            **run_schedule.to_dict(),
            "gradient_evaluations": run_schedule.gradient_evaluations,
            "budget_rule": f"about AutoNEB's gradient evaluations under schedule {schedule.name} with the band "
                           f"at its first size: {schedule.band.initial_pivots + 2} pivots x {schedule.total_steps} steps"
                           + (f" x {schedule.band.restarts} restarts" if schedule.band.restarts > 1 else "")
                           + f" = {autoneb_budget(schedule)}",
        }
    if config.align and config.alignment == "pairwise":
        facts["alignment"] = {
            "mode": "pairwise",
            "reference": None,
            "rule": PAIRWISE_RULE,
            "distances": [{"pair": list(pair), "before": before, "after": after}
                          for pair, (before, after) in sorted(built.distances.items())],
        }
    elif config.align:
        facts["alignment"] = {
            "mode": "lowest",
            "reference": built.reference,
            "rule": ALIGNMENT_RULE,
            "distances": [{"minimum": i, "before": before, "after": after}
                          for i, (before, after) in enumerate(built.distances)],
        }
    return facts


def _bounds(count: int, mst: list[tuple[int, int, float]]) -> list[list[float | None]]:
    """B(a, b), the landscape's ultrametric bound (None: not connected yet; 0 on the diagonal)."""
    from engine.landscape.graph import tree_bound

    tree = {(a, b): s for a, b, s in mst}
    bounds: list[list[float | None]] = [[None] * count for _ in range(count)]
    for a in range(count):
        bounds[a][a] = 0.0
        for b in range(a + 1, count):
            value = tree_bound(tree, a, b)
            bounds[a][b] = bounds[b][a] = None if value == math.inf else value
    return bounds


def first_passage(curve: list[float], every: int, threshold: float) -> int | None:
    """The first training step whose (recorded) loss is below ``threshold``; None if never."""
    for i, loss in enumerate(curve):
        if loss < threshold:
            return i * every
    return None


def collect(folder: Any, options: ReportOptions) -> Report:
    """Gather the report of the session in ``folder`` (a sessions.disk.folder.SessionFolder)."""
    from sessions.view import read_view

    config, built, results = _finished_paths(folder, options)
    view = read_view(folder)
    evaluator = _Evaluator(config, built)
    network = evaluator.network
    minima, minima_train, minima_test, mst = _minima_and_mst(built, evaluator, results)
    report = Report(document={})
    minima_rows = _minima_rows(config, built, minima, minima_train, minima_test, network, report)
    lines = _aligned_minima(config, built)  # the straight lines' aligned ends, and how they were aligned
    path_rows, saddle_metrics = _path_rows(config, built, evaluator, results, mst, lines, options)
    timing = _timing(view, path_rows)
    table = _table1(config, results, mst, minima_train, minima_test, saddle_metrics, evaluator, minima.shape[0])
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "session": _session_facts(folder, config, built, view, evaluator, minima, len(results), lines[1]),
        "minima": minima_rows,
        "paths": path_rows,
        "mst": [{"a": a, "b": b, "saddle_energy": s} for a, b, s in mst],
        "bounds": _bounds(minima.shape[0], mst),
        "table1": table,
        "first_passage": _first_passages(report, table["train_loss_saddles"]),
        "timing": timing,
        "analysis": {"device": options.device, "options": {
            "hessian_k": options.hessian_k, "hessian_batch": options.hessian_batch,
            "hessian_dense_limit": options.hessian_dense_limit, "near_zero_tolerance": options.near_zero_tolerance,
            "slices": options.slices, "slice_grid": options.slice_grid, "surface_grid": options.surface_grid,
            "ensemble_k": options.ensemble_k,
        }},
        # a (model, batch) loss runs the model itself, which the Hessian's functional network cannot
        "hessian": _hessian(evaluator, config, built, results, mst, options)
        if options.hessian_k and not _runs_the_model(built) else None,
        "slices": _slices(evaluator, built, results, mst, options),
        "ensembles": _ensembles(evaluator, results, mst, options),
    }
    report.document = document
    if options.saddle_weights and network:
        for a, b, _ in mst:
            train, test = saddle_metrics[(a, b)]
            report.weights[f"saddle-{a}-{b}"] = (built.energy.network_state(results[(a, b)].saddle_point), {
                "session": folder.id, "pair": [a, b], "saddle_position": results[(a, b)].saddle_position,
                "model": config.problem.model, "model_args": config.problem.model_args, "data": config.problem.data,
                "train": train, "test": test, "bn_recalibrated": evaluator.bn,
            })
    return report


def table1(folder: Any, options: ReportOptions) -> dict[str, Any]:
    """The paper's Table 1 row of the session in ``folder``, as ``collect`` puts it in the
    report, number for number, without the rest of the report: the minima and the MST
    saddles evaluated on the train and test sets, no straight lines, profiles or Hessians
    (what a finished session prints, in a fraction of a report's time)."""
    return table1_of(*_finished_paths(folder, options))


def table1_of(config: Any, built: Any, results: dict[tuple[int, int], Any]) -> dict[str, Any]:
    """Table 1's row from a session's config, its problem as built and its finished
    connections' results, by pair: where they are at hand (the runner, as it finishes)."""
    evaluator = _Evaluator(config, built)
    minima, minima_train, minima_test, mst = _minima_and_mst(built, evaluator, results)
    saddle_metrics = {(a, b): _saddle_metrics(evaluator, results[(a, b)])[0] for a, b, _ in mst}
    return _table1(config, results, mst, minima_train, minima_test, saddle_metrics, evaluator, minima.shape[0])


def _minima_and_mst(built: Any, evaluator: _Evaluator, results: dict) -> tuple[Any, list, list, list]:
    """The minima (M, D; aligned to the lowest for an --align session), their train and
    test metrics, and the MST of the finished paths as the session's landscape builds it."""
    from sessions.disk.folder import SessionError

    try:
        minima = built.minima
    except SessionError as error:
        raise ReportError(str(error)) from None
    train, test = evaluator.metrics(minima)
    mst = _mst([m["loss"] for m in train], {pair: r.saddle_energy for pair, r in results.items()})
    return minima, train, test, mst


def _linear_point(result: Any) -> Any:
    """The straight segment's highest point between the path's two ends (D,)."""
    start, end = result.pivots[0], result.pivots[-1]
    return start + result.linear.saddle_position * (end - start)


def _saddle_metrics(evaluator: _Evaluator,
                    result: Any) -> tuple[tuple[dict[str, Any], Any], tuple[dict[str, Any], Any]]:
    """((train, test) metrics at the path's saddle, the same at the straight segment's
    highest point), the two points evaluated together as every report does."""
    import torch

    linear_point = _linear_point(result).to(result.saddle_point.dtype)
    train, test = evaluator.metrics(torch.stack([result.saddle_point, linear_point]))
    return (train[0], test[0]), (train[1], test[1])


def _finished_paths(folder: Any, options: ReportOptions) -> tuple[Any, Any, dict[tuple[int, int], Any]]:
    """The session's config, its problem built again, and the result of every finished pair."""
    from engine.paths.registry import run_from_state
    from sessions.disk.folder import SessionError
    from sessions.disk.statepack import unpack_state
    from sessions.problem.build import build
    from sessions.problem.trust import runnable_config

    files = sorted((folder.results_path / "paths").glob("*.safetensors"))
    if not files:
        raise ReportError(
            f"session {folder.id} has no finished path yet: report it once its first pair is done "
            f"(see nebtui sessions show {folder.id})"
        )
    try:
        config = runnable_config(folder)
        built = build(config, options.device)
    except (SessionError, ValueError) as error:
        raise ReportError(str(error)) from None
    run_schedule = config.run_schedule()
    results = {}
    for path in files:
        try:
            state = unpack_state(path.read_bytes())
            connection = run_from_state(built.energy, run_schedule, state)
        except Exception as error:  # noqa: BLE001 - a damaged file of any kind: one line
            raise ReportError(f"{path} cannot be read ({type(error).__name__}: {error}): the session's results are damaged") from None
        assert connection.result is not None
        results[connection.pair] = connection.result
    return config, built, results


def _minima_rows(config: Any, built: Any, minima: Any, train: list, test: list, network: bool,
                 report: Report) -> list[dict[str, Any]]:
    """One row per minimum; the training curves their sidecars keep go into ``report``."""
    import json

    rows = []
    for i in range(minima.shape[0]):
        row: dict[str, Any] = {"id": i, "name": built.names[i], "train": train[i], "test": test[i]}
        if not network:
            row["position"] = minima[i].tolist()
        rows.append(row)
        if network:
            sidecar = Path(config.problem.minima[i]["path"]).with_suffix(".json")
            if sidecar.exists():
                try:
                    curve = json.loads(sidecar.read_text()).get("curve") or {}
                except ValueError:
                    curve = {}
                if curve.get("loss"):
                    report.curves[i] = [float(v) for v in curve["loss"]]
                    report.curve_every[i] = int(curve.get("every", 1))
    return rows


def _path_rows(config: Any, built: Any, evaluator: _Evaluator, results: dict, mst: list, lines: tuple,
               options: ReportOptions) -> tuple[list[dict[str, Any]], dict[tuple[int, int], tuple]]:
    """One row per finished path (its saddle, profiles, cost, straight lines, history), and
    the train and test metrics at each saddle."""
    from engine.band.geometry import dense_points, linear_path
    from engine.paths.curve_schedule import CURVE_KINDS
    from engine.paths.registry import spent_gradients
    from sessions.view import end_at_saddle

    network = evaluator.network
    run_schedule = config.run_schedule()
    between = config.schedule.band.dense_points
    originals = getattr(built, "original", built.minima)  # as the files hold them
    aligned, line_alignment = lines
    in_mst = {(a, b) for a, b, _ in mst}
    path_rows = []
    saddle_metrics: dict[tuple[int, int], tuple[dict[str, Any], dict[str, Any] | None]] = {}
    for (a, b), r in sorted(results.items()):
        start, end = r.pivots[0], r.pivots[-1]
        at_saddle, at_linear = _saddle_metrics(evaluator, r)
        saddle_metrics[(a, b)] = at_saddle
        curve = config.method in CURVE_KINDS  # a curve's pivots are its evaluation points: nothing between them
        dense = r.pivots if curve else dense_points(r.pivots, between)
        tested = (a, b) in in_mst or options.path_test == "all"
        profile_metrics = evaluator.test_metrics(dense) if tested else None
        profile_test = None if profile_metrics is None else profile_metrics[0]
        linear_test = (
            evaluator.test_losses(linear_path(start, end, len(r.linear.positions))) if (a, b) in in_mst else None
        )
        saddle: dict[str, Any] = {"position": r.saddle_position, "train": at_saddle[0], "test": at_saddle[1],
                                  "at_end": end_at_saddle((a, b), r.saddle_position)}
        linear_saddle: dict[str, Any] = {"position": r.linear.saddle_position, "train": at_linear[0],
                                         "test": at_linear[1]}
        if not network:
            saddle["point"] = r.saddle_point.tolist()
            linear_saddle["point"] = _linear_point(r).tolist()
        key = f"{a}-{b}"
        path_rows.append({
            "a": a,
            "b": b,
            "in_mst": (a, b) in in_mst,
            "pivots": int(r.pivots.shape[0]),
            "saddle": saddle,
            "linear_saddle": linear_saddle,
            "profile": {
                "positions": r.profile.positions,
                "pivot_positions": r.pivot_positions,
                "train": {"losses": r.profile.losses, "split": "train", "bn_recalibrated": evaluator.bn},
                "test": None if profile_metrics is None else {
                    "losses": profile_metrics[0], "errors": profile_metrics[1], "split": "test",
                    "bn_recalibrated": evaluator.bn},
            },
            "method": config.method,
            "max_test_error": None if profile_metrics is None else _largest(profile_metrics[1]),
            # the account's counts from the saved run; its seconds and devices from the log, below
            "cost": {"gradient_evaluations": spent_gradients(r, run_schedule), "seconds": None,
                     "account": None if r.cost is None else r.cost.to_dict(timed=False)},
            "lines": _lines(evaluator, originals, aligned, line_alignment, (a, b), options.line_points),
            "linear": {
                "positions": r.linear.positions,
                "train": {"losses": r.linear.losses, "split": "train", "bn_recalibrated": evaluator.bn},
                "test": None if linear_test is None else {"losses": linear_test, "split": "test", "bn_recalibrated": evaluator.bn},
            },
            "history": [
                {
                    "restart": h.restart,
                    "cycle": h.cycle,
                    "pivots": h.pivots,
                    "saddle_energy": h.saddle_energy,
                    "saddle_position": h.saddle_position,
                    "positions": h.profile.positions,
                    "losses": h.profile.losses,
                    "pivot_positions": h.pivot_positions,
                    "pivot_losses": h.pivot_losses,
                    "split": "train",
                    "bn_recalibrated": evaluator.bn,
                }
                for h in r.history
            ],
            "restart_saddles": r.restart_saddles,
            "best_restart": r.best_restart,
            "seconds": None,
        })

    return path_rows, saddle_metrics


def _timing(view: Any, path_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Devices and times, from the log's own time stamps only; each path row gets its seconds."""
    timing = {
        "devices": view.devices_used,
        "started": view.started,
        "last_event": view.last_time,
        "seconds": view.last_time - view.started if view.started is not None and view.last_time is not None else None,
        "pairs": {f"{a}-{b}": {"started": start, "finished": end, "seconds": end - start}
                  for (a, b), (start, end) in view.pair_times().items()},
    }
    for row in path_rows:
        span = timing["pairs"].get(f"{row['a']}-{row['b']}")
        row["seconds"] = row["cost"]["seconds"] = span["seconds"] if span else None
        if row["cost"]["account"] is not None:
            row["cost"]["account"].update(seconds=row["seconds"], devices=list(view.devices_used))
    return timing


def _table1(config: Any, results: dict, mst: list, minima_train: list, minima_test: list,
            saddle_metrics: dict, evaluator: _Evaluator, count: int) -> dict[str, Any]:
    """The paper's Table 1 row: minima and MST saddles, train and test."""
    from sessions.view import end_at_saddle

    def mean_of(what: str, rows: list[dict[str, Any] | None]) -> float | None:
        return average([None if m is None else m[what] for m in rows])

    # a pair whose path peaks at one of its minima has no barrier: Table 1 claims none for it
    at_end = [(a, b) for a, b, _ in mst if end_at_saddle((a, b), results[(a, b)].saddle_position) is not None]
    claimed = [(a, b) for a, b, _ in mst if (a, b) not in at_end]
    saddle_train = [saddle_metrics[pair][0] for pair in claimed]
    saddle_test = [saddle_metrics[pair][1] for pair in claimed]
    train_min, train_saddle = mean_of("loss", minima_train), mean_of("loss", saddle_train)
    test_err_min, test_err_saddle = mean_of("error", minima_test), mean_of("error", saddle_test)
    return {
        "train_loss_minima": train_min,
        "train_loss_saddles": train_saddle,
        "factor": train_saddle / train_min if train_min and train_saddle is not None and train_min > 0 else None,
        "test_loss_minima": mean_of("loss", minima_test),
        "test_loss_saddles": mean_of("loss", saddle_test),
        "test_error_minima": test_err_min,
        "test_error_saddles": test_err_saddle,
        "test_error_difference": (
            test_err_saddle - test_err_min if test_err_min is not None and test_err_saddle is not None else None
        ),
        "minima": count,
        "saddles": len(claimed),
        "saddles_at_an_end": [list(pair) for pair in at_end],
        "bn_recalibrated": evaluator.bn,
        "splits": {"train_loss": "train", "test_loss": "test", "test_error": "test"},
        "no_error_rate": no_error_rate(config.problem.loss) if evaluator.network else None,
    }


def _first_passages(report: Report, threshold: float | None) -> list[dict[str, Any]]:
    """Fig. 7: the training step at which each minimum's training curve first fell below the
    mean MST saddle."""
    if threshold is None:
        return []
    return [{"minimum": i, "threshold": threshold, "step": first_passage(curve, report.curve_every[i], threshold),
             "split": "train (minibatch losses recorded while training)"}
            for i, curve in sorted(report.curves.items())]


def _session_facts(folder: Any, config: Any, built: Any, view: Any, evaluator: _Evaluator, minima: Any,
                   finished: int, line_alignment: dict[str, Any] | None) -> dict[str, Any]:
    """What the session is: its problem, schedule, method and how its lines were aligned."""
    network = evaluator.network
    schedule = config.schedule
    return {
        "id": folder.id,
        "lifecycle": view.lifecycle,
        "finished_reason": view.finished_reason,
        "problem": config.problem.surface if not network else config.problem.model,
        "kind": config.problem.kind,
        "data": config.problem.data,
        "loss": config.problem.loss if network else "surface energy",
        "no_error_rate": no_error_rate(config.problem.loss) if network else None,
        "schedule": schedule.name,
        "cycles": len(schedule.cycles),
        "parameters": int(minima.shape[1]),
        "pairs_finished": finished,
        "bn_recalibrated": evaluator.bn,
        **_method_facts(config, schedule, config.run_schedule(), built),
        "line_alignment": line_alignment,  # how the aligned straight lines' minima were aligned
    }


def no_error_rate(loss: str) -> str | None:
    """What a report says in place of error rates where the loss has none (all but
    cross_entropy and bce); None where it has them."""
    return None if loss in ("cross_entropy", "bce") else f"no error rate: the loss is {loss}"


def _runs_the_model(built: Any) -> bool:
    from engine.networks.loss import takes_model

    return takes_model(getattr(built.energy, "loss", None))


def _fixed_batch(evaluator: _Evaluator, size: int) -> tuple[Any, Any]:
    import torch

    x, y = evaluator.train
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[:size]
    return x[order.to(x.device)], y[order.to(y.device)]


def _hessian(evaluator: _Evaluator, config: Any, built: Any, results: dict, mst: list, options: ReportOptions) -> dict[str, Any]:
    from engine.analysis.hessian import hessian_spectrum, network_loss, path_curvatures, surface_loss

    if evaluator.network:
        x, y = _fixed_batch(evaluator, options.hessian_batch)
        loss = network_loss(evaluator.model.to(x.device), x, y, built.energy.loss, evaluator.prepare)
        batch = {"split": "train", "samples": int(x.shape[0]), "batchnorm": "batch statistics of this batch",
                 "bn_recalibrated": False}
    else:
        loss = surface_loss(built.energy)
        batch = {"split": "train", "samples": None, "batchnorm": None, "bn_recalibrated": False}

    def spectrum(point: Any) -> dict[str, Any]:
        s = hessian_spectrum(loss, point.double(), options.hessian_k, dense_limit=options.hessian_dense_limit,
                             tolerance=options.near_zero_tolerance)
        return {"largest": s.largest, "smallest": s.smallest, "near_zero": s.near_zero, "negative": s.negative,
                "method": s.method}

    points = [{"kind": "minimum", "id": i, "pair": None, **spectrum(m)} for i, m in enumerate(built.minima)]
    points += [{"kind": "saddle", "id": None, "pair": [a, b], **spectrum(results[(a, b)].saddle_point)} for a, b, _ in mst]
    curvature = []
    for a, b, _ in mst:
        r = results[(a, b)]
        curvature.append({"pair": [a, b], "positions": r.pivot_positions, "curvature": path_curvatures(loss, r.pivots.double())})
    return {
        "batch": batch,
        "k": options.hessian_k,
        "near_zero_rule": f"|eigenvalue| <= {options.near_zero_tolerance:g} x max |eigenvalue|; negative: below "
                          f"-{options.near_zero_tolerance:g} x max |eigenvalue| (whole spectrum only)",
        "dtype": "float64",
        "points": points,
        "tangent_curvature": curvature,
    }


def _slices(evaluator: _Evaluator, built: Any, results: dict, mst: list, options: ReportOptions) -> list[dict[str, Any]]:
    import torch

    from engine.analysis.slice import coordinate_plane, evaluate_slice, grid_around, plane_through
    from engine.band.geometry import dense_points

    if not evaluator.network:
        (x0, x1), (y0, y1) = built.energy.window
        xs = torch.linspace(x0, x1, options.surface_grid, dtype=torch.float64)
        ys = torch.linspace(y0, y1, options.surface_grid, dtype=torch.float64)
        grid = evaluate_slice(built.energy, coordinate_plane(), xs, ys)
        return [{
            "pair": None, "plane": "the surface itself", "split": "train", "bn_recalibrated": False,
            "xs": grid.xs.tolist(), "ys": grid.ys.tolist(), "losses": grid.losses.tolist(),
            "minima": built.minima.tolist(),
            "paths": [{"pair": [a, b], "points": dense_points(results[(a, b)].pivots, 9).tolist(),
                       "pivots": results[(a, b)].pivots.tolist()} for a, b, _ in mst],
        }]
    out = []
    for a, b, _ in sorted(mst, key=lambda e: (-e[2], e[0], e[1]))[: options.slices]:
        r = results[(a, b)]
        plane = plane_through(r.pivots[0], r.pivots[-1], r.pivots.mean(dim=0))
        path = plane.project(dense_points(r.pivots, 9))  # (M, 2)
        pivots = plane.project(r.pivots)  # (N, 2)
        xs, ys = grid_around(path, options.slice_grid)
        grid = evaluate_slice(built.energy, plane, xs, ys)
        out.append({
            "pair": [a, b],
            "plane": "through minimum a (origin), minimum b (x axis) and the mean of the pivots",
            "split": "train", "bn_recalibrated": evaluator.bn,
            "xs": grid.xs.tolist(), "ys": grid.ys.tolist(), "losses": grid.losses.tolist(),
            "minima": plane.project(torch.stack([r.pivots[0], r.pivots[-1]])).tolist(),
            "paths": [{"pair": [a, b], "points": path.tolist(), "pivots": pivots.tolist()}],
        })
    return out


def _ensembles(evaluator: _Evaluator, results: dict, mst: list, options: ReportOptions) -> list[dict[str, Any]]:
    if not evaluator.network or not evaluator.classification or options.ensemble_k == 0:
        return []
    from engine.analysis.ensemble import Predictor, path_ensemble

    x, y = evaluator.test
    predictor = Predictor(evaluator.model, evaluator.train[0], evaluator.prepare, device=x.device)
    out = []
    for a, b, _ in mst:
        e = path_ensemble(predictor, results[(a, b)].pivots, x, y, options.ensemble_k)
        out.append({
            "pair": [a, b], "members": e.members, "positions": e.positions, "member_accuracies": e.member_accuracies,
            "path": e.path, "start": e.start, "end": e.end, "pair_ensemble": e.pair,
            "split": "test", "bn_recalibrated": evaluator.bn,
        })
    return out

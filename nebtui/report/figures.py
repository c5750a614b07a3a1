"""The report's figures as PNG bytes (matplotlib, Agg backend, no pyplot state):
the loss along each MST path per cycle (the paper's Fig. 6), the 2-D slice
(Fig. 1), the MST, a disconnectivity graph, the first passage (Fig. 7) and the
Hessian's curvature."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nebtui.report.writers import hessian_methods  # noqa: E402

DPI = 110


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _energy_word(document: dict[str, Any]) -> str:
    return "energy" if document["session"]["kind"] == "surface" else "loss"


def profile_figure(document: dict[str, Any], path: dict[str, Any]) -> bytes:
    """Loss along one path: every cycle's dense profile (light to dark), the final
    profile with its pivots, and the linear segment; train, and test for networks."""
    profile, linear = path["profile"], path["linear"]
    splits = ["train"] + (["test"] if profile["test"] is not None else [])
    figure = Figure(figsize=(6.4 * len(splits), 4.2))
    history = path["history"]
    for column, split in enumerate(splits):
        axes = figure.add_subplot(1, len(splits), column + 1)
        if split == "train":
            colours = matplotlib.colormaps["viridis"]
            for i, record in enumerate(history):
                shade = colours(i / max(1, len(history) - 1))
                axes.plot(record["positions"], record["losses"], color=shade, linewidth=0.8, alpha=0.7,
                          label="cycles 1..%d (light = late)" % len(history) if i == 0 else None)
        axes.plot(linear["positions"], linear[split]["losses"], "--", color="tab:red", label="linear segment")
        method = path.get("method", "autoneb")
        axes.plot(profile["positions"], profile[split]["losses"], color="black", linewidth=1.8,
                  label={"autoneb": "AutoNEB path", "bezier": "Bezier curve", "polychain": "polygonal chain"}[method])
        if method == "autoneb":  # a curve's points are where it was evaluated, not pivots
            pivot_losses = profile[split]["losses"][:: _stride(profile)]
            axes.plot(profile["pivot_positions"], pivot_losses, "o", color="black", markersize=4, label="pivots")
        axes.set_xlabel("position along the path (fraction of arc length)")
        word = _energy_word(document)
        axes.set_ylabel(f"{split} {word}" + (" (BN recalibrated)" if profile[split]["bn_recalibrated"] else ""))
        axes.set_title(f"path {path['a']} - {path['b']}: {split} {word}")
        if document["session"]["kind"] == "network" and min(linear[split]["losses"]) > 0:
            axes.set_yscale("log")
        axes.legend(fontsize=8)
    return _png(figure)


def _stride(profile: dict[str, Any]) -> int:
    """Dense points per segment + 1: the step between pivot rows of the dense profile."""
    pivots = len(profile["pivot_positions"])
    return (len(profile["positions"]) - 1) // max(1, pivots - 1)


def slice_figure(document: dict[str, Any], slice_: dict[str, Any]) -> bytes:
    """The loss on the slice's grid as filled contours, with the paths, pivots and minima."""
    import numpy as np

    xs, ys = np.array(slice_["xs"]), np.array(slice_["ys"])
    losses = np.array(slice_["losses"])
    surface = document["session"]["kind"] == "surface"
    figure = Figure(figsize=(6.4, 5.4))
    axes = figure.add_subplot(1, 1, 1)
    if surface:
        shown = np.minimum(losses, np.percentile(losses, 80))  # the wells, not the walls
        label = "energy (clipped at its 80th percentile)"
    else:
        shown = np.log10(np.maximum(losses, 1e-12))
        label = "log10 train loss" + (" (BN recalibrated)" if slice_["bn_recalibrated"] else "")
    contours = axes.contourf(xs, ys, shown, levels=30, cmap="viridis")
    axes.contour(xs, ys, shown, levels=15, colors="white", linewidths=0.3)
    figure.colorbar(contours, ax=axes, label=label)
    for path in slice_["paths"]:
        points, pivots = np.array(path["points"]), np.array(path["pivots"])
        axes.plot(points[:, 0], points[:, 1], color="tab:red", linewidth=1.5)
        axes.plot(pivots[:, 0], pivots[:, 1], "o", color="tab:red", markersize=3)
    minima = np.array(slice_["minima"])
    axes.plot(minima[:, 0], minima[:, 1], "*", color="white", markeredgecolor="black", markersize=14)
    if surface:
        axes.set_title(f"{document['session']['problem']}: MST paths")
        axes.set_xlabel("x")
        axes.set_ylabel("y")
    else:
        a, b = slice_["pair"]
        axes.set_title(f"slice through minima {a}, {b} and the mean of the pivots")
        axes.set_xlabel(f"distance along minimum {a} -> {b}")
        axes.set_ylabel("distance towards the pivots' mean")
        axes.set_aspect("equal")
    return _png(figure)


def mst_figure(document: dict[str, Any]) -> bytes:
    """The MST of saddle energies: minima coloured by their loss, edges labelled."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(m["id"] for m in document["minima"])
    for edge in document["mst"]:
        graph.add_edge(edge["a"], edge["b"], saddle=edge["saddle_energy"])
    if document["session"]["kind"] == "surface":
        layout = {m["id"]: tuple(m["position"]) for m in document["minima"]}
    else:
        layout = nx.kamada_kawai_layout(graph) if graph.number_of_edges() else nx.circular_layout(graph)
    figure = Figure(figsize=(5.6, 4.6))
    axes = figure.add_subplot(1, 1, 1)
    values = [m["train"]["loss"] for m in document["minima"]]
    nx.draw_networkx_edges(graph, layout, ax=axes, width=2, edge_color="grey")
    nodes = nx.draw_networkx_nodes(graph, layout, ax=axes, node_color=values, cmap="viridis", node_size=500)
    nx.draw_networkx_labels(graph, layout, ax=axes, font_color="white")
    labels = {(u, v): f"{d['saddle']:.4g}" for u, v, d in graph.edges(data=True)}
    nx.draw_networkx_edge_labels(graph, layout, edge_labels=labels, ax=axes, font_size=8)
    figure.colorbar(nodes, ax=axes, label=f"train {_energy_word(document)} at the minimum")
    axes.set_title("minimum spanning tree (edge: saddle train %s)" % _energy_word(document))
    axes.set_axis_off()
    return _png(figure)


def disconnectivity_figure(document: dict[str, Any]) -> bytes:
    """Single linkage on the ultrametric (minimax saddle) bounds: each minimum a
    vertical line from its energy up to where it joins; joins at saddle energies."""
    import numpy as np
    from scipy.cluster.hierarchy import dendrogram, linkage
    from scipy.spatial.distance import squareform

    energies = [m["train"]["loss"] for m in document["minima"]]
    count = len(energies)
    bounds = document["bounds"]
    top = max((e["saddle_energy"] for e in document["mst"]), default=max(energies))
    gap = (top - min(energies)) or 1.0
    unjoined = top + 0.25 * gap  # where minima not yet connected meet (drawn dotted)
    matrix = np.array([[0.0 if i == j else (bounds[i][j] if bounds[i][j] is not None else unjoined)
                        for j in range(count)] for i in range(count)])
    # linkage needs non-negative distances: shift all heights by the same amount
    shift = min(0.0, float(matrix[~np.eye(count, dtype=bool)].min())) if count > 1 else 0.0
    tree = linkage(squareform(matrix - shift, checks=False), method="single")
    order = dendrogram(tree, no_plot=True)["leaves"]
    x_of = {leaf: float(i) for i, leaf in enumerate(order)}
    bottom = {leaf: energies[leaf] for leaf in range(count)}  # where each cluster's line starts
    figure = Figure(figsize=(max(4.8, 0.6 * count + 2), 4.6))
    axes = figure.add_subplot(1, 1, 1)
    for step, (left, right, height, _) in enumerate(tree):
        height = float(height) + shift
        style = ":" if height >= unjoined else "-"
        for node in (int(left), int(right)):
            axes.plot([x_of[node], x_of[node]], [bottom[node], height], style, color="black")
        axes.plot([x_of[int(left)], x_of[int(right)]], [height, height], style, color="black")
        merged = count + step
        x_of[merged] = (x_of[int(left)] + x_of[int(right)]) / 2
        bottom[merged] = height
    axes.plot([x_of[i] for i in range(count)], energies, "o", color="tab:blue")
    axes.set_xticks([x_of[i] for i in order], [str(i) for i in order])
    axes.set_xlabel("minimum")
    axes.set_ylabel(f"train {_energy_word(document)}")
    axes.set_title("disconnectivity graph (joins at MST saddle energies)")
    return _png(figure)


def first_passage_figure(document: dict[str, Any], curves: dict[int, list[float]], every: dict[int, int]) -> bytes:
    """Each minimum's training-loss curve and where it first falls below the mean saddle energy."""
    threshold = document["table1"]["train_loss_saddles"]
    figure = Figure(figsize=(6.4, 4.2))
    axes = figure.add_subplot(1, 1, 1)
    for passage in document["first_passage"]:
        i = passage["minimum"]
        steps = [j * every[i] for j in range(len(curves[i]))]
        line, = axes.plot(steps, curves[i], linewidth=0.9, label=f"minimum {i}")
        if passage["step"] is not None:
            axes.axvline(passage["step"], color=line.get_color(), linestyle=":", linewidth=1)
    axes.axhline(threshold, color="black", linestyle="--", label=f"mean MST saddle {threshold:.4g}")
    axes.set_yscale("log")
    axes.set_xlabel("training step")
    axes.set_ylabel("training loss (minibatch)")
    axes.set_title("first passage below the saddle energy (dotted: the step)")
    axes.legend(fontsize=8)
    return _png(figure)


def hessian_figure(document: dict[str, Any]) -> bytes:
    """Extreme eigenvalues at minima and saddles, and the curvature along each MST path's tangent."""
    hessian = document["hessian"]
    figure = Figure(figsize=(12.8, 4.2))
    figure.subplots_adjust(wspace=0.35)
    left = figure.add_subplot(1, 2, 1)
    labels = []
    for x, point in enumerate(hessian["points"]):
        colour = "tab:blue" if point["kind"] == "minimum" else "tab:red"
        values = point["largest"] + point["smallest"]
        left.plot([x] * len(values), values, "_", color=colour, markersize=14, markeredgewidth=2)
        labels.append(f"min {point['id']}" if point["kind"] == "minimum" else "saddle {}-{}".format(*point["pair"]))
    left.axhline(0.0, color="grey", linewidth=0.6)
    left.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
    left.set_yscale("symlog", linthresh=_linthresh(hessian))
    left.set_ylabel("Hessian eigenvalue")
    left.set_title(f"the {hessian['k']} largest and smallest eigenvalues (blue: minima, red: saddles)")
    right = figure.add_subplot(1, 2, 2)
    for path in hessian["tangent_curvature"]:
        right.plot(path["positions"], path["curvature"], "o-", markersize=3, label="path {}-{}".format(*path["pair"]))
    right.axhline(0.0, color="grey", linewidth=0.6)
    right.set_xlabel("position along the path (fraction of arc length)")
    right.set_ylabel("curvature along the tangent (t^T H t)")
    right.set_title("curvature along the path at its pivots")
    right.legend(fontsize=8)
    return _png(figure)


def _linthresh(hessian: dict[str, Any]) -> float:
    values = [abs(v) for p in hessian["points"] for v in p["largest"] + p["smallest"] if v != 0]
    return max(1e-6, min(values)) if values else 1.0


def all_figures(report: Any) -> dict[str, tuple[str, bytes]]:
    """File name -> (caption, PNG bytes), in the order the report shows them."""
    document = report.document
    figures: dict[str, tuple[str, bytes]] = {}
    for path in document["paths"]:
        if path["in_mst"]:
            figures[f"profile-{path['a']}-{path['b']}.png"] = (
                f"Loss along the MST path {path['a']} - {path['b']}: every cycle, the final path with its pivots, "
                "and the linear segment (cf. the paper's Fig. 6).", profile_figure(document, path))
    for slice_ in document["slices"]:
        if slice_["pair"] is None:
            name, caption = "surface.png", "The surface with the MST paths (cf. the paper's Fig. 1)."
        else:
            a, b = slice_["pair"]
            name = f"slice-{a}-{b}.png"
            caption = (f"Train loss on the plane through minima {a}, {b} and the mean of the path's pivots, "
                       "with the path projected onto it (cf. the paper's Fig. 1).")
        figures[name] = (caption, slice_figure(document, slice_))
    figures["mst.png"] = ("The minimum spanning tree of saddle energies.", mst_figure(document))
    if len(document["minima"]) > 1:
        figures["disconnectivity.png"] = (
            "Disconnectivity graph: single linkage on the minimax saddle energies (ultrametric bounds).",
            disconnectivity_figure(document))
    if document["first_passage"]:
        figures["first-passage.png"] = (
            "Training loss of each minimum and the step where it first falls below the mean MST saddle energy "
            "(cf. the paper's Fig. 7).", first_passage_figure(document, report.curves, report.curve_every))
    if document["hessian"] is not None:
        figures["hessian.png"] = (f"Hessian extreme eigenvalues, {hessian_methods(document)}, and the "
                                  "curvature along each MST path's tangent.", hessian_figure(document))
    return figures



def comparison_figure(document: dict[str, Any]) -> bytes:
    """Train loss along each pair in the MST of any session compared, one panel per pair
    titled with the sessions whose MST holds it: every method's path and the two
    straight lines."""
    rows = {(p["a"], p["b"]): p for p in document["pairs"]}
    pairs = [tuple(pair) for pair in document["mst_pairs"] if tuple(pair) in rows]
    columns = min(3, max(1, len(pairs)))
    lines = -(-max(1, len(pairs)) // columns)
    figure = Figure(figsize=(5.2 * columns, 3.8 * lines))
    colours = matplotlib.colormaps["tab10"]
    order = [s["label"] for s in document["sessions"]]
    word = "energy" if document["problem"]["kind"] == "surface" else "train loss"
    for panel, pair in enumerate(pairs):
        row = rows[pair]
        axes = figure.add_subplot(lines, columns, panel + 1)
        for name, style, caption in (("straight", "--", "straight line"), ("aligned", ":", "aligned straight line")):
            line = row["lines"][name]
            if line is not None:
                count = len(line["losses"])
                axes.plot([i / (count - 1) for i in range(count)], line["losses"], style, color="grey",
                          label=caption)
        for method in row["methods"]:
            axes.plot(method["profile"]["positions"], method["profile"]["losses"], linewidth=1.6,
                      color=colours(order.index(method["label"]) % 10), label=method["label"])
        holders = ", ".join(m["label"] for m in row["methods"] if m["in_mst"])
        axes.set_title(f"pair {pair[0]} - {pair[1]} (in the MST of {holders})", fontsize=9)
        axes.set_xlabel("position along the path (fraction of arc length)")
        axes.set_ylabel(word)
        losses = [v for m in row["methods"] for v in m["profile"]["losses"]]
        if document["problem"]["kind"] == "network" and losses and min(losses) > 0:
            axes.set_yscale("log")
        axes.legend(fontsize=7)
    return _png(figure)


def total_passes(account: dict[str, Any] | None) -> int | None:
    """All a run computed, per sample (per point on a surface), in forward passes: the
    forward and backward passes of its steps, its dense evaluation and its BatchNorm
    recalibration, a backward counted as two forwards (as bench/compare_methods.py counts).
    None for a run saved before runs kept an account."""
    if account is None:
        return None
    return sum(account[phase]["forward"] + 2 * account[phase]["backward"]
               for phase in ("steps", "evaluation", "recalibration"))


def cost_figure(document: dict[str, Any]) -> bytes:
    """Every method's pairs at what they cost: each finished pair one point, at the passes
    its run computed and the saddle it reached, one colour per session."""
    figure = Figure(figsize=(6.4, 4.4))
    axes = figure.add_subplot(1, 1, 1)
    colours = matplotlib.colormaps["tab10"]
    order = [s["label"] for s in document["sessions"]]
    shown = False
    for label in order:
        points = [(total_passes(m.get("account")), m["saddle_train_loss"])
                  for p in document["pairs"] for m in p["methods"] if m["label"] == label]
        points = [(x, y) for x, y in points if x is not None]
        if points:
            shown = True
            axes.scatter([x for x, _ in points], [y for _, y in points], s=18,
                         color=colours(order.index(label) % 10), label=f"{label} ({len(points)} pairs)")
    word = "saddle energy" if document["problem"]["kind"] == "surface" else "saddle train loss"
    unit = "points" if document["problem"]["kind"] == "surface" else "samples"
    axes.set_xlabel(f"work computed, in forward passes per {unit[:-1]} (a backward counted 2)")
    axes.set_ylabel(word)
    axes.set_xscale("log")
    if not shown:
        axes.text(0.5, 0.5, "no run kept a cost account", ha="center", va="center", transform=axes.transAxes)
    else:
        axes.legend(fontsize=7)
    axes.set_title("each method's pairs at what they cost", fontsize=9)
    return _png(figure)

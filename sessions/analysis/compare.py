"""Several sessions over the same minima side by side (``nebtui report A B ...``): the
check that they explore the same minima, and one document of their pairs, methods,
straight lines and means."""

from __future__ import annotations

from typing import Any

from sessions.analysis.collect import SCHEMA_VERSION, Report, ReportError, average


def summed_accounts(accounts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Cost accounts (``engine.paths.run.CostAccount.to_dict``) added up phase by phase;
    None when there are none or one is missing (a run saved before runs kept one)."""
    if not accounts or any(a is None for a in accounts):
        return None
    total: dict[str, Any] = {"units": accounts[0]["units"]}  # type: ignore[index]
    if any(a["units"] != total["units"] for a in accounts):  # type: ignore[index]
        total["units"] = "mixed"
    for phase in ("steps", "evaluation", "recalibration"):
        total[phase] = {key: sum(a[phase][key] for a in accounts)  # type: ignore[index]
                        for key in ("forward", "backward")}
    seconds = [a.get("seconds") for a in accounts]  # type: ignore[union-attr]
    total["seconds"] = None if any(v is None for v in seconds) else sum(seconds)  # type: ignore[arg-type]
    total["devices"] = sorted({d for a in accounts for d in a.get("devices", [])})  # type: ignore[union-attr]
    return total


def check_same_minima(folders: list[Any]) -> None:
    """Sessions compared must explore the same minima, in the same order: the same
    surface, or manifests whose sha256 agree entry by entry (else a ReportError)."""
    from sessions.disk.config import read_config
    from sessions.disk.folder import SessionError

    def minima_of(folder: Any) -> tuple[Any, ...]:
        try:
            problem = read_config(folder).problem
        except SessionError as error:
            raise ReportError(str(error)) from None
        if problem.kind == "surface":
            return ("surface", problem.surface)
        return ("network", problem.model, problem.data, tuple(m.get("sha256") for m in problem.minima))

    first = minima_of(folders[0])
    for folder in folders[1:]:
        if minima_of(folder) != first:
            raise ReportError(
                f"sessions {folders[0].id} and {folder.id} explore different minima (their manifests' sha256 or "
                "problems differ): compare sessions over the same minima"
            )


def _lines_note(alignment: dict[str, Any] | None) -> str:
    files = "straight lines: between the minima as their files hold them"
    if alignment is not None and alignment.get("mode") == "pairwise":
        return (f"{files}, and between each pair's minima after weight matching its second to its first (the ends "
                "--align-pairwise connects)")
    if alignment is None or alignment.get("reference") is None:
        return files
    return (f"{files}, and between the minima after weight matching every one to minimum "
            f"{alignment['reference']}, the lowest (the minima --align connects)")


def _lines_source(reports: list[tuple[Any, Report]]) -> int:
    """The report whose straight lines the comparison shows: the first of a session aligned
    pair by pair if any (their aligned lines are its ends), else the first. Sessions aligned
    both ways are never compared: their aligned ends differ (ReportError)."""
    modes = {(report.document["session"].get("alignment") or {}).get("mode", "lowest"): folder.id
             for folder, report in reports if report.document["session"]["align"]}
    if len(modes) > 1:
        raise ReportError(f"sessions {modes['lowest']} and {modes['pairwise']} align their minima differently (to "
                          "the lowest, pair by pair): compare sessions with one alignment, or report them apart")
    return next((i for i, (_, report) in enumerate(reports) if report.document["session"]["align"]
                 and (report.document["session"].get("alignment") or {}).get("mode") == "pairwise"), 0)


def _label(session: dict[str, Any]) -> str:
    if not session["align"]:
        return session["method"]
    return session["method"] + (" aligned pairwise" if (session["alignment"] or {}).get("mode") == "pairwise"
                                else " aligned")


def comparison(reports: list[tuple[Any, Report]]) -> dict[str, Any]:
    """One document that sets the reports of several sessions over the same minima
    side by side: per pair and method, the saddle's train loss, the largest test
    error along the path and the cost; the two straight lines of each pair; and
    every method's loss profile along each pair of any session's MST."""
    sessions = []
    for folder, report in reports:
        s = report.document["session"]
        sessions.append({
            "id": folder.id, "method": s["method"], "align": s["align"], "lifecycle": s["lifecycle"],
            "schedule": s["schedule"], "curve": s["curve"], "alignment": s["alignment"],
            "seconds": report.document["timing"]["seconds"], "pairs_finished": s["pairs_finished"],
        })
    labels = [_label(s) for s in sessions]
    for i, s in enumerate(sessions):
        s["label"] = labels[i] if labels.count(labels[i]) == 1 else f"{labels[i]} [{s['id']}]"
    first = reports[0][1].document
    source = reports[_lines_source(reports)][1].document
    mode = (source["session"]["line_alignment"] or {}).get("mode")
    lines = {(p["a"], p["b"]): p["lines"] for p in source["paths"]}

    def lines_of(p: dict[str, Any]) -> dict[str, Any]:
        """The pair's lines from the source report, else from this one without an aligned
        line aligned another way."""
        if (p["a"], p["b"]) in lines:
            return lines[(p["a"], p["b"])]
        aligned = p["lines"].get("aligned")
        return p["lines"] if aligned is None or aligned.get("mode") == mode else {**p["lines"], "aligned": None}

    pairs: dict[tuple[int, int], dict[str, Any]] = {}
    mst_pairs: set[tuple[int, int]] = set()
    for s, (_, report) in zip(sessions, reports):
        mst_pairs |= {(e["a"], e["b"]) for e in report.document["mst"]}
        for p in report.document["paths"]:
            row = pairs.setdefault((p["a"], p["b"]), {"a": p["a"], "b": p["b"], "lines": lines_of(p), "methods": []})
            row["methods"].append({
                "session": s["id"],
                "label": s["label"],
                "method": s["method"],
                "align": s["align"],
                "in_mst": p["in_mst"],
                "saddle_train_loss": p["saddle"]["train"]["loss"],
                "max_test_error": p["max_test_error"],
                "gradient_evaluations": p["cost"]["gradient_evaluations"],
                "seconds": p["cost"]["seconds"],
                "account": p["cost"].get("account"),
                "profile": {"positions": p["profile"]["positions"], "losses": p["profile"]["train"]["losses"],
                            "split": "train", "bn_recalibrated": p["profile"]["train"]["bn_recalibrated"]},
            })
    common = sorted(pair for pair, row in pairs.items() if len(row["methods"]) == len(sessions))

    def mean(values: list[Any]) -> float | None:
        return average(values) if values else None

    means = []
    for s in sessions:
        rows = [next(m for m in pairs[pair]["methods"] if m["session"] == s["id"]) for pair in common]
        means.append({
            "label": s["label"], "pairs": len(rows),
            "saddle_train_loss": mean([m["saddle_train_loss"] for m in rows]),
            "max_test_error": mean([m["max_test_error"] for m in rows]),
            "gradient_evaluations": sum(m["gradient_evaluations"] for m in rows),
            "seconds": None if any(m["seconds"] is None for m in rows) else sum(m["seconds"] for m in rows),
            "account": summed_accounts([m["account"] for m in rows]),
        })
    for name in ("straight", "aligned"):
        lines = [pairs[pair]["lines"][name] for pair in common]
        if lines and all(line is not None for line in lines):
            means.append({"label": f"straight line{' after alignment' if name == 'aligned' else ''}",
                          "pairs": len(lines), "saddle_train_loss": mean([line["saddle"] for line in lines]),
                          "max_test_error": mean([line["max_test_error"] for line in lines]),
                          "gradient_evaluations": 0, "seconds": None, "account": None})
    return {
        "schema_version": SCHEMA_VERSION,
        "problem": {k: first["session"][k] for k in ("problem", "kind", "data", "loss", "parameters")},
        "minima": [{"id": m["id"], "name": m["name"], "train_loss": m["train"]["loss"],
                    "test_error": m["test"]["error"] if m["test"] else None} for m in first["minima"]],
        "sessions": sessions,
        "pairs": [pairs[pair] for pair in sorted(pairs)],
        "mst_pairs": [list(pair) for pair in sorted(mst_pairs)],
        "common_pairs": [list(pair) for pair in common],
        "means": means,
        "notes": [
            "saddle train loss: the highest train loss along the path (full training set"
            + (", BatchNorm recalibrated at every point" if first["session"]["bn_recalibrated"] else "") + ")",
            "largest test error: the highest test error at the path's evaluated points",
            "cost: minibatch gradient evaluations the schedule asks for (one per point per step, a band's ends "
            "included) and seconds from the session's log; the account: what each run computed, counted as it "
            "computed it, in forward and backward passes per sample (per point on a surface) of the training "
            "steps, of the dense evaluation of the path on the whole training set and of BatchNorm's "
            "recalibration (- for a run saved before runs kept one), with the pair's wall-clock seconds and the "
            "session's devices from its log",
            _lines_note(source["session"]["line_alignment"]),
        ],
    }

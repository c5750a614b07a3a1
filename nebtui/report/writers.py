"""The report's files: JSON (the whole result), CSV (one file per table),
Markdown (with PNG files beside it) and one self-contained HTML file."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from pathlib import Path
from typing import Any, Callable

FORMATS = ("html", "md", "json", "csv")
SIGNIFICANT = 10  # digits kept of every float in the JSON and CSV files


def fixed(value: float) -> float | None:
    """A float rounded to SIGNIFICANT digits (None for NaN and infinities)."""
    if not math.isfinite(value):
        return None
    return float(f"{value:.{SIGNIFICANT}g}")


def _tidy(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return fixed(value)
    if isinstance(value, dict):
        return {str(k): _tidy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tidy(v) for v in value]
    raise TypeError(f"cannot write {type(value).__name__} to the JSON report")


def json_text(document: dict[str, Any]) -> str:
    """The document as JSON: sorted keys, floats to SIGNIFICANT digits: the same result gives the same bytes."""
    return json.dumps(_tidy(document), sort_keys=True, indent=1, allow_nan=False) + "\n"


# --- tables -----------------------------------------------------------------------

TABLE1_COLUMNS = ("train_loss_minima", "train_loss_saddles", "factor", "test_loss_minima", "test_loss_saddles",
                  "test_error_minima", "test_error_saddles", "test_error_difference")


def tables(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Table name -> rows (dicts with the same keys)."""
    minima = [
        {"id": m["id"], "name": m["name"], "train_loss": m["train"]["loss"], "train_error": m["train"]["error"],
         "test_loss": m["test"]["loss"] if m["test"] else None, "test_error": m["test"]["error"] if m["test"] else None,
         "bn_recalibrated": m["train"]["bn_recalibrated"]}
        for m in document["minima"]
    ]
    paths = []
    for p in document["paths"]:
        row: dict[str, Any] = {"a": p["a"], "b": p["b"], "in_mst": p["in_mst"], "pivots": p["pivots"]}
        for name in ("saddle", "linear_saddle"):
            s = p[name]
            row[f"{name}_position"] = s["position"]
            row[f"{name}_train_loss"], row[f"{name}_train_error"] = s["train"]["loss"], s["train"]["error"]
            row[f"{name}_test_loss"] = s["test"]["loss"] if s["test"] else None
            row[f"{name}_test_error"] = s["test"]["error"] if s["test"] else None
        row["bn_recalibrated"] = p["saddle"]["train"]["bn_recalibrated"]
        row["seconds"] = p["seconds"]
        row["method"] = p["method"]
        row["max_test_error"] = p["max_test_error"]
        row["gradient_evaluations"] = p["cost"]["gradient_evaluations"]
        row.update(account_columns(p["cost"].get("account")))
        for name in ("straight", "aligned"):
            line = p["lines"][name]
            row[f"{name}_line_saddle_train_loss"] = line["saddle"] if line else None
            row[f"{name}_line_max_test_error"] = line["max_test_error"] if line else None
        paths.append(row)
    profiles = []
    for p in document["paths"]:
        for curve, source in (("path", p["profile"]), ("linear", p["linear"])):
            for split in ("train", "test"):
                if source[split] is None:
                    continue
                for position, loss in zip(source["positions"], source[split]["losses"]):
                    profiles.append({"a": p["a"], "b": p["b"], "curve": curve, "restart": None, "cycle": None,
                                     "split": split, "bn_recalibrated": source[split]["bn_recalibrated"],
                                     "position": position, "loss": loss})
        for h in p["history"]:
            for position, loss in zip(h["positions"], h["losses"]):
                profiles.append({"a": p["a"], "b": p["b"], "curve": "cycle", "restart": h["restart"],
                                 "cycle": h["cycle"], "split": "train", "bn_recalibrated": h["bn_recalibrated"],
                                 "position": position, "loss": loss})
    table1 = [{**{k: document["table1"][k] for k in TABLE1_COLUMNS}, "minima": document["table1"]["minima"],
               "saddles": document["table1"]["saddles"], "bn_recalibrated": document["table1"]["bn_recalibrated"]}]
    out = {"minima": minima, "paths": paths, "profiles": profiles, "table1": table1}
    if document["hessian"] is not None:
        out["hessian"] = [
            {"kind": h["kind"], "id": h["id"], "pair": "" if h["pair"] is None else "{}-{}".format(*h["pair"]),
             "largest": " ".join(f"{v:.6g}" for v in h["largest"]),
             "smallest": " ".join(f"{v:.6g}" for v in h["smallest"]),
             "near_zero": h["near_zero"], "negative": h["negative"], "method": h["method"]}
            for h in document["hessian"]["points"]
        ]
    if document["ensembles"]:
        out["ensembles"] = [
            {"a": e["pair"][0], "b": e["pair"][1], "members": e["members"], "path": e["path"], "start": e["start"],
             "end": e["end"], "pair_ensemble": e["pair_ensemble"], "split": e["split"],
             "bn_recalibrated": e["bn_recalibrated"]}
            for e in document["ensembles"]
        ]
    return out


def csv_text(rows: list[dict[str, Any]]) -> str:
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else fixed(v) if isinstance(v, float) else v) for k, v in row.items()})
    return stream.getvalue()


# --- the Table 1 row and the text -------------------------------------------------


def _number(value: float | None, digits: int = 3, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}" if percent else f"{value:.{digits}g}"


def table1_cells(document: dict[str, Any]) -> list[str]:
    t = document["table1"]
    return [
        _number(t["train_loss_minima"]), _number(t["train_loss_saddles"]),
        "-" if t["factor"] is None else f"{t['factor']:.2g}",
        _number(t["test_loss_minima"]), _number(t["test_loss_saddles"]),
        _number(t["test_error_minima"], percent=True), _number(t["test_error_saddles"], percent=True),
        _number(t["test_error_difference"], percent=True),
    ]


TABLE1_HEADER = ["train: minima", "train: saddles", "factor", "test: minima", "test: saddles",
                 "test error %: minima", "test error %: saddles", "difference"]


def _label(document: dict[str, Any]) -> str:
    s = document["session"]
    return s["problem"] + (f" on {s['data']}" if s["data"] else "")


def _facts(document: dict[str, Any]) -> list[str]:
    s, t, timing = document["session"], document["table1"], document["timing"]
    word = "energy" if s["kind"] == "surface" else "loss"
    facts = [
        f"Session {s['id']} ({s['lifecycle']}): {s['problem']}, {s['parameters']} parameters, "
        f"schedule {s['schedule']} ({s['cycles']} cycles), {s['pairs_finished']} finished paths.",
        f"Means over {t['minima']} minima and {t['saddles']} MST saddles; "
        + ("the surface's energy at each point." if s["kind"] == "surface" else
           f"train and test {word} on the full sets"
           + (", BatchNorm statistics recalibrated at every point." if s["bn_recalibrated"] else ".")),
        *_at_end_facts(document),
        *([f"{s['no_error_rate'][:1].upper()}{s['no_error_rate'][1:]}; Table 1 and the paths give losses only."]
          if s.get("no_error_rate") else []),
        f"Devices: {', '.join(timing['devices']) or 'unknown'}; "
        + (f"{timing['seconds']:.1f} s from the first to the last logged event." if timing["seconds"] is not None else ""),
    ]
    facts += method_facts(s)
    if s["lifecycle"] != "finished":
        facts.append("The session has not finished: this reports the paths finished so far.")
    return facts


def _at_end_facts(document: dict[str, Any]) -> list[str]:
    """One sentence per path whose highest point is one of its minima: no barrier there,
    and none in Table 1."""
    from sessions.view import at_end_note

    facts = []
    for p in document["paths"]:
        end = p["saddle"].get("at_end")
        if end is not None:
            table = " Table 1 leaves it out of the saddles." if p["in_mst"] else ""
            facts.append(f"Path {p['a']} - {p['b']}: {at_end_note(end)}.{table}")
    return facts


METHOD_NAMES = {"autoneb": "AutoNEB", "bezier": "quadratic Bezier curves", "polychain": "polygonal chains (one bend)"}


def method_facts(s: dict[str, Any]) -> list[str]:
    """What connected the minima and how: the method, a curve's budget, the alignment."""
    facts = []
    if s["method"] == "autoneb":
        facts.append(f"Method: AutoNEB, schedule {s['schedule']}.")
    else:
        c = s["curve"]
        facts.append(
            f"Method: {METHOD_NAMES[s['method']]} (Garipov et al. 2018), the bend trained for {c['steps']} steps x "
            f"{c['points']} points = {c['gradient_evaluations']} gradient evaluations per pair ({c['budget_rule']}); "
            f"lr {c['lr']:g} ({c['optimiser']}), evaluated at {c['eval_points']} values of t.")
    if s["align"] and (s["alignment"] or {}).get("mode") == "pairwise":
        facts.append("Aligned pair by pair: each pair's second minimum was weight matched to its first before "
                     "the pair was connected (Ainsworth et al. 2023); the files are unchanged.")
    elif s["align"]:
        a = s["alignment"]
        facts.append(f"Aligned: the minima were connected after weight matching every one to minimum "
                     f"{a['reference']}, the lowest (Ainsworth et al. 2023); the files are unchanged.")
    else:
        facts.append("Not aligned: the minima were connected as their files hold them.")
    facts.append(lines_fact(s.get("line_alignment"), s["align"]))
    return facts


def lines_fact(alignment: dict[str, Any] | None, aligned_session: bool) -> str:
    """Which two straight lines every path is set beside, and how the second one's minima were aligned."""
    files = "Straight lines per path: between the minima as their files hold them"
    if alignment is None:
        return files + "."
    if alignment.get("mode") == "pairwise":
        return (f"{files}, and between each pair's minima after weight matching its second to its first "
                "(Ainsworth et al. 2023): the ends this session connected.")
    if alignment.get("reference") is None:
        return f"{files}; no aligned line: weight matching cannot analyse this network ({alignment['refused']})."
    whose = "this session connected" if aligned_session else "an --align session connects"
    return (f"{files}, and between the minima after weight matching every one to minimum {alignment['reference']}, "
            f"the lowest (Ainsworth et al. 2023): the minima {whose}.")


ACCOUNT_HEADER = ["step passes fwd / bwd", "dense evaluation fwd", "BN recalibration fwd", "computed in"]


def _count(value: int) -> str:
    """A count of passes, short: 812, 45.3k, 1.27M, 3.4G."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return str(value)


def account_cells(account: dict[str, Any] | None) -> list[str]:
    """The cost account's columns (``ACCOUNT_HEADER``): the steps' forward and backward
    passes, the dense evaluation's and the recalibration's forward passes (per sample,
    or per point on a surface), and the seconds with the device; "-" for a run saved
    before runs kept an account."""
    if account is None:
        return ["-"] * len(ACCOUNT_HEADER)
    unit = " points" if account["units"] == "points" else ""
    steps, evaluation, recalibration = account["steps"], account["evaluation"], account["recalibration"]
    devices = ", ".join(account.get("devices") or []) or "?"
    seconds = account.get("seconds")
    return [f"{_count(steps['forward'])} / {_count(steps['backward'])}{unit}",
            f"{_count(evaluation['forward'])}{unit}",
            f"{_count(recalibration['forward'])}{unit}" if recalibration["forward"] else "0",
            f"{'-' if seconds is None else f'{seconds:.1f}'} s on {devices}"]


def account_columns(account: dict[str, Any] | None) -> dict[str, Any]:
    """The cost account as flat CSV columns (None where a run kept no account)."""
    out: dict[str, Any] = {"cost_units": None if account is None else account["units"]}
    for phase in ("steps", "evaluation", "recalibration"):
        for key in ("forward", "backward"):
            out[f"{phase}_{key}"] = None if account is None else account[phase][key]
    out["cost_seconds"] = None if account is None else account.get("seconds")
    out["cost_devices"] = None if account is None else ";".join(account.get("devices") or [])
    return out


def _line_saddle(line: dict[str, Any] | None) -> str:
    return "-" if line is None else _number(line["saddle"], 4)


def _saddle_train(path: dict[str, Any]) -> str:
    """The saddle's train loss; "at an end" when the path peaks at one of its minima."""
    text = _number(path["saddle"]["train"]["loss"], 4)
    end = path["saddle"].get("at_end")
    return text if end is None else f"{text} (at an end: minimum {end})"


def _path_rows(document: dict[str, Any]) -> list[list[str]]:
    """The Paths table's rows. The straight line between the path's own ends is no column
    of its own: those ends are the files' minima (the straight line (files)) or, when the
    session aligned its minima, the aligned minima (the aligned straight line)."""
    return [
        [f"{p['a']} - {p['b']}", "yes" if p["in_mst"] else "", str(p["pivots"]), _saddle_train(p),
         _line_saddle(p["lines"]["straight"]), _line_saddle(p["lines"]["aligned"]),
         _number(p["saddle"]["test"]["loss"], 4) if p["saddle"]["test"] else "-",
         _number(p["saddle"]["test"]["error"], percent=True) if p["saddle"]["test"] else "-",
         _number(p["max_test_error"], percent=True),
         str(p["cost"]["gradient_evaluations"]),
         "-" if p["seconds"] is None else f"{p['seconds']:.1f}",
         *account_cells(p["cost"].get("account"))]
        for p in document["paths"]
    ]


def path_header(document: dict[str, Any]) -> list[str]:
    """The Paths table's columns (see `_path_rows`)."""
    line_alignment = document["session"].get("line_alignment") or {}
    reference = line_alignment.get("reference")
    aligned = ("aligned pair by pair" if line_alignment.get("mode") == "pairwise"
               else "aligned" if reference is None else f"aligned to minimum {reference}")
    return ["pair", "MST", "pivots", "saddle train", "straight line (files) saddle train",
            f"straight line ({aligned}) saddle train", "saddle test", "saddle test error %",
            "largest test error %", "gradient evaluations", "seconds", *ACCOUNT_HEADER]


def paths_note(document: dict[str, Any]) -> str | None:
    """Why a path's largest test error is "-": the test set is evaluated all along the
    MST's paths only (the others keep their saddle's test numbers)."""
    untested = [p for p in document["paths"] if p["profile"]["test"] is None and not p["in_mst"]]
    if not untested or document["session"]["kind"] == "surface":
        return None
    pairs = ", ".join(f"{p['a']} - {p['b']}" for p in untested)
    return (f"Largest test error %: evaluated along the MST's paths only; {pairs} "
            f"{'is' if len(untested) == 1 else 'are'} outside the MST, so it is '-' there.")
ENSEMBLE_HEADER = ["pair", "members", "path ensemble %", "minimum a %", "minimum b %", "two-model ensemble %"]
HESSIAN_HEADER = ["point", "largest", "smallest", "negative", "near zero", "method"]


def _ensemble_rows(document: dict[str, Any]) -> list[list[str]]:
    return [[f"{e['pair'][0]} - {e['pair'][1]}", str(e["members"])]
            + [_number(e[k], percent=True) for k in ("path", "start", "end", "pair_ensemble")]
            for e in document["ensembles"]]


def _hessian_rows(document: dict[str, Any]) -> list[list[str]]:
    rows = []
    for h in document["hessian"]["points"] if document["hessian"] else []:
        name = f"minimum {h['id']}" if h["kind"] == "minimum" else "saddle {}-{}".format(*h["pair"])
        rows.append([name, ", ".join(f"{v:.4g}" for v in h["largest"]), ", ".join(f"{v:.4g}" for v in h["smallest"]),
                     "-" if h["negative"] is None else str(h["negative"]),
                     "-" if h["near_zero"] is None else str(h["near_zero"]), h["method"]])
    return rows


def _hessian_note(document: dict[str, Any]) -> str:
    h = document["hessian"]
    if h is None:
        return "No Hessian (asked with --hessian-k 0)."
    batch = h["batch"]
    where = f" on a fixed batch of {batch['samples']} training samples" if batch["samples"] else ""
    return (f"Hessian{where}: the {h['k']} largest and smallest eigenvalues (more with --hessian-k), "
            f"{hessian_methods(document)}. Near zero: {h['near_zero_rule']}.")


HESSIAN_METHODS = {"dense": "from the whole spectrum (dense)", "lanczos": "by Lanczos on Hessian-vector products"}


def hessian_methods(document: dict[str, Any]) -> str:
    """How the eigenvalues were computed, as the Hessian table's method column says:
    dense up to --hessian-dense-limit parameters, Lanczos beyond."""
    used = sorted({h["method"] for h in document["hessian"]["points"]})
    return " and ".join(HESSIAN_METHODS.get(m, m) for m in used) or "none computed"


def markdown(document: dict[str, Any], figures: dict[str, tuple[str, bytes]], folder: str = "figures") -> str:
    lines = [f"# nebtui report: {_label(document)}", ""]
    lines += [f"- {fact}" for fact in _facts(document)] + [""]
    lines += ["## Table 1", "", _md_table(["", *TABLE1_HEADER], [[_label(document), *table1_cells(document)]]), ""]
    lines += ["## Paths", "", _md_table(path_header(document), _path_rows(document)), ""]
    note = paths_note(document)
    lines += [note, ""] if note else []
    if document["ensembles"]:
        lines += ["## Path ensembles (test accuracy)", "", _md_table(ENSEMBLE_HEADER, _ensemble_rows(document)), ""]
    lines += ["## Curvature", "", _hessian_note(document), ""]
    if document["hessian"]:
        lines += [_md_table(HESSIAN_HEADER, _hessian_rows(document)), ""]
    lines += ["## Figures", ""]
    for name, (caption, _) in figures.items():
        lines += [f"![{caption}]({folder}/{name})", "", f"*{caption}*", ""]
    return "\n".join(lines)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee}th.group{text-align:center}td:first-child{text-align:left}
figure{margin:1.5em 0}img{max-width:100%}figcaption{font-size:90%;color:#555}"""


def html_text(document: dict[str, Any], figures: dict[str, tuple[str, bytes]]) -> str:
    """One self-contained page: the figures are embedded as base64 data URLs."""
    e = html.escape
    t1 = "".join(f"<td>{e(c)}</td>" for c in table1_cells(document))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>nebtui report: {e(_label(document))}</title><style>{STYLE}</style></head><body>",
        f"<h1>nebtui report: {e(_label(document))}</h1>",
        "<ul>" + "".join(f"<li>{e(f)}</li>" for f in _facts(document)) + "</ul>",
        "<h2>Table 1</h2><table>",
        '<tr><th></th><th class="group" colspan="3">train loss</th><th class="group" colspan="2">test loss</th>'
        '<th class="group" colspan="3">test error %</th></tr>',
        "<tr><th></th><th>minima</th><th>saddles</th><th>factor</th><th>minima</th><th>saddles</th>"
        "<th>minima</th><th>saddles</th><th>difference</th></tr>",
        f"<tr><td>{e(_label(document))}</td>{t1}</tr></table>",
        "<h2>Paths</h2>", _html_table(path_header(document), _path_rows(document)),
    ]
    note = paths_note(document)
    parts += [f"<p>{e(note)}</p>"] if note else []
    if document["ensembles"]:
        parts += ["<h2>Path ensembles (test accuracy)</h2>", _html_table(ENSEMBLE_HEADER, _ensemble_rows(document))]
    parts += ["<h2>Curvature</h2>", f"<p>{e(_hessian_note(document))}</p>"]
    if document["hessian"]:
        parts.append(_html_table(HESSIAN_HEADER, _hessian_rows(document)))
    parts.append("<h2>Figures</h2>")
    for name, (caption, png) in figures.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure><img alt="{e(name)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{e(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    head = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def write_report(report: Any, out: Path, formats: list[str], figures_of: Callable[[Any], dict]) -> list[Path]:
    """Write the asked formats into ``out``; returns the files written."""
    from sessions.disk.folder import write_atomic

    written: list[Path] = []

    def put(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, durable=False)
        written.append(path)

    document = report.document
    if "json" in formats:
        put(out / "report.json", json_text(document).encode())
    if "csv" in formats:
        for name, rows in tables(document).items():
            put(out / f"{name}.csv", csv_text(rows).encode())
    if "md" in formats or "html" in formats:
        figures = figures_of(report)
        if "md" in formats:
            for name, (_, png) in figures.items():
                put(out / "figures" / name, png)
            put(out / "report.md", markdown(document, figures).encode())
        if "html" in formats:
            put(out / "report.html", html_text(document, figures).encode())
    if "weights" in formats:
        from safetensors.torch import save

        for name, (state, about) in sorted(report.weights.items()):
            tensors = {key: value.contiguous() for key, value in state.items()}
            put(out / "weights" / f"{name}.safetensors", save(tensors, metadata={"nebtui": json.dumps(about)}))
    return written

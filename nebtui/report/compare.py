"""The comparison of several sessions over the same minima (``nebtui report A B ...``):
per pair and method the saddle's train loss, the largest test error along the path
and the cost, beside the pair's two straight lines; the means over the pairs every
session finished; and one figure with each method's loss profile along each MST
pair. JSON, CSV, Markdown (with the PNG beside it) and one self-contained HTML file."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from nebtui.report.writers import (ACCOUNT_HEADER, _html_table, _md_table, _number, account_cells, account_columns,
                                   csv_text, json_text, method_facts)

FIGURE = "compare-profiles.png"
COST_FIGURE = "compare-cost.png"
COST_CAPTION = ("Every pair of every session at what its run computed (the forward and backward passes per "
                "sample of its steps, dense evaluation and BatchNorm recalibration, a backward counted as two "
                "forwards; a log scale) and the saddle it reached. Runs saved before runs kept an account are "
                "left out.")
CAPTION = ("Train loss along every pair in the MST of any session compared (each panel's title names the sessions "
           "whose MST holds the pair): every method's path and the two straight lines.")
PAIR_HEADER = ["pair", "method", "MST", "saddle train loss", "largest test error %", "gradient evaluations", "seconds",
               *ACCOUNT_HEADER]
MEAN_HEADER = ["method", "pairs", "mean saddle train loss", "mean largest test error %", "gradient evaluations",
               "seconds", *ACCOUNT_HEADER]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def pair_rows(document: dict[str, Any]) -> list[list[str]]:
    rows = []
    for p in document["pairs"]:
        pair = f"{p['a']} - {p['b']}"
        for name, caption in (("straight", "straight line"), ("aligned", "straight line after alignment")):
            line = p["lines"][name]
            if line is not None:
                rows.append([pair, caption, "", _number(line["saddle"], 4),
                             _number(line["max_test_error"], percent=True), "0", "-", *account_cells(None)])
        for m in p["methods"]:
            rows.append([pair, m["label"], "yes" if m["in_mst"] else "", _number(m["saddle_train_loss"], 4),
                         _number(m["max_test_error"], percent=True), str(m["gradient_evaluations"]),
                         _seconds(m["seconds"]), *account_cells(m.get("account"))])
    return rows


def mean_rows(document: dict[str, Any]) -> list[list[str]]:
    return [[m["label"], str(m["pairs"]), _number(m["saddle_train_loss"], 4),
             _number(m["max_test_error"], percent=True), str(m["gradient_evaluations"]), _seconds(m["seconds"]),
             *account_cells(m.get("account"))]
            for m in document["means"]]


def facts(document: dict[str, Any]) -> list[str]:
    out = [f"Sessions {', '.join(s['id'] for s in document['sessions'])} over the same "
           f"{len(document['minima'])} minima ({document['problem']['problem']}"
           + (f" on {document['problem']['data']}" if document["problem"]["data"] else "") + ")."]
    for s in document["sessions"]:
        described = " ".join(f for f in method_facts(s) if not f.startswith("Straight lines"))
        out.append(f"{s['label']} (session {s['id']}, {s['lifecycle']}): {described}")
    out.append(f"Means over the {len(document['common_pairs'])} pairs every session finished.")
    out += [note[0].upper() + note[1:] + "." for note in document["notes"]]
    return out


def csv_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for p in document["pairs"]:
        for name in ("straight", "aligned"):
            line = p["lines"][name]
            if line is not None:
                rows.append({"a": p["a"], "b": p["b"], "method": f"{name} line", "session": "", "align": "",
                             "in_mst": "", "saddle_train_loss": line["saddle"],
                             "max_test_error": line["max_test_error"], "gradient_evaluations": 0, "seconds": None,
                             **account_columns(None)})
        for m in p["methods"]:
            rows.append({"a": p["a"], "b": p["b"], "method": m["method"], "session": m["session"],
                         "align": m["align"], "in_mst": m["in_mst"], "saddle_train_loss": m["saddle_train_loss"],
                         "max_test_error": m["max_test_error"], "gradient_evaluations": m["gradient_evaluations"],
                         "seconds": m["seconds"], **account_columns(m.get("account"))})
    return rows


def markdown(document: dict[str, Any], folder: str = "figures") -> str:
    lines = ["# nebtui comparison of methods", ""]
    lines += [f"- {fact}" for fact in facts(document)] + [""]
    lines += ["## Means", "", _md_table(MEAN_HEADER, mean_rows(document)), ""]
    lines += ["## Pairs", "", _md_table(PAIR_HEADER, pair_rows(document)), ""]
    lines += ["## Figures", "", f"![{CAPTION}]({folder}/{FIGURE})", "", f"*{CAPTION}*", ""]
    lines += [f"![{COST_CAPTION}]({folder}/{COST_FIGURE})", "", f"*{COST_CAPTION}*", ""]
    return "\n".join(lines)


def html_text(document: dict[str, Any], png: bytes, cost_png: bytes) -> str:
    from nebtui.report.writers import STYLE

    e = html.escape
    data = base64.b64encode(png).decode("ascii")
    cost = base64.b64encode(cost_png).decode("ascii")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>nebtui comparison of methods</title><style>{STYLE}</style></head><body>",
        "<h1>nebtui comparison of methods</h1>",
        "<ul>" + "".join(f"<li>{e(f)}</li>" for f in facts(document)) + "</ul>",
        "<h2>Means</h2>", _html_table(MEAN_HEADER, mean_rows(document)),
        "<h2>Pairs</h2>", _html_table(PAIR_HEADER, pair_rows(document)),
        f'<h2>Figures</h2><figure><img alt="{FIGURE}" src="data:image/png;base64,{data}">'
        f"<figcaption>{e(CAPTION)}</figcaption></figure>",
        f'<figure><img alt="{COST_FIGURE}" src="data:image/png;base64,{cost}">'
        f"<figcaption>{e(COST_CAPTION)}</figcaption></figure>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_comparison(document: dict[str, Any], out: Path, formats: list[str]) -> list[Path]:
    """Write the asked formats of the comparison into ``out``; returns the files written."""
    from sessions.disk.folder import write_atomic

    written: list[Path] = []

    def put(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, durable=False)
        written.append(path)

    if "json" in formats:
        put(out / "comparison.json", json_text(document).encode())
    if "csv" in formats:
        put(out / "comparison.csv", csv_text(csv_rows(document)).encode())
    if "md" in formats or "html" in formats:
        from nebtui.report.figures import comparison_figure, cost_figure

        png, cost_png = comparison_figure(document), cost_figure(document)
        if "md" in formats:
            put(out / "figures" / FIGURE, png)
            put(out / "figures" / COST_FIGURE, cost_png)
            put(out / "comparison.md", markdown(document).encode())
        if "html" in formats:
            put(out / "comparison.html", html_text(document, png, cost_png).encode())
    return written

"""``nebtui report``: tables, figures and the whole result of a session, built
from its folder alone (a running session: what is finished so far). Given several
sessions over the same minima, it writes one comparison of their methods."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from nebtui.failure import fail
from nebtui.sessions_cmd import complete_session_id

FORMATS = ("html", "md", "json", "csv", "weights")
FORMAT_HELP = ("Comma-separated: html, md, json, csv, and weights (each MST saddle's network as a safetensors "
               "state dict, BatchNorm recalibrated, for model.load_state_dict).")


def parse_formats(text: str) -> list[str]:
    """'html,md' -> ['html', 'md']; an unknown or empty list is a ValueError with one line."""
    chosen = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ValueError(f"unknown format {(unknown or [text])[0]!r}: use a comma-separated list of {', '.join(FORMATS)}")
    return [f for f in FORMATS if f in chosen]


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        fail(f"cannot write the report to {out} ({error.strerror or error}): give a writable --out folder", code=2)


def report(
    session_ids: Annotated[list[str], typer.Argument(
        metavar="SESSION...", help="Session name (see nebtui sessions list); several sessions over the same minima "
                                   "(e.g. one per --method) give one comparison of their methods.",
        show_default=False, autocompletion=complete_session_id)],
    format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "html,md,json,csv",
    out: Annotated[Optional[Path], typer.Option(help="Folder for the report (default: the session's results/report/; "
                                                     "a comparison: the first session's results/comparison/).")] = None,
    device: Annotated[str, typer.Option(help="Where to evaluate: auto (the first GPU, else the CPU), cpu, cuda or "
                                             "cuda:N.")] = "cpu",
    hessian_k: Annotated[int, typer.Option(help="Hessian eigenvalues at each end of the spectrum, at every minimum "
                                                "and MST saddle (0: none).")] = 3,
    hessian_batch: Annotated[int, typer.Option(help="Training samples in the Hessian's fixed batch (networks).")] = 512,
    hessian_dense_limit: Annotated[int, typer.Option(help="Up to this many parameters the whole Hessian spectrum is "
                                                          "computed (near-zero count); Lanczos beyond.")] = 3000,
    slices: Annotated[int, typer.Option(help="MST paths with a 2-D slice figure, highest saddle first (networks).")] = 1,
    slice_grid: Annotated[int, typer.Option(help="Grid points per side of a network's 2-D slice.")] = 15,
    ensemble_k: Annotated[int, typer.Option(help="Networks along each MST path in its ensemble (0: none).")] = 5,
) -> None:
    """Write a session's report: Table 1, paths, figures (Markdown, one-file HTML), JSON and CSV; or, for
    several sessions over the same minima, one comparison of their methods."""
    from sessions.analysis.collect import ReportError, ReportOptions, collect
    from nebtui.report.figures import all_figures
    from nebtui.report.writers import write_report
    from sessions.processes.devices import resolve_device
    from sessions.disk.folder import SessionError, SessionFolder
    from sessions.disk.home import data_home

    try:
        formats = parse_formats(format)
        device = resolve_device(device)
    except (ValueError, SessionError) as error:
        fail(str(error), code=2)
    options = ReportOptions(device=device, hessian_k=hessian_k, hessian_batch=hessian_batch,
                            hessian_dense_limit=hessian_dense_limit, slices=slices, slice_grid=slice_grid,
                            ensemble_k=ensemble_k, saddle_weights="weights" in formats)
    if options.problems():
        fail("; ".join(options.problems()), code=2)
    if len(session_ids) > 1:
        _compare(session_ids, formats, out, options)
        return
    session_id = session_ids[0]
    try:
        folder = SessionFolder.open(data_home(), session_id)
    except SessionError as error:
        fail(str(error))
    target = out if out is not None else folder.results_path / "report"
    _check_writable(target)
    try:
        built = collect(folder, options)
        written = write_report(built, target, formats, all_figures)
    except (ReportError, SessionError) as error:
        fail(str(error))
    except OSError as error:
        fail(f"cannot write the report to {target} ({error.strerror or error}): give a writable --out folder", code=2)
    for path in written:
        if path.parent == target:
            print(path)
    for kind in ("figures", "weights"):
        files = [p for p in written if p.parent == target / kind]
        if files:
            print(f"{target / kind} ({len(files)} {kind})")
    if "weights" in formats and not built.weights:
        print(f"nebtui: note: session {session_id} explores a surface, not networks: there are no weights to write",
              file=sys.stderr)
    sys.stdout.flush()


def _compare(session_ids: list[str], formats: list[str], out: Optional[Path], options: object) -> None:
    """One comparison of several sessions over the same minima (weights are per session: not here)."""
    from dataclasses import replace

    from nebtui.report.compare import write_comparison
    from sessions.disk.folder import SessionError, SessionFolder
    from sessions.disk.home import data_home
    from sessions.analysis.collect import ReportError, collect
    from sessions.analysis.compare import check_same_minima, comparison

    if len(set(session_ids)) < len(session_ids):
        fail(f"session {next(s for s in session_ids if session_ids.count(s) > 1)} is named twice: "
             "compare different sessions", code=2)
    if formats == ["weights"]:
        fail("a comparison has no weights: report one session with --format weights", code=2)
    try:
        home = data_home()
        folders = [SessionFolder.open(home, name) for name in session_ids]
        check_same_minima(folders)
    except (ReportError, SessionError) as error:
        fail(str(error))
    target = out if out is not None else folders[0].results_path / "comparison"
    _check_writable(target)
    # every path on the test set; none of the single reports' costlier analyses
    options = replace(options, path_test="all", saddle_weights=False, hessian_k=0, slices=0,  # type: ignore[type-var]
                      ensemble_k=0)
    try:
        document = comparison([(folder, collect(folder, options)) for folder in folders])
        written = write_comparison(document, target, [f for f in formats if f != "weights"])
    except (ReportError, SessionError) as error:
        fail(str(error))
    except OSError as error:
        fail(f"cannot write the comparison to {target} ({error.strerror or error}): give a writable --out folder",
             code=2)
    for path in written:
        print(path)
    sys.stdout.flush()

"""``nebtui demo``: a whole session on an embedded problem."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from nebtui.failure import fail
from nebtui.launch import run_session, schedule_for, session_config, use_app
from nebtui.options import RunOptions, with_run_options
from nebtui.progress import ProgressPrinter
from nebtui.startup import preload_app

SURFACE_DEMOS = ("muller-brown", "himmelblau")
DEMOS = (*SURFACE_DEMOS, "digits")
DIGITS_MINIMA = 4
DIGITS_STEPS = 0.05  # the digits demo runs the paper's schedule at this fraction of its steps (unless --schedule)


@with_run_options()
def demo(
    name: Annotated[str, typer.Argument(help=f"Which demo: {', '.join(DEMOS)}.", show_default=False)],
    run: RunOptions = RunOptions(),
) -> None:
    """Explore the minima of a demo problem in a session and print the MST."""
    if name not in DEMOS:
        fail(f"unknown demo {name!r}: choose one of {', '.join(DEMOS)}")
    if use_app(run.headless, run.as_json) and not run.detach:
        preload_app()  # while this process checks the options and the runner starts
    from sessions.disk.config import Problem
    from sessions.processes.devices import parse_devices
    from sessions.disk.folder import SessionError

    try:
        parse_devices(run.device)  # the runner checks that its GPUs are there
    except SessionError as error:
        fail(str(error), code=2)
    printer = ProgressPrinter(stream=sys.stdout, enabled=not run.as_json)
    surface = name in SURFACE_DEMOS
    chosen = schedule_for(run, surface=surface, printer=printer, preset_scale=1.0 if surface else DIGITS_STEPS)
    if surface:
        problem = Problem(kind="surface", surface=name)
    else:
        problem = Problem(kind="network", model="mlp", data="digits", minima=_digits_minima(printer, run.seed))
    run_session(session_config(run, problem, chosen), run, hint=name, printer=printer)


def _digits_minima(printer: ProgressPrinter, seed: int) -> list[dict[str, Any]]:
    """Four MLP minima on digits, trained once (as `nebtui train` does, sidecars
    included) and kept under the data home. Only training them imports torch."""
    from sessions.disk.config import Problem
    from sessions.disk.folder import SessionError
    from sessions.disk.home import data_home
    from sessions.problem.minima import manifest_entry
    from sessions.problem.minima_folder import train_one
    from sessions.problem.build import load_data, model_arguments

    try:
        folder = data_home() / ".demo-minima" / f"digits-mlp-seed{seed}"
    except SessionError as error:
        fail(str(error))
    folder.mkdir(parents=True, exist_ok=True)
    problem = Problem(kind="network", model="mlp", data="digits")
    stems = [folder / f"minimum-{i:02d}" for i in range(DIGITS_MINIMA)]
    missing = [s for s in stems if not (s.with_suffix(".json").exists() and s.with_suffix(".safetensors").exists())]
    if missing:
        from engine.networks.training import RECIPES

        dataset = load_data(problem, "cpu")
        arguments = model_arguments(problem)
        for stem in missing:
            i = stems.index(stem)
            train_one(problem, arguments, dataset, RECIPES["digits"], seed * 100 + i, stem,
                      label=f"minimum {i + 1}/{DIGITS_MINIMA} of the digits MLP", device="cpu", quiet=True,
                      say=printer.line)  # not with --json: stdout holds the result only
    return [manifest_entry(s.with_suffix(".safetensors")) for s in stems]

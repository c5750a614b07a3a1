"""``nebtui demo``: a whole session on an embedded problem."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from nebtui import options
from nebtui.errors import fail
from nebtui.launch import run_session, schedule_for
from nebtui.progress import ProgressPrinter

SURFACE_DEMOS = ("muller-brown", "himmelblau")
DEMOS = (*SURFACE_DEMOS, "digits")
DIGITS_MINIMA = 4


def demo(
    name: Annotated[str, typer.Argument(help=f"Which demo: {', '.join(DEMOS)}.", show_default=False)],
    schedule: options.Schedule = None,
    device: options.Device = "auto",
    session: options.Session = None,
    seed: options.Seed = 0,
    detach: options.Detach = False,
    headless: options.Headless = False,
    as_json: options.Json = False,
    climb: options.Climb = False,
    scale: options.Scale = 1.0,
    star: options.Star = False,
    checkpoint_every: options.CheckpointEvery = 60.0,
    strategy: Annotated[str, typer.Option(help="Pivot evaluation of the digits demo: auto (timed), loop or vmap.")] = "auto",
    bf16: options.Bf16 = False,
    channels_last: options.ChannelsLast = False,
    compile: options.Compile = False,
    cudnn_benchmark: options.CudnnBenchmark = False,
) -> None:
    """Explore the minima of a demo problem in a session and print the MST."""
    if name not in DEMOS:
        fail(f"unknown demo {name!r}: choose one of {', '.join(DEMOS)}")
    from sessions.config import Problem, SessionConfig
    from sessions.devices import parse_devices
    from sessions.folder import SessionError

    try:
        parse_devices(device)  # the runner checks that its GPUs are there
    except SessionError as error:
        fail(str(error), code=2)
    printer = ProgressPrinter(stream=sys.stdout, enabled=not as_json)
    surface = name in SURFACE_DEMOS
    chosen = schedule_for(schedule or ("surface" if surface else "paper"), surface=surface,
                          scale=scale if surface or schedule else scale * 0.05, climb=climb, printer=printer)
    manifest: list[dict[str, Any]] = []
    if surface:
        problem = Problem(kind="surface", surface=name)
    else:
        manifest = _digits_minima(printer, seed)
        problem = Problem(kind="network", model="mlp", data="digits", minima=manifest)
    landscape = {"variant": "star"} if star else {}
    try:
        config = SessionConfig(problem, chosen, device=device, seed=seed, landscape=landscape,
                               checkpoint_interval=checkpoint_every, strategy=strategy,
                               precision="bf16" if bf16 else "fp32", channels_last=channels_last, compile=compile,
                               cudnn_benchmark=cudnn_benchmark)
    except SessionError as error:
        fail(str(error), code=2)
    run_session(config, manifest, hint=name, session=session, detach=detach, as_json=as_json, printer=printer,
                headless=headless)


def _digits_minima(printer: ProgressPrinter, seed: int) -> list[dict[str, Any]]:
    """Four MLP minima on digits, trained once (as `nebtui train` does, sidecars
    included) and kept under the data home."""
    from engine.networks.training import RECIPES
    from sessions.config import Problem
    from sessions.folder import SessionError
    from sessions.home import data_home
    from sessions.minima import manifest_entry
    from sessions.minima_folder import train_one
    from sessions.problem import load_data, model_arguments

    try:
        folder = data_home() / ".demo-minima" / f"digits-mlp-seed{seed}"
    except SessionError as error:
        fail(str(error))
    folder.mkdir(parents=True, exist_ok=True)
    problem = Problem(kind="network", model="mlp", data="digits")
    stems = [folder / f"minimum-{i:02d}" for i in range(DIGITS_MINIMA)]
    missing = [s for s in stems if not (s.with_suffix(".json").exists() and s.with_suffix(".safetensors").exists())]
    if missing:
        dataset = load_data(problem, "cpu")
        arguments = model_arguments(problem)
        for stem in missing:
            i = stems.index(stem)
            train_one(problem, arguments, dataset, RECIPES["digits"], seed * 100 + i, stem,
                      label=f"minimum {i + 1}/{DIGITS_MINIMA} of the digits MLP", device="cpu", quiet=True,
                      say=printer.line)  # not with --json: stdout holds the result only
    return [manifest_entry(s.with_suffix(".safetensors")) for s in stems]

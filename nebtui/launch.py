"""Creating a session from the CLI's options and running or following it."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from typing import Any

from nebtui.failure import fail
from nebtui.follow import follow, read_result
from nebtui.options import RunOptions
from nebtui.progress import ProgressPrinter, estimate_text


def schedule_for(run: RunOptions, *, surface: bool, printer: ProgressPrinter, model: str | None = None,
                 preset_scale: float = 1.0) -> Any:
    """The schedule the options name (default: the surface preset for a
    surface, paper for networks), adjusted by them; the paper's presets take the
    architecture's minibatch per pivot. A default preset runs ``preset_scale`` of
    its steps (times --scale)."""
    from engine.paths.schedule import ScheduleError, load_schedule

    spec = run.schedule or ("surface" if surface else "paper")
    scale = run.scale if run.schedule else run.scale * preset_scale
    try:
        chosen = load_schedule(spec)
        if surface and spec in ("paper", "reference"):
            surface_lr = max(c.lr for c in load_schedule("surface").cycles)
            factor = surface_lr / max(c.lr for c in chosen.cycles)
            chosen = chosen.with_lr_scale(factor)
            printer.note(f"lr scaled by {factor:g} to suit this surface (gradients in the hundreds)")
        if model is not None and spec in ("paper", "reference"):
            chosen = chosen.for_architecture(model)
        if scale != 1.0:  # named so: the config, sessions show and reports say what really runs
            chosen = dataclasses.replace(chosen.scaled(scale), name=f"{chosen.name} x{scale:g}")
        if run.climb:
            chosen = chosen.with_climbing()
        if run.converge is not None:
            change, cycles = parse_converge(run.converge)
            chosen = chosen.replace_band(converge_change=change, converge_cycles=cycles)
    except ScheduleError as error:
        fail(str(error), code=2)
    return chosen


def parse_converge(text: str) -> tuple[float, int]:
    """--converge CHANGE[:CYCLES] as (change, cycles); anything else is one line, exit 2."""
    change_text, _, cycles_text = text.partition(":")
    try:
        change, cycles = float(change_text), int(cycles_text or 2)
    except ValueError:
        change, cycles = math.nan, 0
    if not (0 < change < 1 and cycles >= 1):
        fail(f"--converge {text!r}: give CHANGE[:CYCLES], a fraction in (0, 1) and a whole number of cycles >= 1, "
             "e.g. --converge 0.01:2", code=2)
    return change, cycles


def session_config(run: RunOptions, problem: Any, schedule: Any) -> Any:
    """The session's config (its config.json) from the shared options; a bad value
    fails with one line and exit code 2."""
    from engine.landscape.graph import LandscapeOptions, parse_stop_rule
    from sessions.disk.config import SessionConfig
    from sessions.disk.folder import SessionError
    from sessions.problem.build import parse_data

    try:
        landscape = parse_stop_rule(run.stop)
    except ValueError as error:
        fail(f"--stop: {error}", code=2)
    if run.star:
        landscape = LandscapeOptions(**landscape.given(), variant="star")
    if run.align and run.align_pairwise:
        fail("--align aligns every minimum to the lowest, --align-pairwise each pair's second end to its first: "
             "choose one", code=2)
    if run.data_in == "stream" and not (problem.kind == "network" and parse_data(problem.data).kind == "factory"):
        fail(f"--data-in stream reads a data factory's Dataset batch by batch; {problem.data or 'a surface'} is not "
             f"one: leave --data-in out, or give --data package.module:factory", code=2)
    if run.converge is not None and run.method != "autoneb":
        fail(f"--converge ends AutoNEB's cycles early; a {run.method} curve has none to end: drop --converge "
             "or use --method autoneb", code=2)
    try:
        config = SessionConfig(problem=problem, schedule=schedule, device=run.device, seed=run.seed,
                               landscape=landscape,
                               workers=worker_count(run), checkpoint_interval=run.checkpoint_every,
                               strategy=run.strategy, threads=thread_count(run),
                               precision="bf16" if run.bf16 else "fp32", channels_last=run.channels_last,
                               compile=run.compile, cudnn_benchmark=run.cudnn_benchmark, data_in=run.data_in,
                               method=run.method, align=run.align or run.align_pairwise,
                               alignment="pairwise" if run.align_pairwise else "lowest", cluster=run.cluster)
    except SessionError as error:
        fail(str(error), code=2)
    if run.cluster != "local":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            from sessions.processes.raypool import INSTALL

            fail(f"--cluster {run.cluster} needs Ray, which is not installed: {INSTALL}", code=2)
    return config


def worker_count(run: RunOptions) -> int:
    """--workers as a number: auto is one per usable core; GPUs take one worker each."""
    if run.workers == "auto":
        count = len(os.sched_getaffinity(0))
    elif run.workers.isdigit() and int(run.workers) >= 1:
        count = int(run.workers)
    else:
        fail(f"--workers {run.workers!r}: give a whole number >= 1 of CPU workers, or auto (one per core)", code=2)
    if count > 1 and run.device.startswith("cuda"):
        fail(f"--workers counts CPU workers: with --device {run.device} there is one worker per GPU; "
             "leave --workers out", code=2)
    return count


def thread_count(run: RunOptions) -> int | None:
    """--threads as given (None: the cores / workers, chosen by the session's first runner)."""
    if run.threads is not None and run.threads < 1:
        fail(f"--threads {run.threads}: give a whole number >= 1 of torch threads per CPU worker, or leave it "
             "out (the cores / workers)", code=2)
    return run.threads


def unique_name(home: Any, hint: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{hint}-{stamp}"
    suffix = 2
    while (home / name).exists():
        name = f"{hint}-{stamp}-{suffix}"
        suffix += 1
    return name


def run_session(config: Any, run: RunOptions, *, hint: str,
                printer: ProgressPrinter) -> None:
    """Create the session, start its runner (before any app runs), then follow it:
    in the app on a terminal, as progress lines otherwise (unless detached)."""
    from sessions.disk.folder import SessionError, SessionFolder
    from sessions.disk.home import data_home
    from sessions.processes.spawn import start_runner

    if run.estimate:
        print_estimate(config, printer, as_json=run.as_json)
        return
    try:
        home = data_home()
        folder = SessionFolder.create(home, run.session or unique_name(home, hint), config)
        pid = start_runner(folder)
    except SessionError as error:
        fail(str(error))
    printer.line(f"session {folder.id}: runner pid {pid}, folder {folder.path}")
    from nebtui.startup import accepted, open_new_session

    if run.detach:
        accepted(folder)
        printer.line(f"detached: follow it with nebtui sessions attach {folder.id}")
        return
    if use_app(run.headless, run.as_json):
        open_new_session(folder)
        return
    accepted(folder)
    finish_following(folder, printer, as_json=run.as_json)


def print_estimate(config: Any, printer: ProgressPrinter, *, as_json: bool) -> None:
    """What the session of ``config`` would cost, timed here as its runner would time it
    (the problem built on its first device, at a worker's share of the cores); nothing
    is written."""
    from sessions.processes.devices import cpu_share, resolve_devices, surely_cpu
    from sessions.disk.folder import SessionError
    from sessions.problem.build import build
    from sessions.processes.timing import estimate_session

    try:
        devices = ["cpu"] if surely_cpu(config.device) else resolve_devices(config.device)
        device = devices[0]
        workers = config.workers if device == "cpu" else len(devices)
        threads = (config.threads or cpu_share(config.workers)) if device == "cpu" else None
        built = build(config, device, threads)
        schedule = config.run_schedule()
        event = estimate_session(config, built, schedule, device=device, threads=threads, workers=workers)
    except SessionError as error:
        fail(str(error))
    if as_json:
        print(json.dumps(event.to_dict() if event is not None else None))
    elif event is None:
        printer.line("estimate: no pair to connect")
    else:
        printer.line(f"estimate: {estimate_text(event)}")
        if config.cluster != "local":
            printer.note("timed on this machine: the cluster's nodes may be faster or slower")


# what the printer reads of a saved row (a row without them, or with other values, is evaluated again)
TABLE1_NUMBERS = ("train_loss_minima", "train_loss_saddles", "factor", "test_loss_minima", "test_loss_saddles",
                  "test_error_minima", "test_error_saddles", "test_error_difference", "minima", "saddles")


def table1_row(folder: Any) -> dict[str, Any] | None:
    """The paper's Table 1 row of a finished network session (train and test loss and
    error at the minima and the MST saddles): as its runner saved it, else (a session
    finished by an older runner, or one whose runner could not evaluate it) evaluated here."""
    from sessions.analysis.collect import ReportError, ReportOptions, table1
    from sessions.disk.results import TABLE1_FILE

    try:
        saved = json.loads((folder.results_path / TABLE1_FILE).read_text())
    except (OSError, ValueError):  # none, or damaged: evaluated again
        saved = None
    if isinstance(saved, dict) and all(isinstance(saved.get(key, ""), (int, float, type(None)))
                                       for key in TABLE1_NUMBERS):
        return saved
    try:
        return table1(folder, ReportOptions())
    except ReportError as error:
        print(f"nebtui: no Table 1 row: {error}", file=sys.stderr)
        return None


def use_app(headless: bool, as_json: bool) -> bool:
    """The live app, unless asked for plain output or not on a terminal (batch jobs, pipes)."""
    return not headless and not as_json and sys.stdin.isatty() and sys.stdout.isatty()


def open_app(folder: Any) -> None:
    """Follow the session in the app; leaving it (q) leaves the run going."""
    from nebtui.app import run_app

    run_app(folder)
    print(f"detached from session {folder.id}: nebtui sessions attach {folder.id} | nebtui sessions show {folder.id}")


def finish_following(folder: Any, printer: ProgressPrinter, *, as_json: bool) -> None:
    """Follow a session to its end; print its result; exit non-zero unless it finished or stopped."""
    try:
        view = follow(folder, printer)
    except KeyboardInterrupt:
        print(f"\ndetached: session {folder.id} keeps running; nebtui sessions attach {folder.id}", file=sys.stderr)
        return
    if view.lifecycle == "finished":
        result = read_result(folder)
        if result is None:
            fail(f"session {folder.id} finished but its result file is missing: see {folder.results_path}")
        problem = folder.config().problem
        table1 = table1_row(folder) if problem is not None and problem.kind == "network" else None
        if as_json:
            print(json.dumps({**result, "table1": table1} if table1 is not None else result))
        else:
            printer.summary(result)
            if table1 is not None:
                printer.table1(table1)
        return
    if view.lifecycle == "stopped":
        if view.stopped_because is not None:  # the runner had to stop (a full disk): not what was asked
            fail(f"session {folder.id} stopped: {view.stopped_because}")
        printer.line(f"session {folder.id} stopped: continue it with nebtui sessions resume {folder.id}")
        return
    if view.lifecycle == "failed":
        fail(f"session {folder.id} failed: {view.error}")
    fail(f"the runner of session {folder.id} died: continue from its checkpoint with nebtui sessions resume {folder.id}")

"""``nebtui demo``: explore the minima of an analytic surface."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from nebtui.errors import fail
from nebtui.progress import ProgressPrinter

DEMOS = ("muller-brown", "himmelblau")


def demo(
    name: Annotated[str, typer.Argument(help=f"Which demo: {', '.join(DEMOS)}.", show_default=False)],
    headless: Annotated[bool, typer.Option("--headless", help="Plain progress lines instead of the app.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the final result, as one JSON object.")] = False,
    schedule: Annotated[
        str,
        typer.Option(
            help="AutoNEB schedule: surface (default for surfaces), paper, reference, or a TOML file. "
            "The paper's lr is meant for networks: on a surface, presets are rescaled to the surface's lr.",
        ),
    ] = "surface",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    climb: Annotated[bool, typer.Option("--climb", help="Climbing image in the final phase of the schedule.")] = False,
    scale: Annotated[float, typer.Option(help="Multiply every cycle's steps by this factor.")] = 1.0,
) -> None:
    """Explore the minima of a demo surface with the landscape algorithm and print the MST."""
    if name not in DEMOS:
        fail(f"unknown demo {name!r}: choose one of {', '.join(DEMOS)}")
    from engine.autoneb import DivergedError
    from engine.energy.surfaces import SURFACES
    from engine.explore import Exploration
    from engine.schedule import ScheduleError, load_schedule

    surface = SURFACES[name]()
    try:
        chosen = load_schedule(schedule)
        notes = []
        if schedule in ("paper", "reference"):
            surface_lr = max(c.lr for c in load_schedule("surface").cycles)
            factor = surface_lr / max(c.lr for c in chosen.cycles)
            chosen = chosen.with_lr_scale(factor)
            notes.append(f"lr scaled by {factor:g} to suit this surface (gradients in the hundreds)")
        if scale != 1.0:
            chosen = chosen.scaled(scale)
        if climb:
            chosen = chosen.with_climbing()
    except ScheduleError as error:
        fail(str(error), code=2)
    printer = ProgressPrinter(stream=sys.stdout, enabled=not as_json)
    for note in notes:
        printer.note(note)
    if not headless and not as_json:
        printer.note("the live app is not built yet: printing progress lines")
    exploration = Exploration(surface, surface.minimum_positions(), chosen, seed=seed, on_event=printer)
    try:
        result = exploration.run()
    except DivergedError as error:
        fail(str(error))
    assert result is not None
    if as_json:
        out = result.to_dict()
        out["schedule"] = chosen.name
        out["surface"] = name
        print(json.dumps(out))
    else:
        printer.summary(result)

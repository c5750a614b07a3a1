"""Options shared by `explore` and `demo` (Annotated Typer parameters)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

Schedule = Annotated[
    Optional[str],
    typer.Option(help="AutoNEB schedule: paper, reference, surface, or a TOML file. "
                 "Default: paper for networks, surface for surfaces (presets are rescaled to a surface's lr)."),
]
Device = Annotated[str, typer.Option(help="auto (every GPU, else the CPU), cpu, or cuda:0,1.")]
Session = Annotated[Optional[str], typer.Option(help="Session name (default: the problem and the time).")]
Seed = Annotated[int, typer.Option(help="Random seed.")]
Detach = Annotated[bool, typer.Option("--detach", help="Start the session and return at once.")]
Headless = Annotated[bool, typer.Option("--headless", help="Plain progress lines instead of the app.")]
Climb = Annotated[bool, typer.Option("--climb", help="Climbing image in the final phase of the schedule.")]
Scale = Annotated[float, typer.Option(help="Multiply every cycle's steps by this factor.")]
Json = Annotated[bool, typer.Option("--json", help="Print only the final result, as one JSON object.")]
Star = Annotated[bool, typer.Option("--star", help="Only connect the lowest minimum to all others (the paper's DenseNet runs).")]
CheckpointEvery = Annotated[float, typer.Option(help="Seconds between checkpoints (and at every cycle's end).")]
Strategy = Annotated[str, typer.Option(help="Pivot evaluation: auto (timed), loop or vmap.")]
Bf16 = Annotated[bool, typer.Option("--bf16", help="bf16 autocast of the network's forward passes (GPUs).")]
ChannelsLast = Annotated[bool, typer.Option("--channels-last", help="Channels-last image batches (GPUs).")]
Compile = Annotated[bool, typer.Option("--compile", help="torch.compile the per-pivot loss (loop strategy).")]
CudnnBenchmark = Annotated[bool, typer.Option("--cudnn-benchmark", help="Let cuDNN pick its fastest kernels.")]

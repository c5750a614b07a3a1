"""The options `explore` and `demo` share, declared once (`RunOptions`), and the
decorator that hands them to Typer one by one and to the command as one object;
and `--model-arg` and `--loss`, which `explore` and `train` share (`ModelArgs`, `parse_model_args`,
`LossOption`)."""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass, fields
from typing import Annotated, Any, Callable, Optional

import typer


ModelArgs = Annotated[Optional[list[str]], typer.Option(
    help="Factory keyword argument KEY=VALUE (repeatable; values are read as Python literals); a "
         "torchvision:NAME model's go to its builder, as num_classes=10.")]


LossOption = Annotated[Optional[str], typer.Option(
    help="Loss: cross_entropy, bce, mse, or package.module:function (your module, found as --model's factory "
         "is). A function whose first two parameters are named model and batch is called loss(model, batch) on "
         "each batch as the data gives it (the dict of tensors of dict items, else the pair (inputs, targets)) "
         "and runs the model itself, under --strategy loop; any other is called loss(outputs, targets). Either "
         "returns the batch's mean loss, a scalar. Only cross_entropy and bce give error rates. Default: "
         "cross_entropy (explore: the minima's sidecars' loss, if they name one).", show_default=False)]


def parse_model_args(pairs: list[str]) -> dict[str, object]:
    """``--model-arg`` values as the factory's keyword arguments: a value that reads as a
    Python literal is that literal (3, 0.5, [16, 32], True), any other is text."""
    import ast

    from sessions.errors import SessionError

    parsed: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise SessionError(f"--model-arg {pair!r} is not KEY=VALUE")
        try:
            parsed[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed[key] = value
    return parsed


@dataclass(frozen=True)
class RunOptions:
    """How a session is made and run. Each field is one command-line option."""

    schedule: Annotated[
        Optional[str],
        typer.Option(help="AutoNEB schedule: paper, reference, surface, or a TOML file. "
                     "Default: paper for networks, surface for surfaces (presets are rescaled to a surface's lr)."),
    ] = None
    device: Annotated[str, typer.Option(help="auto (every GPU, else the CPU), cpu, or cuda:0,1.")] = "auto"
    session: Annotated[Optional[str], typer.Option(help="Session name (default: the problem and the time).")] = None
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0
    detach: Annotated[bool, typer.Option("--detach", help="Start the session and return at once.")] = False
    headless: Annotated[bool, typer.Option("--headless", help="Plain progress lines instead of the app.")] = False
    as_json: Annotated[bool, typer.Option("--json", help="Print only the final result, as one JSON object.")] = False
    estimate: Annotated[bool, typer.Option(
        "--estimate", help="Time a few steps of the problem, print what the session would cost on this device "
                           "and worker count, and exit without running it (--json: as one JSON object).")] = False
    climb: Annotated[bool, typer.Option("--climb", help="Climbing image in the final phase of the schedule.")] = False
    scale: Annotated[float, typer.Option(help="Multiply every cycle's steps by this factor.")] = 1.0
    star: Annotated[bool, typer.Option(
        "--star", help="Only connect the lowest minimum to all others (the paper's DenseNet runs).")] = False
    stop: Annotated[str, typer.Option(
        help="When the exploration ends: all-pairs (a path for every pair, the paper's rule), tolerance=VALUE "
             "(the MST's saddle energies within VALUE of each other), relative=VALUE (within VALUE times the "
             "largest), or max-pairs=N. No rule ends before the first spanning tree connects every minimum "
             "(max-pairs below it is overrun, and the end says so).")] = "all-pairs"
    converge: Annotated[Optional[str], typer.Option(
        help="End each pair early once its band has settled: CHANGE[:CYCLES], e.g. 0.01:2 (no pivot added, and "
             "the saddle moved by less than CHANGE of its value, at each of the last CYCLES cycle ends; 2 if "
             "left out). AutoNEB only. Default: every cycle of the schedule runs, as the paper's.",
        show_default=False)] = None
    workers: Annotated[str, typer.Option(
        help="CPU worker processes, each with its share of the cores: a number, or auto (one per core). "
             "With GPUs there is one worker per GPU.")] = "1"
    threads: Annotated[Optional[int], typer.Option(
        help="Torch threads of each CPU worker (default: the cores / workers, stored with the session). A "
             "session's numbers depend on it, never on --workers: two sessions with the same --threads, "
             "--strategy and device give the same paths whatever their worker counts.", show_default=False)] = None
    checkpoint_every: Annotated[float, typer.Option(
        help="Seconds between checkpoints (and at every cycle's end).")] = 60.0
    strategy: Annotated[str, typer.Option(help="Pivot evaluation: auto (timed), loop or vmap.")] = "auto"
    bf16: Annotated[bool, typer.Option("--bf16", help="bf16 autocast of the network's forward passes (GPUs).")] = False
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Channels-last image batches (GPUs).")] = False
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the per-pivot loss (loop strategy).")] = False
    data_in: Annotated[str, typer.Option(
        help="Where a data factory's Datasets go: memory (read whole onto the device), stream (read batch by batch, "
             "the next step's read ahead) or auto (streamed when larger than a quarter of the available memory). "
             "The numbers are the same either way.")] = "auto"
    cudnn_benchmark: Annotated[bool, typer.Option(
        "--cudnn-benchmark", help="Let cuDNN pick its fastest kernels.")] = False
    method: Annotated[str, typer.Option(
        help="How each pair is connected: autoneb, bezier (a quadratic Bezier curve) or polychain (a polygonal "
             "chain with one bend); a curve trains its bend for about the gradient evaluations of the schedule's "
             "AutoNEB band.")] = "autoneb"
    align: Annotated[bool, typer.Option(
        "--align", help="Permute every minimum's hidden units to match the lowest one (weight matching) before "
                        "connecting them; the minima files stay as they are.")] = False
    align_pairwise: Annotated[bool, typer.Option(
        "--align-pairwise", help="Permute the hidden units of each pair's second minimum to match its first "
                                 "(weight matching, pair by pair) before connecting them; the files stay as they "
                                 "are.")] = False
    cluster: Annotated[str, typer.Option(
        help="Where the workers run: local (processes on this machine), ray (the Ray cluster this machine is "
             "part of: a worker per GPU, or --workers CPU workers) or ray://HOST:PORT (README: On a cluster).")] = "local"


def with_run_options() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the shared options: it declares ``run: RunOptions`` where they
    belong in its help; Typer sees one option per field there, and the command gets
    them back as one RunOptions."""
    hints = typing.get_type_hints(RunOptions, include_extras=True)
    shared = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
        for f in fields(RunOptions)
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = list(inspect.signature(command, eval_str=True).parameters.values())
        at = [p.name for p in own].index("run")
        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[:at] + own[at + 1:]]
        parameters[at:at] = shared
        names = [p.name for p in shared]

        @functools.wraps(command)
        def with_options(**values: Any) -> Any:
            run = RunOptions(**{name: values.pop(name) for name in names})
            return command(**values, run=run)

        with_options.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        with_options.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_options

    return decorate

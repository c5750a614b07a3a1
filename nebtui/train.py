"""``nebtui train``: train minima from distinct seeds into a minima folder
(sessions.problem.minima_folder: one safetensors file and one JSON sidecar per minimum);
a minimum whose files exist is not trained again, and several runs may share
the folder (one per GPU, say).

While a minimum trains, its whole training state (weights, BN buffers,
momentum, epoch order, generator) is saved every ``--checkpoint-every``
seconds, and on Ctrl-C or SIGTERM, to ``minimum-NN.partial.safetensors``; the
same command continues from there and ends bit for bit where an uninterrupted
run ends. This module is the command: its options, its lines and its signals."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from nebtui.failure import fail
from nebtui.options import LossOption, ModelArgs, parse_model_args
from nebtui.progress import clock_text


def train(
    model: Annotated[str, typer.Option(help="Architecture: resnet20/32/44/56, densenet40_12, densenet100_12_bc, "
                                            "mlp, small_cnn, torchvision:NAME (a model of torchvision's registry, "
                                            "random weights; give --recipe), or package.module:factory.")],
    data: Annotated[str, typer.Option(help="digits, digits-images, cifar10:/path, cifar100:/path, mnist:/path, "
                                           "fashion-mnist:/path, svhn:/path (torchvision's files), imagefolder:/path "
                                           "(train/ and val/, a folder per class; imagefolder@SIZE:/path crops to "
                                           "SIZE, 32 by default) or package.module:factory (returning "
                                           "engine.networks.datasets.UserData).")],
    out: Annotated[Path, typer.Option(help="Folder for the minima (created).")],
    count: Annotated[int, typer.Option(help="How many minima.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the first minimum; minimum i uses seed + i.")] = 0,
    recipe: Annotated[Optional[str], typer.Option(help="he2016 (ResNets), huang2017 (DenseNets) or digits; "
                                                       "default by architecture (torchvision's models: none).")
                      ] = None,
    scale: Annotated[float, typer.Option(help="Multiply the recipe's steps by this factor.")] = 1.0,
    device: Annotated[str, typer.Option(help="auto (the first GPU, else the CPU), cpu, cuda or cuda:N.")] = "cpu",
    download: Annotated[bool, typer.Option("--download", help="Fetch CIFAR, MNIST, Fashion-MNIST or SVHN into "
                                                              "its folder first (nothing is fetched without it).")
                        ] = False,
    checkpoint_every: Annotated[float, typer.Option(help="Seconds between saves of a minimum's training state "
                                                         "(a killed run continues from the last one).")] = 60.0,
    model_arg: ModelArgs = None,
    loss: LossOption = None,
) -> None:
    """Train minima from distinct random initialisations (He et al. / Huang et al. recipes)."""
    from sessions.disk.config import Problem
    from sessions.processes.devices import resolve_device
    from sessions.errors import SessionError
    from sessions.problem.minima_folder import claim, claimed_by, partial_path, train_one, trained
    from sessions.problem.trust import runs_user_code

    if count < 1:
        fail(f"--count must be at least 1, got {count}", code=2)
    if not scale > 0:
        fail(f"--scale must be a positive number, got {scale}", code=2)
    if not checkpoint_every >= 0:
        fail(f"--checkpoint-every must be a number of seconds >= 0, got {checkpoint_every}", code=2)
    try:
        from sessions.problem.build import absolute_data

        from sessions.problem.build import parse_loss

        data = absolute_data(data)
        loss = parse_loss(loss or "cross_entropy")
        problem = Problem(kind="network", model=model, model_args=parse_model_args(model_arg or []), data=data,
                          loss=loss, import_dir=os.getcwd() if runs_user_code(model, data, loss) else None)
        device = resolve_device(device)
        chosen = _recipe(model, recipe).scaled(scale)
        from sessions.problem.build import build_model, check_fits_and_loss, load_data, model_arguments, resolve_loss

        dataset = load_data(problem, device, download=download)
        arguments = model_arguments(problem, dataset)
        check_fits_and_loss(build_model(problem, dataset), problem, dataset, resolve_loss(problem))
        out.mkdir(parents=True, exist_ok=True)
    except (SessionError, ValueError, OSError) as error:
        fail(str(error), code=2)
    signals = _StopSignals()
    elsewhere: list[int] = []  # minima another nebtui train holds
    with signals:
        for i in range(count):
            stem = out / f"minimum-{i:02d}"
            try:
                claimed = claim(stem)
            except SessionError as error:
                fail(str(error), code=2)
            if claimed is None:
                print(f"minimum {i + 1}/{count}: {stem.name} is being trained by {claimed_by(stem)}, left to it")
                elsewhere.append(i)
                continue
            try:
                if trained(stem):  # checked under the claim: another process may just have finished it
                    print(f"minimum {i + 1}/{count}: {stem.name} already trained, kept")
                    continue
                label = f"minimum {i + 1}/{count}"
                done = train_one(problem, arguments, dataset, chosen, seed + i, stem, label=label, device=device,
                                 checkpoint_every=checkpoint_every, stop=signals.received, say=_say,
                                 progress=lambda p, label=label: _say(_progress_line(label, p)))
            except SessionError as error:
                fail(str(error), code=2)
            except BrokenPipeError:  # our output's reader went away (| head): stop quietly, as Unix tools do
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise typer.Exit(141) from None
            except OSError as error:
                fail(f"cannot write to {out} ({error.strerror or error}): free space or choose another --out", code=1)
            finally:
                claimed.release()
            if done is None:
                print(f"nebtui: stopped; {partial_path(stem).name} keeps minimum {i + 1}'s progress: run the same "
                      f"command to continue", file=sys.stderr)
                raise typer.Exit(128 + signals.number)
    elsewhere = [i for i in elsewhere if not trained(out / f"minimum-{i:02d}")]  # some may be done by now
    if elsewhere:
        print(f"{count - len(elsewhere)} of {count} minima in {out}; {len(elsewhere)} still being trained by other "
              f"processes: explore them once those finish")
    else:
        print(f"{count} minima in {out}: explore them with nebtui explore {out}")


def _say(text: str) -> None:
    print(text, flush=True)


def _progress_line(label: str, p: Any) -> str:
    return (f"{label}: step {p.step}/{p.steps} loss {p.loss:.4f} lr {p.lr:g} ({p.samples_per_second:,.0f} samples/s, "
            f"ETA {clock_text(p.seconds_left)})")


class _StopSignals:
    """Ctrl-C and SIGTERM ask the training to stop after the current step (saving its
    state); a second Ctrl-C stops at once, keeping the last saved state."""

    def __init__(self) -> None:
        self.number = 0
        self._previous: dict[int, Any] = {}

    def received(self) -> bool:
        return self.number != 0

    def _handle(self, number: int, frame: Any) -> None:
        if self.number and number == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C does not wait for the step to end
        self.number = number

    def __enter__(self) -> "_StopSignals":
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def _recipe(model: str, name: str | None) -> Any:
    from engine.networks.training import RECIPES, default_recipe
    from sessions.errors import SessionError

    if name is None:
        return default_recipe(model)
    if name not in RECIPES:
        raise SessionError(f"unknown recipe {name!r}: use one of {', '.join(RECIPES)}")
    return RECIPES[name]

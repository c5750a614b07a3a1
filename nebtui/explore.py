"""``nebtui explore``: connect a folder of trained networks."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from nebtui.failure import fail
from nebtui.launch import run_session, schedule_for, session_config, unique_name, use_app
from nebtui.options import LossOption, ModelArgs, RunOptions, parse_model_args, with_run_options
from nebtui.progress import ProgressPrinter
from nebtui.startup import preload_app


@with_run_options()
def explore(
    minima: Annotated[Path, typer.Argument(help="Folder of minima: .safetensors, or .pt/.pth/.ckpt state dicts "
                                                "(Lightning's too), or Hugging Face-style sub-folders "
                                                "(model.safetensors, sharded or not).", show_default=False)],
    model: Annotated[Optional[str], typer.Option(help="Architecture: mlp, small_cnn, resnet20/32/44/56, densenet40_12, "
                                                      "densenet100_12_bc, torchvision:NAME (a model of torchvision's "
                                                      "registry), or package.module:factory. Default: what the "
                                                      "minima's sidecars (from nebtui train) say.")] = None,
    data: Annotated[Optional[str], typer.Option(help="Training data: digits, digits-images, cifar10:/path, "
                                                     "cifar100:/path, mnist:/path, fashion-mnist:/path, svhn:/path "
                                                     "(torchvision's files), imagefolder:/path (train/ and val/, a "
                                                     "folder per class; imagefolder@SIZE:/path crops to SIZE, 32 "
                                                     "by default) or package.module:factory (returning "
                                                     "engine.networks.datasets.UserData). Default: the sidecars' "
                                                     "data.")] = None,
    model_arg: ModelArgs = None,
    loss: LossOption = None,
    run: RunOptions = RunOptions(),
    download: Annotated[bool, typer.Option("--download", help="Fetch CIFAR, MNIST, Fashion-MNIST or SVHN into "
                                                              "its folder first (nothing is fetched without it).")
                        ] = False,
) -> None:
    """Explore the minima in a folder: AutoNEB paths and their minimum spanning tree."""
    from sessions.disk.config import Problem
    from sessions.processes.devices import parse_devices
    from sessions.disk.folder import SessionError
    from sessions.problem.minima import find_minima, manifest_entry
    from sessions.problem.minima_folder import in_training, read_sidecars, sidecar_arguments, sidecar_data, sidecar_model
    from sessions.problem.build import absolute_data, parse_loss, sidecar_loss
    from sessions.problem.trust import runs_user_code

    if use_app(run.headless, run.as_json) and not run.detach:
        preload_app()  # while this process checks the minima and the runner starts
    printer = ProgressPrinter(stream=sys.stdout, enabled=not run.as_json)
    try:
        files = find_minima(minima)
        training = in_training(Path(minima))
        if training:
            printer.note(f"{', '.join(training)} in {minima} still in training: left out of this session "
                         f"(explore again once nebtui train has finished them)")
        typed_model = model
        model_args = parse_model_args(model_arg or [])
        known = None
        if model is None or data is None:
            known = read_sidecars(files)
        elif loss is None:  # the sidecars' loss, where they agree on one
            try:
                known = read_sidecars(files)
            except SessionError:
                known = None
        if known is not None and loss is None:
            loss = sidecar_loss(known, minima)
        if model is None or data is None:
            if known is None:
                raise SessionError(f"give --model and --data: the minima in {minima} have no sidecars (nebtui train "
                                   "writes them)")
            if model is None:
                model = sidecar_model(known, minima)
            if model == known["model"] and not model_args:
                model_args = sidecar_arguments(known, minima)
            data = data or sidecar_data(known, minima)
        loss = parse_loss(loss or "cross_entropy")
        data = absolute_data(data)  # checks it too
        if download:  # fetching CIFAR is the one check that stays here: the runner never downloads
            from sessions.problem.build import load_data

            load_data(Problem(kind="network", model=model, model_args=model_args, data=data), "cpu", download=True)
        # The model, the data and the minima's shapes and values are checked by the
        # runner (torch is its business, not this process's): its refusal comes back
        # as one line, as from here (nebtui.startup).
        manifest = [manifest_entry(path) for path in files]
        problem = Problem(kind="network", model=model, model_args=model_args, data=data, loss=loss, minima=manifest,
                          import_dir=os.getcwd() if runs_user_code(model, data, loss) else None)
        chosen = schedule_for(run, surface=False, printer=printer, model=model)
        config = session_config(run, problem, chosen)
        parse_devices(run.device)  # the runner checks that its GPUs are there
        run, config = _vouched(run, config, typed_model, data, hint=minima.absolute().name or "minima")
    except SessionError as error:
        fail(str(error), code=2)
    run_session(config, run, hint=minima.absolute().name or "minima", printer=printer)


def _vouched(run: RunOptions, config: Any, typed_model: str | None, data: str, *,
             hint: str) -> tuple[RunOptions, Any]:
    """The options and config with this user's vouch for the model and data factories typed
    here (sessions.problem.trust), so the session's runner, workers and reports may import them; the
    vouch names the session, so the name is chosen here. Zoo names need no vouch; a data
    factory and a loss function always come from the command line (ones in the sidecars are refused)."""
    from sessions.disk.home import data_home
    from sessions.problem.trust import is_data_factory, is_loss_function, is_zoo, tag

    loss = config.problem.loss
    if (typed_model is None or is_zoo(typed_model)) and not is_data_factory(data) and not is_loss_function(loss):
        return run, config
    home = data_home()
    name = run.session or unique_name(home, hint)
    vouch = tag(home, name, config.problem.model, config.problem.model_args, import_dir=config.problem.import_dir,
                data=data, loss=loss)
    return dataclasses.replace(run, session=name), config.model_copy(update={"vouch": vouch})

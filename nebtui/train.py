"""``nebtui train``: train minima from distinct seeds, one safetensors file and
one JSON sidecar per minimum; a minimum whose files exist is not trained again,
so a killed run continues where it stopped."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from nebtui.errors import fail

SIDECAR_VERSION = 1
CURVE_POINTS = 200  # training-loss curve kept in the sidecar, at most this many points


def train(
    model: Annotated[str, typer.Option(help="Architecture: resnet20/32/44/56, densenet40_12, densenet100_12_bc, "
                                            "mlp, small_cnn, or package.module:factory.")],
    data: Annotated[str, typer.Option(help="digits, digits-images, cifar10:/path or cifar100:/path.")],
    out: Annotated[Path, typer.Option(help="Folder for the minima (created).")],
    count: Annotated[int, typer.Option(help="How many minima.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the first minimum; minimum i uses seed + i.")] = 0,
    recipe: Annotated[Optional[str], typer.Option(help="he2016 (ResNets), huang2017 (DenseNets) or digits; "
                                                       "default by architecture.")] = None,
    scale: Annotated[float, typer.Option(help="Multiply the recipe's steps by this factor.")] = 1.0,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    download: Annotated[bool, typer.Option("--download", help="Fetch CIFAR into its folder first.")] = False,
) -> None:
    """Train minima from distinct random initialisations (He et al. / Huang et al. recipes)."""
    from sessions.config import Problem
    from sessions.folder import SessionError

    if count < 1:
        fail(f"--count must be at least 1, got {count}", code=2)
    if not scale > 0:
        fail(f"--scale must be a positive number, got {scale}", code=2)
    try:
        problem = Problem(kind="network", model=model, data=data)
        _check_device(device)
        chosen = _recipe(model, recipe).scaled(scale)
        from sessions.problem import build_model, load_data, model_arguments

        dataset = load_data(problem, device, download=download)
        arguments = model_arguments(problem)
        build_model(problem)
        out.mkdir(parents=True, exist_ok=True)
    except (SessionError, ValueError, OSError) as error:
        fail(str(error), code=2)
    for i in range(count):
        stem = out / f"minimum-{i:02d}"
        if stem.with_suffix(".json").exists() and stem.with_suffix(".safetensors").exists():
            print(f"minimum {i + 1}/{count}: {stem.name} already trained, kept")
            continue
        train_one(problem, arguments, dataset, chosen, seed + i, stem, label=f"minimum {i + 1}/{count}", device=device)
    print(f"{count} minima in {out}: explore them with nebtui explore {out}")


def _check_device(device: str) -> None:
    from sessions.folder import SessionError

    if device == "cpu":
        return
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        raise SessionError(f"device {device!r} is not available here: use cpu" + (
            "" if device.startswith("cuda") else " or cuda:N"))


def _recipe(model: str, name: str | None) -> Any:
    from engine.train import RECIPES, default_recipe
    from sessions.folder import SessionError

    if name is None:
        return default_recipe(model)
    if name not in RECIPES:
        raise SessionError(f"unknown recipe {name!r}: use one of {', '.join(RECIPES)}")
    return RECIPES[name]


def train_one(problem: Any, arguments: dict, dataset: dict, recipe: Any, seed: int, stem: Path, *,
              label: str, device: str, quiet: bool = False) -> dict[str, Any]:
    """Train one minimum and write its weights and sidecar (the sidecar last: it marks the minimum done)."""
    import torch
    from safetensors.torch import save_file

    from engine.energy.network import NetworkEnergy, ParameterLayout
    from engine.train import train as run_recipe
    from sessions.folder import write_atomic
    from sessions.problem import build_model

    torch.manual_seed(seed)
    net = build_model(problem).to(device)
    train_x, train_y = dataset["train"]
    test_x, test_y = dataset["test"]
    started = time.monotonic()

    def progress(step: int, loss: float, lr: float) -> None:
        if quiet:
            return
        rate = step * min(recipe.batch_size, train_x.shape[0]) / max(time.monotonic() - started, 1e-9)
        print(f"{label}: step {step}/{recipe.steps} loss {loss:.4f} lr {lr:g} ({rate:,.0f} samples/s)", flush=True)

    result = run_recipe(net, train_x, train_y, recipe=recipe, seed=seed, prepare=dataset["prepare"],
                        augment=dataset["augment"], progress=progress, every=max(1, recipe.steps // 20))
    seconds = time.monotonic() - started
    energy = NetworkEnergy(net, train_x, train_y, device=device, prepare=dataset["prepare"])
    point = result.parameters.unsqueeze(0)
    train_loss, train_error = energy.metrics(point, train_x, train_y)
    test_loss, test_error = energy.metrics(point, test_x, test_y)
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    stride = max(1, len(result.losses) // CURVE_POINTS)
    sidecar = {
        "version": SIDECAR_VERSION,
        "model": problem.model,
        "model_args": arguments,
        "data": problem.data,
        "seed": seed,
        "recipe": recipe.to_dict(),
        "parameters": ParameterLayout.from_module(net).dim,
        "train": {"loss": float(train_loss[0]), "error": float(train_error[0]), "bn_recalibrated": has_bn},
        "test": {"loss": float(test_loss[0]), "error": float(test_error[0]), "bn_recalibrated": has_bn},
        "curve": {"every": stride, "loss": result.losses[::stride]},
        "seconds": seconds,
        "samples_per_second": recipe.steps * min(recipe.batch_size, train_x.shape[0]) / max(seconds, 1e-9),
    }
    tmp = stem.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp))
    tmp.replace(stem.with_suffix(".safetensors"))
    write_atomic(stem.with_suffix(".json"), (json.dumps(sidecar, indent=1) + "\n").encode())
    print(f"{label}: train loss {sidecar['train']['loss']:.4f} error {sidecar['train']['error']:.2%}, "
          f"test loss {sidecar['test']['loss']:.4f} error {sidecar['test']['error']:.2%}", file=sys.stdout, flush=True)
    return sidecar


def read_sidecars(files: list[Path]) -> dict[str, Any] | None:
    """The model and data all minima's sidecars agree on, or None if any is missing.
    Sidecars that disagree are an error: the minima come from different runs."""
    from sessions.folder import SessionError

    found = []
    for path in files:
        sidecar = path.with_suffix(".json")
        if not sidecar.exists():
            return None
        try:
            found.append(json.loads(sidecar.read_text()))
        except ValueError as error:
            raise SessionError(f"sidecar {sidecar} is not valid JSON ({error}): retrain that minimum or remove it")
    keys = {(s.get("model"), json.dumps(s.get("model_args", {}), sort_keys=True), s.get("data")) for s in found}
    if len(keys) != 1:
        raise SessionError(
            f"the minima's sidecars name different models or data ({len(keys)} kinds): explore one kind at a time"
        )
    model, arguments, data = keys.pop()
    return {"model": model, "model_args": json.loads(arguments), "data": data}

"""From a session's config to the energy and the minima it explores, on a device."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sessions.config import Problem, SessionConfig
from sessions.folder import SessionError
from sessions.minima import flat_minimum, sha256

# zoo name -> (factory import path, input layout of the digits data)
ZOO: dict[str, tuple[str, str]] = {
    "mlp": ("engine.models:mlp", "flat"),
    "small_cnn": ("engine.models:small_cnn", "images"),
}
DATA = ("digits", "digits-images")


@dataclass
class Built:
    energy: Any  # an engine Energy
    minima: Any  # Tensor (M, D)
    names: list[str]  # one per minimum


def _factory(spec: str) -> Callable[..., Any]:
    target = ZOO[spec][0] if spec in ZOO else spec
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SessionError(
            f"unknown model {spec!r}: use one of {', '.join(ZOO)} or package.module:factory"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SessionError(f"cannot import {module_name!r} for model {spec!r} ({error}): check --model") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise SessionError(f"{module_name} has no callable {attribute!r}: check --model {spec}")
    return factory


def build_model(problem: Problem) -> Any:
    factory = _factory(problem.model or "")
    try:
        return factory(**problem.model_args)
    except Exception as error:  # noqa: BLE001 - a user's factory may raise anything
        raise SessionError(f"model {problem.model!r} could not be built ({type(error).__name__}: {error})") from None


def check_model_spec(problem: Problem) -> None:
    """Fail early, in the CLI, on a model or data spec that cannot work."""
    if problem.data not in DATA:
        raise SessionError(f"unknown data {problem.data!r}: use one of {', '.join(DATA)}")
    build_model(problem)


def _data(problem: Problem, device: str) -> tuple[Any, Any, Any, Any]:
    from engine.data import digits

    if problem.data not in DATA:
        raise SessionError(f"unknown data {problem.data!r}: use one of {', '.join(DATA)}")
    split = digits()
    images = problem.data == "digits-images" or ZOO.get(problem.model or "", ("", "flat"))[1] == "images"
    train_x = split.train.images() if images else split.train.inputs
    test_x = split.test.images() if images else split.test.inputs
    return train_x.to(device), split.train.targets.to(device), test_x.to(device), split.test.targets.to(device)


def build(config: SessionConfig, device: str = "cpu") -> Built:
    problem = config.problem
    if problem.kind == "surface":
        from engine.energy.surfaces import SURFACES

        surface = SURFACES[problem.surface]()  # type: ignore[index]
        return Built(surface, surface.minimum_positions(), [f"minimum {i}" for i in range(len(surface.minima))])
    import torch

    from engine.energy.network import NetworkEnergy, ParameterLayout

    model = build_model(problem)
    layout = ParameterLayout.from_module(model)
    vectors, names = [], []
    for entry in problem.minima:
        path = Path(entry["path"])
        if not path.exists():
            raise SessionError(f"minimum {path} is gone: restore it (the session needs its minima files)")
        if entry.get("sha256") and sha256(path) != entry["sha256"]:
            raise SessionError(f"minimum {path} changed since the session started: restore the original file")
        vectors.append(flat_minimum(path, layout))
        names.append(path.stem)
    train_x, train_y, test_x, test_y = _data(problem, device)
    energy = NetworkEnergy(
        model, train_x, train_y, problem.loss, strategy=config.strategy, device=device,
    )
    return Built(energy, torch.stack(vectors).to(device), names)

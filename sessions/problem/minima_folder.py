"""A folder of minima as ``nebtui train`` writes it, shared by several trainers.

Per minimum ``minimum-NN``::

    minimum-NN.safetensors           the weights (a state dict)
    minimum-NN.json                  the sidecar: model, data, seed, recipe, losses; written last,
                                     so its presence marks the minimum done
    minimum-NN.partial.safetensors   the whole training state while it trains (a state file,
                                     sessions.disk.statefile, header key ``nebtui``); gone once done
    .minimum-NN.lock                 the claim: a flock held by the trainer training it

Several trainers (one per GPU, say) may share a folder: each minimum is
claimed by one of them and the others leave it alone. A killed trainer's
claim goes with it (the kernel drops the flock); its partial state stays, and
the same options continue it bit for bit.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sessions.disk import statefile
from sessions.disk.atomic import write_atomic
from sessions.errors import SessionError
from sessions.disk.lock import LockedError, RunnerLock, UnsafeFileError, holder, holder_info
from sessions.problem.minima import PARTIAL_SUFFIX

SIDECAR_VERSION = 1
PARTIAL_VERSION = 1
PARTIAL_KEY = "nebtui"  # the training state's header key
CURVE_POINTS = 200  # training-loss curve kept in the sidecar, at most this many points


def trained(stem: Path) -> bool:
    """Whether the minimum ``stem`` (folder/minimum-NN) is done: weights and sidecar written."""
    return stem.with_suffix(".json").exists() and stem.with_suffix(".safetensors").exists()


def partial_path(stem: Path) -> Path:
    return stem.with_name(stem.name + PARTIAL_SUFFIX)


def _claim_path(stem: Path) -> Path:
    return stem.with_name(f".{stem.name}.lock")


def claim(stem: Path) -> RunnerLock | None:
    """An exclusive claim on one minimum (release it when done), or None when another process holds it."""
    lock = RunnerLock(_claim_path(stem))
    try:
        lock.acquire()
    except LockedError:
        return None
    except UnsafeFileError:
        raise  # a planted link: its own line names it
    except SessionError:
        raise SessionError(f"cannot claim {stem.name} in {stem.parent} (its lock file cannot be written): make the "
                           f"folder writable or choose another --out") from None
    return lock


def claimed_by(stem: Path) -> str:
    """Who holds the claim on ``stem``, in words."""
    pid = holder(_claim_path(stem))
    return f"pid {pid}" if pid is not None else "another process"


def in_training(folder: Path) -> list[str]:
    """The minima of ``folder`` being trained now, or left half-trained: a held claim
    or a saved training state, and no finished files yet."""
    stems = {p.name[1:].removesuffix(".lock") for p in folder.glob(".minimum-*.lock")}
    stems |= {p.name.removesuffix(PARTIAL_SUFFIX) for p in folder.glob(f"*{PARTIAL_SUFFIX}")}
    found = []
    for name in sorted(stems):
        stem = folder / name
        if trained(stem):
            continue
        if partial_path(stem).exists() or holder_info(_claim_path(stem)) is not None:
            found.append(name)
    return found


# ---- a minimum's training state


def identity(problem: Any, arguments: dict, recipe: Any, seed: int) -> dict[str, Any]:
    """What a training state must match to be continued (in its JSON form, as it is saved)."""
    loss = {"loss": problem.loss} if problem.loss != "cross_entropy" else {}  # states saved before --loss match
    return json.loads(json.dumps({"model": problem.model, "model_args": arguments, "data": problem.data,
                                  "recipe": recipe.to_dict(), "seed": seed, **loss}))


def save_partial(path: Path, state: dict, identity: dict, seconds: float) -> None:
    """Save a training state ({"tensors", "meta"}) and the seconds trained so far."""
    header = {"version": PARTIAL_VERSION, "identity": identity, "meta": state["meta"], "seconds": seconds}
    statefile.write(path, state["tensors"], header, key=PARTIAL_KEY)


def load_partial(path: Path, identity: dict) -> tuple[dict, float] | None:
    """The training state at ``path`` and the seconds trained so far; None when there is
    none. A damaged file, or one from other options, is an error (never dropped)."""
    if not path.exists():
        return None
    try:
        tensors, header, _ = statefile.read(path, key=PARTIAL_KEY)
        meta, saved, seconds = header["meta"], header["identity"], float(header["seconds"])
        int(meta["step"]), int(meta["position"]), list(meta["history"])  # noqa: B018 - checks the fields
    except Exception as error:  # noqa: BLE001 - any damage reads the same to the user
        raise SessionError(f"{path} is damaged ({type(error).__name__}): delete it to train that minimum from the "
                           f"start") from None
    if saved != identity:
        changed = sorted(k for k in identity if saved.get(k) != identity[k])
        raise SessionError(f"{path.name} was started with another {', '.join(changed)}: rerun with the same options "
                           f"to continue it, or delete it to start that minimum over")
    return {"tensors": tensors, "meta": meta}, seconds


# ---- training one minimum


@dataclass(frozen=True)
class TrainingProgress:
    step: int
    steps: int
    loss: float
    lr: float
    samples_per_second: float
    seconds_left: float


def train_one(problem: Any, arguments: dict, dataset: dict, recipe: Any, seed: int, stem: Path, *,
              label: str, device: str, quiet: bool = False, checkpoint_every: float = 60.0,
              stop: Callable[[], bool] | None = None, say: Callable[[str], None] | None = None,
              progress: Callable[[TrainingProgress], None] | None = None) -> dict[str, Any] | None:
    """Train one minimum and write its weights and sidecar (the sidecar last: it marks the minimum done).
    Continues from the minimum's training state when there is one, saving it every ``checkpoint_every``
    seconds and when ``stop`` stops the run (then returns None). ``say`` gets the lines worth showing
    (the summary; unless ``quiet``, where it continues from), ``progress`` gets about 20 updates."""
    import torch

    from engine.energy.network import NetworkEnergy
    from engine.networks.layout import ParameterLayout
    from engine.networks.training import train as run_recipe
    from sessions.problem.build import build_model, resolve_loss

    say = say or (lambda text: None)
    loss = resolve_loss(problem)
    torch.manual_seed(seed)
    net = build_model(problem, dataset).to(device)
    train_x, train_y = dataset["train"]
    test_x, test_y = dataset["test"]
    partial, wanted = partial_path(stem), identity(problem, arguments, recipe, seed)
    loaded = load_partial(partial, wanted)
    resume, before = loaded if loaded is not None else (None, 0.0)
    first = 0 if resume is None else int(resume["meta"]["step"])
    if resume is not None and not quiet:
        say(f"{label}: continuing at step {first}/{recipe.steps} from {partial.name}")
    started = time.monotonic()
    last_save = [started]
    batch = min(recipe.batch_size, train_x.shape[0])

    def report(step: int, loss: float, lr: float) -> None:
        if quiet or progress is None:
            return
        seconds = max(time.monotonic() - started, 1e-9)
        progress(TrainingProgress(step, recipe.steps, loss, lr, (step - first) * batch / seconds,
                                  (recipe.steps - step) * seconds / max(step - first, 1)))

    def due(done: int) -> bool:
        return time.monotonic() - last_save[0] >= checkpoint_every

    def keep(state: dict) -> None:
        save_partial(partial, state, wanted, before + time.monotonic() - started)
        last_save[0] = time.monotonic()

    result = run_recipe(net, train_x, train_y, recipe=recipe, seed=seed, prepare=dataset["prepare"],
                        augment=dataset["augment"], progress=report, every=max(1, recipe.steps // 20),
                        loss=loss, resume=resume, checkpoint=keep, checkpoint_due=due, stop=stop)
    if not result.finished:
        return None
    seconds = before + time.monotonic() - started
    energy = NetworkEnergy(net, train_x, train_y, loss, device=device, prepare=dataset["prepare"])
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
        "loss": problem.loss,
        "seed": seed,
        "recipe": recipe.to_dict(),
        "parameters": ParameterLayout.from_module(net).dim,
        "train": {"loss": float(train_loss[0]), "error": _rate(train_error[0]), "bn_recalibrated": has_bn},
        "test": {"loss": float(test_loss[0]), "error": _rate(test_error[0]), "bn_recalibrated": has_bn},
        "curve": {"every": stride, "loss": result.losses[::stride]},
        "seconds": seconds,
        "samples_per_second": recipe.steps * batch / max(seconds, 1e-9),
        "resumed_at_step": first or None,
    }
    write_minimum(stem, net.state_dict(), sidecar)
    partial.unlink(missing_ok=True)
    if sidecar["train"]["error"] is None:  # a loss without an error rate (mse, the user's)
        say(f"{label}: train loss {sidecar['train']['loss']:.4f}, test loss {sidecar['test']['loss']:.4f} "
            f"(no error rate: the loss is {problem.loss})")
    else:
        say(f"{label}: train loss {sidecar['train']['loss']:.4f} error {sidecar['train']['error']:.2%}, "
            f"test loss {sidecar['test']['loss']:.4f} error {sidecar['test']['error']:.2%}")
    return sidecar


def _rate(error: Any) -> float | None:
    """An error rate for the sidecar: None where the loss has none (NaN from the energy)."""
    import math

    return float(error) if math.isfinite(float(error)) else None


def write_minimum(stem: Path, weights: dict[str, Any], sidecar: dict[str, Any]) -> None:
    """Write a finished minimum: its weights (a plain safetensors state dict), then its sidecar."""
    from safetensors.torch import save

    write_atomic(stem.with_suffix(".safetensors"), save({k: v.detach().cpu().contiguous() for k, v in weights.items()}))
    write_atomic(stem.with_suffix(".json"), (json.dumps(sidecar, indent=1) + "\n").encode())


def read_sidecars(files: list[Path]) -> dict[str, Any] | None:
    """The model and data all minima's sidecars agree on, or None if any is missing.
    Sidecars that disagree are an error: the minima come from different runs. What
    they name is data, maybe from someone else: ``sidecar_model``, ``sidecar_arguments``
    and ``sidecar_data`` check it before it is used."""
    found = []
    for path in files:
        sidecar = path.with_suffix(".json")
        if not sidecar.exists():
            return None
        try:
            found.append(json.loads(sidecar.read_text()))
        except (OSError, ValueError) as error:
            raise SessionError(f"sidecar {sidecar} is not valid JSON ({error}): retrain that minimum or "
                               "remove it") from None
        if not isinstance(found[-1], dict):
            raise SessionError(f"sidecar {sidecar} is not a JSON object: retrain that minimum or remove it")
    keys = {json.dumps([s.get("model"), s.get("model_args", {}), s.get("data"), s.get("loss", "cross_entropy")],
                       sort_keys=True) for s in found}
    if len(keys) != 1:
        raise SessionError(
            f"the minima's sidecars name different models or data ({len(keys)} kinds): explore one kind at a time"
        )
    model, arguments, data, loss = json.loads(keys.pop())
    return {"model": model, "model_args": arguments, "data": data, "loss": loss}


def sidecar_model(known: dict[str, Any], folder: Path) -> str:
    """The sidecars' model, if they name a zoo model or a torchvision one (looked up in its
    registry when built); a ``package.module:factory`` is refused (it runs when the user
    types it), and so is anything else."""
    from sessions.problem.trust import ZOO_NAMES, is_zoo

    model = known["model"]
    if is_zoo(model):
        return model
    if isinstance(model, str) and ":" in model:
        raise SessionError(f"the sidecars in {folder} name the model factory {model}, and nebtui runs no code named "
                           f"in a file: if you trust it, pass --model {model}")
    raise SessionError(f"the sidecars in {folder} name the model {model!r}, which is not one of "
                       f"{', '.join(ZOO_NAMES)} or torchvision:NAME: pass --model")


def sidecar_arguments(known: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The sidecars' model arguments, if they are literal values (numbers, text, lists) by name."""
    arguments = known["model_args"]
    if not isinstance(arguments, dict) or not all(isinstance(k, str) and k.isidentifier() and _literal(v)
                                                  for k, v in arguments.items()):
        raise SessionError(f"the sidecars in {folder}: model_args must map argument names to numbers, text, "
                           "true/false or lists of them: fix them, or pass --model-arg")
    return arguments


def sidecar_data(known: dict[str, Any], folder: Path) -> str:
    """The sidecars' data, if it is one of the built-in data sets (digits, cifar10:PATH, ...)."""
    from sessions.problem.build import parse_data

    data = known["data"]
    try:
        spec = parse_data(data if isinstance(data, str) else None)
    except SessionError as error:
        raise SessionError(f"the sidecars in {folder}: {error}, or pass --data") from None
    if spec.factory is not None:
        raise SessionError(f"the sidecars in {folder} name the data factory {data}, and nebtui runs no code named "
                           f"in a file: if you trust it, pass --data {data}")
    return data


def _literal(value: Any) -> bool:
    """A JSON scalar, or a list of them (nested lists allowed): nothing that names code."""
    if isinstance(value, list):
        return all(_literal(item) for item in value)
    return value is None or isinstance(value, (str, int, float, bool))

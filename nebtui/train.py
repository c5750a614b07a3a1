"""``nebtui train``: train minima from distinct seeds, one safetensors file and
one JSON sidecar per minimum; a minimum whose files exist is not trained again.
Several runs may share the folder (one per GPU, say): each minimum is claimed
by one of them (a flock on .minimum-NN.lock) and the others leave it alone.

While a minimum trains, its whole training state (weights, BN buffers,
momentum, epoch order, generator) is saved every ``--checkpoint-every``
seconds, and on Ctrl-C or SIGTERM, to ``minimum-NN.partial.safetensors``; the
same command continues from there and ends bit for bit where an uninterrupted
run ends. The partial file goes once the minimum is written."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from nebtui.errors import fail
from nebtui.progress import clock_text

SIDECAR_VERSION = 1
PARTIAL_VERSION = 1
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
    checkpoint_every: Annotated[float, typer.Option(help="Seconds between saves of a minimum's training state "
                                                         "(a killed run continues from the last one).")] = 60.0,
) -> None:
    """Train minima from distinct random initialisations (He et al. / Huang et al. recipes)."""
    from sessions.config import Problem
    from sessions.folder import SessionError

    if count < 1:
        fail(f"--count must be at least 1, got {count}", code=2)
    if not scale > 0:
        fail(f"--scale must be a positive number, got {scale}", code=2)
    if not checkpoint_every >= 0:
        fail(f"--checkpoint-every must be a number of seconds >= 0, got {checkpoint_every}", code=2)
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
    signals = _StopSignals()
    elsewhere: list[int] = []  # minima another nebtui train holds
    with signals:
        for i in range(count):
            stem = out / f"minimum-{i:02d}"
            try:
                claim = _claim(stem)
            except SessionError as error:
                fail(str(error), code=2)
            if claim is None:
                print(f"minimum {i + 1}/{count}: {stem.name} is being trained by {_holder(stem)}, left to it")
                elsewhere.append(i)
                continue
            try:
                if _trained(stem):  # checked under the claim: another process may just have finished it
                    print(f"minimum {i + 1}/{count}: {stem.name} already trained, kept")
                    continue
                done = train_one(problem, arguments, dataset, chosen, seed + i, stem, label=f"minimum {i + 1}/{count}",
                                 device=device, checkpoint_every=checkpoint_every, stop=signals.received)
            except SessionError as error:
                fail(str(error), code=2)
            except BrokenPipeError:  # our output's reader went away (| head): stop quietly, as Unix tools do
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise typer.Exit(141) from None
            except OSError as error:
                fail(f"cannot write to {out} ({error.strerror or error}): free space or choose another --out", code=1)
            finally:
                claim.release()
            if done is None:
                print(f"nebtui: stopped; {partial_path(stem).name} keeps minimum {i + 1}'s progress: run the same "
                      f"command to continue", file=sys.stderr)
                raise typer.Exit(128 + signals.number)
    elsewhere = [i for i in elsewhere if not _trained(out / f"minimum-{i:02d}")]  # some may be done by now
    if elsewhere:
        print(f"{count - len(elsewhere)} of {count} minima in {out}; {len(elsewhere)} still being trained by other "
              f"processes: explore them once those finish")
    else:
        print(f"{count} minima in {out}: explore them with nebtui explore {out}")


def _trained(stem: Path) -> bool:
    return stem.with_suffix(".json").exists() and stem.with_suffix(".safetensors").exists()


def _lock_path(stem: Path) -> Path:
    return stem.with_name(f".{stem.name}.lock")


def _claim(stem: Path) -> Any:
    """An exclusive claim on one minimum (a flock, freed by the kernel if we die), or None
    when another process holds it: several nebtui train runs (one per GPU) can share a folder."""
    from sessions.folder import SessionError
    from sessions.lock import LockedError, RunnerLock

    lock = RunnerLock(_lock_path(stem))
    try:
        lock.acquire()
    except LockedError:
        return None
    except SessionError:
        raise SessionError(f"cannot claim {stem.name} in {stem.parent} (its lock file cannot be written): make the "
                           f"folder writable or choose another --out") from None
    return lock


def in_training(folder: Path) -> list[str]:
    """The minima of ``folder`` that a nebtui train is training now, or left half-trained:
    a held claim or a saved training state, and no finished files yet."""
    from sessions.lock import holder_info
    from sessions.minima import PARTIAL_SUFFIX

    stems = {p.name[1:].removesuffix(".lock") for p in folder.glob(".minimum-*.lock")}
    stems |= {p.name.removesuffix(PARTIAL_SUFFIX) for p in folder.glob(f"*{PARTIAL_SUFFIX}")}
    found = []
    for name in sorted(stems):
        stem = folder / name
        if _trained(stem):
            continue
        if partial_path(stem).exists() or holder_info(_lock_path(stem)) is not None:
            found.append(name)
    return found


def _holder(stem: Path) -> str:
    from sessions.lock import holder

    pid = holder(_lock_path(stem))
    return f"pid {pid}" if pid is not None else "another process"


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


def partial_path(stem: Path) -> Path:
    from sessions.minima import PARTIAL_SUFFIX

    return stem.with_name(stem.name + PARTIAL_SUFFIX)


def _identity(problem: Any, arguments: dict, recipe: Any, seed: int) -> dict[str, Any]:
    """What a partial state must match to be continued (in its JSON form, as it is saved)."""
    return json.loads(json.dumps({"model": problem.model, "model_args": arguments, "data": problem.data,
                                  "recipe": recipe.to_dict(), "seed": seed}))


def save_partial(path: Path, state: dict, identity: dict, seconds: float) -> None:
    from safetensors.torch import save

    from sessions.folder import write_atomic

    header = {"version": PARTIAL_VERSION, "identity": identity, "meta": state["meta"], "seconds": seconds}
    tensors = {k: v.contiguous() for k, v in state["tensors"].items()}
    write_atomic(path, save(tensors, metadata={"nebtui": json.dumps(header)}))


def load_partial(path: Path, identity: dict) -> tuple[dict, float] | None:
    """The saved training state at ``path`` and the seconds trained so far; None when
    there is none. A damaged file, or one from other options, is an error (never dropped)."""
    from safetensors import safe_open

    from sessions.folder import SessionError

    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = json.loads((handle.metadata() or {})["nebtui"])
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
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


def _check_device(device: str) -> None:
    from sessions.folder import SessionError

    if device == "cpu":
        return
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        raise SessionError(f"device {device!r} is not available here: use cpu" + (
            "" if device.startswith("cuda") else " or cuda:N"))


def _recipe(model: str, name: str | None) -> Any:
    from engine.networks.training import RECIPES, default_recipe
    from sessions.folder import SessionError

    if name is None:
        return default_recipe(model)
    if name not in RECIPES:
        raise SessionError(f"unknown recipe {name!r}: use one of {', '.join(RECIPES)}")
    return RECIPES[name]


def train_one(problem: Any, arguments: dict, dataset: dict, recipe: Any, seed: int, stem: Path, *,
              label: str, device: str, quiet: bool = False, checkpoint_every: float = 60.0,
              stop: Callable[[], bool] | None = None, say: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """Train one minimum and write its weights and sidecar (the sidecar last: it marks the minimum done).
    Continues from the minimum's partial state when there is one; returns None when ``stop`` stopped it.
    ``say`` prints the minimum's summary line (default: to stdout); ``quiet`` drops the progress lines."""
    if say is None:
        say = lambda text: print(text, flush=True)  # noqa: E731
    import torch
    from safetensors.torch import save_file

    from engine.energy.network import NetworkEnergy, ParameterLayout
    from engine.networks.training import train as run_recipe
    from sessions.folder import write_atomic
    from sessions.problem import build_model

    torch.manual_seed(seed)
    net = build_model(problem).to(device)
    train_x, train_y = dataset["train"]
    test_x, test_y = dataset["test"]
    partial, identity = partial_path(stem), _identity(problem, arguments, recipe, seed)
    loaded = load_partial(partial, identity)
    resume, before = loaded if loaded is not None else (None, 0.0)
    first = 0 if resume is None else int(resume["meta"]["step"])
    if resume is not None and not quiet:
        print(f"{label}: continuing at step {first}/{recipe.steps} from {partial.name}", flush=True)
    started = time.monotonic()
    last_save = [started]

    def progress(step: int, loss: float, lr: float) -> None:
        if quiet:
            return
        seconds = max(time.monotonic() - started, 1e-9)
        rate = (step - first) * min(recipe.batch_size, train_x.shape[0]) / seconds
        left = (recipe.steps - step) * seconds / max(step - first, 1)
        print(f"{label}: step {step}/{recipe.steps} loss {loss:.4f} lr {lr:g} ({rate:,.0f} samples/s, "
              f"ETA {clock_text(left)})", flush=True)

    def due(done: int) -> bool:
        return time.monotonic() - last_save[0] >= checkpoint_every

    def keep(state: dict) -> None:
        save_partial(partial, state, identity, before + time.monotonic() - started)
        last_save[0] = time.monotonic()

    result = run_recipe(net, train_x, train_y, recipe=recipe, seed=seed, prepare=dataset["prepare"],
                        augment=dataset["augment"], progress=progress, every=max(1, recipe.steps // 20),
                        resume=resume, checkpoint=keep, checkpoint_due=due, stop=stop)
    if not result.finished:
        return None
    seconds = before + time.monotonic() - started
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
        "resumed_at_step": first or None,
    }
    tmp = stem.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp))
    tmp.replace(stem.with_suffix(".safetensors"))
    write_atomic(stem.with_suffix(".json"), (json.dumps(sidecar, indent=1) + "\n").encode())
    partial.unlink(missing_ok=True)
    say(f"{label}: train loss {sidecar['train']['loss']:.4f} error {sidecar['train']['error']:.2%}, "
        f"test loss {sidecar['test']['loss']:.4f} error {sidecar['test']['error']:.2%}")
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

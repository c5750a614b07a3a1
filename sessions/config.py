"""A session's configuration: what to explore and how. Typed, validated at the
edge, stored as config.json in the session folder."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

from engine.curves.runs import METHODS
from sessions.errors import SessionError

SURFACE_NAMES = ("muller-brown", "himmelblau")
DEFAULT_CHECKPOINT_INTERVAL = 60.0  # seconds


@dataclass(frozen=True)
class Problem:
    """What the energy is: an analytic surface, or a network on data with minima files."""

    kind: str  # "surface" | "network"
    surface: str | None = None  # surface name
    model: str | None = None  # zoo name or "package.module:factory"
    model_args: dict[str, Any] = field(default_factory=dict)
    data: str | None = None  # "digits"
    loss: str = "cross_entropy"
    minima: list[dict[str, Any]] = field(default_factory=list)  # the manifest: path, sha256, parameters
    # where a package.module:factory is imported from first, as python -m would: the folder the user
    # typed the command in (the runner's own working directory is the session folder, never searched)
    import_dir: str | None = None

    def problems(self) -> list[str]:
        found = []
        if self.kind == "surface":
            if self.surface not in SURFACE_NAMES:
                found.append(f"unknown surface {self.surface!r}: use one of {', '.join(SURFACE_NAMES)}")
        elif self.kind == "network":
            if not self.model:
                found.append("a network session needs a model (--model)")
            if not self.data:
                found.append("a network session needs data (--data)")
            if len(self.minima) < 2:
                found.append(f"a network session needs at least 2 minima, got {len(self.minima)}")
        else:
            found.append(f"unknown problem kind {self.kind!r}: use surface or network")
        return found


def cluster_problems(cluster: Any, device: str = "auto") -> list[str]:
    """What is wrong with a ``--cluster`` value (local, ray, ray://HOST:PORT) and the device beside it."""
    if cluster not in ("local", "ray"):
        host, _, port = str(cluster).removeprefix("ray://").rpartition(":")
        if not (isinstance(cluster, str) and cluster.startswith("ray://") and host and port.isdigit()):
            return [f"unknown cluster {cluster!r}: use local, ray (the Ray cluster this machine is part of) "
                    "or ray://HOST:PORT"]
    if cluster != "local" and isinstance(device, str) and device.strip().startswith("cuda:"):
        return [f"--device {device} names GPUs of this machine: on a cluster use --device auto (every GPU of "
                "the cluster, else its CPUs), cuda (its GPUs, or refuse) or cpu"]
    return []


@dataclass(frozen=True)
class SessionConfig:
    problem: Problem
    schedule: dict[str, Any]  # Schedule.to_dict()
    device: str = "auto"  # auto | cpu | cuda:0,1
    seed: int = 0
    landscape: dict[str, Any] = field(default_factory=dict)  # Landscape options: variant, stop, tolerance, ...
    checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL
    workers: int = 1  # CPU workers (each with its share of the cores); GPUs: one worker per device
    strategy: str = "auto"  # network energy: auto | loop | vmap
    # GPU speed options of the network energy (each also runs on the CPU)
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    channels_last: bool = False
    compile: bool = False  # torch.compile of the per-pivot loss
    cudnn_benchmark: bool = False
    # How each pair is connected, and whether the minima are aligned first
    method: str = "autoneb"  # autoneb | bezier | polychain (a curve's budget: engine.curves.runs.curve_schedule)
    align: bool = False  # permute every minimum's hidden units to match the lowest one (networks)
    cluster: str = "local"  # local (worker processes here) | ray (the Ray cluster here) | ray://HOST:PORT
    # This user's tag for a package.module:factory model (sessions.trust): the factory is imported only
    # when the tag verifies, so a session folder copied from elsewhere runs none of its code
    vouch: str | None = None

    def __post_init__(self) -> None:
        found = self.problem.problems()
        if not (isinstance(self.checkpoint_interval, (int, float)) and math.isfinite(self.checkpoint_interval)
                and self.checkpoint_interval > 0):
            found.append(f"checkpoint interval must be a positive number of seconds, got {self.checkpoint_interval!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            found.append(f"workers must be a whole number >= 1 (CPU worker processes), got {self.workers!r}")
        if self.strategy not in ("auto", "batched", "loop", "vmap"):
            found.append(f"unknown strategy {self.strategy!r}: use auto, batched, loop or vmap")
        if self.precision not in ("fp32", "bf16"):
            found.append(f"unknown precision {self.precision!r}: use fp32 or bf16")
        if self.method not in METHODS:
            found.append(f"unknown method {self.method!r}: use {', '.join(METHODS[:-1])} or {METHODS[-1]}")
        if not isinstance(self.align, bool):
            found.append(f"align must be true or false, got {self.align!r}")
        elif self.align and self.problem.kind != "network":
            found.append("--align permutes the hidden units of networks: a surface has none; leave --align out")
        found += cluster_problems(self.cluster, self.device)
        if found:
            raise SessionError("; ".join(found))

    def run_schedule(self) -> Any:
        """What each pair runs: the AutoNEB schedule, or the curve's schedule the method
        derives from it (engine.curves.runs.method_schedule). Every process that runs,
        times, shows or reports the session's pairs takes it from here."""
        from engine.curves.runs import method_schedule
        from engine.neb.schedule import schedule_from_dict

        return method_schedule(self.method, schedule_from_dict(self.schedule))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> "SessionConfig":
        """The config as read back from JSON; what is missing, of the wrong type or out
        of range is a SessionError with the first such field."""
        damage = config_damage(d, complete=True)
        if damage is not None:
            raise SessionError(damage)
        from engine.neb.schedule import ScheduleError, schedule_from_dict

        try:
            schedule_from_dict(d["schedule"])
        except ScheduleError as error:
            raise SessionError("; ".join(error.lines)) from None
        d = dict(d)
        d["problem"] = Problem(**d["problem"])
        return cls(**d)


# ---- reading config.json back: every field's JSON type, checked before anything uses it

_TYPE_WORDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false", dict: "an object",
               list: "a list", type(None): "null"}
LANDSCAPE_KEYS = {"variant": str, "stop": str, "tolerance": float, "relative": bool, "max_pairs": int}
REQUIRED = {"problem", "schedule"}


def _json_kinds(hint: Any) -> tuple[type, ...]:
    """The JSON value kinds a field's annotation admits (``str | None`` -> str, NoneType)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(kind for arg in typing.get_args(hint) for kind in _json_kinds(arg))
    if hint is Any:
        return (object,)
    if dataclasses.is_dataclass(hint):
        return (dict,)
    return (typing.get_origin(hint) or hint,)


def _fits(value: Any, kinds: tuple[type, ...]) -> bool:
    """JSON's kinds, as Python reads them: true is not a number, 3 is a float as well."""
    if isinstance(value, bool):
        return bool in kinds or object in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, kinds)


def _field_damage(raw: Any, cls: type, where: str, complete: bool, required: set[str]) -> str | None:
    if not isinstance(raw, Mapping):
        return f"{where.rstrip('.') or 'the file'} is {_json_word(raw)}, not an object"
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key, value in raw.items():
        if key not in known:
            if complete:
                return f"unknown field {where}{key!r}"
            continue
        kinds = _json_kinds(hints[key])
        if not _fits(value, kinds):
            wanted = " or ".join(_TYPE_WORDS.get(kind, kind.__name__) for kind in kinds)
            return f"{where}{key} is {_json_word(value)}, not {wanted}"
    missing = sorted(required - set(raw)) if complete else []
    return f"{where}{missing[0]} is missing" if missing else None


def _json_word(value: Any) -> str:
    """The value as JSON writes it, shortened."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _minima_damage(minima: list[Any]) -> str | None:
    for i, entry in enumerate(minima):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
            return f"problem.minima[{i}] is not an entry with a path"
        if not isinstance(entry.get("sha256", ""), str):
            return f"problem.minima[{i}].sha256 is not text"
    return None


def _landscape_damage(landscape: Mapping[str, Any]) -> str | None:
    for key, value in landscape.items():
        if key not in LANDSCAPE_KEYS:
            return f"unknown field landscape.{key!r}"
        if not (_fits(value, (LANDSCAPE_KEYS[key],)) or (key == "max_pairs" and value is None)):
            return f"landscape.{key} is {_json_word(value)}, not {_TYPE_WORDS[LANDSCAPE_KEYS[key]]}"
    return None


def config_damage(raw: Any, *, complete: bool) -> str | None:
    """What is wrong with a config read from JSON, in words (the first thing found), or None.
    ``complete``: every required field must be there (a config to run); else only the fields
    present are checked (a listing of sessions reads what there is)."""
    damage = _field_damage(raw, SessionConfig, "", complete, REQUIRED)
    if damage is None and "problem" in raw:
        damage = _field_damage(raw["problem"], Problem, "problem.", complete, {"kind"})
        if damage is None:
            damage = _minima_damage(raw["problem"].get("minima", []))
    if damage is None and "landscape" in raw:
        damage = _landscape_damage(raw["landscape"])
    return damage


def read_config(folder: Any) -> SessionConfig:
    """A session's config as a SessionConfig; a damaged config.json is one line naming the session."""
    from sessions.folder import damaged_config

    raw = folder.config()
    try:
        return SessionConfig.from_dict(raw)
    except SessionError as error:
        raise damaged_config(folder.id, str(error)) from None


def runnable_config(folder: Any) -> SessionConfig:
    """A session's config to run or report: read_config, and its model factory, unless a zoo
    name, vouched for by this user (sessions.trust); else the one line that says how to vouch."""
    from sessions import trust

    config = read_config(folder)
    model = config.problem.model
    if config.problem.kind == "network" and not trust.is_zoo(model):
        home = folder.path.parent
        if not trust.vouched(home, folder.id, model, config.problem.model_args, config.vouch,
                             import_dir=config.problem.import_dir):
            raise SessionError(trust.refusal(folder.id, model))
    return config

"""A session's configuration: what to explore and how. Typed, validated at the
edge, stored as config.json in the session folder."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.curves.runs import METHODS
from sessions.folder import SessionError

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SessionConfig":
        try:
            d = dict(d)
            d["problem"] = Problem(**d["problem"])
            return cls(**d)
        except (KeyError, TypeError) as error:
            raise SessionError(f"the session's config.json is damaged ({error}): start a new session") from None

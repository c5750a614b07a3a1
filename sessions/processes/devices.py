"""The ``--device`` option, one grammar everywhere: ``auto`` (every visible GPU,
else the CPU), ``cpu``, ``cuda`` (the first GPU) or ``cuda:0,1``.

``parse_devices`` checks the spelling without torch (the CLI of explore and
demo stays fast); ``resolve_devices`` also checks that the GPUs are there and
names what is visible when they are not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sessions.errors import SessionError

GRAMMAR = "auto, cpu, cuda or cuda:0,1"


@dataclass(frozen=True)
class DeviceSpec:
    kind: str  # "auto" | "cpu" | "cuda"
    indices: tuple[int, ...] = ()  # the GPUs of "cuda" (at least one)


def parse_devices(spec: str) -> DeviceSpec:
    """The device option as written; a misspelt one is a SessionError."""
    text = spec.strip() if isinstance(spec, str) else ""
    if text in ("auto", "cpu"):
        return DeviceSpec(text)
    name, colon, numbers = text.partition(":")
    if name == "cuda":
        if not colon:
            return DeviceSpec("cuda", (0,))
        parts = numbers.split(",")
        if all(p.strip().isdigit() for p in parts):
            return DeviceSpec("cuda", tuple(int(p) for p in parts))  # a GPU named twice runs two workers
    raise SessionError(f"unknown device {spec!r}: use {GRAMMAR}")


# What a machine that can run CUDA (or ROCm, which torch also calls cuda) has:
# without any of them no GPU can be visible, and ``auto`` is the CPU without torch.
GPU_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd")


def surely_cpu(spec: str) -> bool:
    """The option names the CPU, known without importing torch: ``cpu``, or ``auto``
    on a machine with no GPU driver (or with CUDA_VISIBLE_DEVICES set empty)."""
    parsed = parse_devices(spec)
    if parsed.kind == "cpu":
        return True
    no_driver = not any(os.path.exists(path) for path in GPU_DRIVER_PATHS)
    return parsed.kind == "auto" and (no_driver or os.environ.get("CUDA_VISIBLE_DEVICES") == "")


def resolve_devices(spec: str) -> list[str]:
    """The torch devices the option names: ["cpu"], or ["cuda:0", "cuda:1", ...]."""
    parsed = parse_devices(spec)
    if surely_cpu(spec):
        return ["cpu"]
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if parsed.kind == "auto":
        return [f"cuda:{i}" for i in range(visible)] or ["cpu"]
    missing = [i for i in parsed.indices if i >= visible]
    if missing:
        seen = ("no GPU is visible here" if visible == 0 else "only cuda:0 is visible" if visible == 1
                else f"{visible} GPUs are visible (cuda:0 to cuda:{visible - 1})")
        raise SessionError(f"device {spec!r} asks for GPU {missing[0]}, but {seen}: use --device auto or cpu")
    return [f"cuda:{i}" for i in parsed.indices]


def resolve_device(spec: str) -> str:
    """The one torch device of a command that uses one (``auto``: the first GPU, else the CPU)."""
    devices = resolve_devices(spec)
    if len(devices) > 1 and parse_devices(spec).kind == "cuda":
        raise SessionError(f"device {spec!r} names {len(devices)} GPUs, this command uses one: give cuda:N "
                           "(run one command per GPU)")
    return devices[0]


def cpu_share(workers: int) -> int:
    """Torch threads of each of ``workers`` CPU workers on this machine: its share of
    the cores this process may use, at least one."""
    return max(1, len(os.sched_getaffinity(0)) // max(1, workers))

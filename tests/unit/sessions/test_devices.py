"""The --device option: one grammar for the runner, nebtui train and nebtui report."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sessions.processes.devices import DeviceSpec, parse_devices, resolve_device, resolve_devices
from sessions.errors import SessionError


@pytest.mark.parametrize("spec, parsed", [
    ("auto", DeviceSpec("auto")), ("cpu", DeviceSpec("cpu")), (" cpu ", DeviceSpec("cpu")),
    ("cuda", DeviceSpec("cuda", (0,))), ("cuda:1", DeviceSpec("cuda", (1,))), ("cuda:0,1", DeviceSpec("cuda", (0, 1))),
])
def test_the_grammar(spec, parsed):
    assert parse_devices(spec) == parsed


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "cuda:0;1", "CPU", "", "mps"])
def test_a_misspelt_device_is_one_line(spec):
    with pytest.raises(SessionError) as caught:
        parse_devices(spec)
    assert str(caught.value) == f"unknown device {spec!r}: use auto, cpu, cuda or cuda:0,1"


def test_parsing_needs_no_torch():
    code = "import sys; from sessions.processes.devices import parse_devices; parse_devices('cuda:0,1'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_resolving_names_what_is_visible():
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert resolve_devices("cpu") == ["cpu"] and resolve_device("cpu") == "cpu"
    assert resolve_devices("auto") == ([f"cuda:{i}" for i in range(visible)] or ["cpu"])
    assert resolve_device("auto") == ("cuda:0" if visible else "cpu")
    with pytest.raises(SessionError, match=rf"device 'cuda:{visible}' asks for GPU {visible}, but .*visible.*: use "
                                           r"--device auto or cpu"):
        resolve_devices(f"cuda:{visible}")
    if visible >= 2:
        with pytest.raises(SessionError, match="this command uses one: give cuda:N"):
            resolve_device("cuda:0,1")


def test_auto_is_the_cpu_without_torch_where_no_gpu_can_be():
    import os

    from sessions.processes.devices import GPU_DRIVER_PATHS, surely_cpu

    code = ("import sys; from sessions.processes.devices import resolve_devices; print(resolve_devices('auto'), "
            "'torch' in sys.modules)")
    hidden = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                            env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert hidden.stdout.strip() == "['cpu'] False"
    assert surely_cpu("cpu") and not surely_cpu("cuda:0")
    assert surely_cpu("auto") == (not any(os.path.exists(p) for p in GPU_DRIVER_PATHS)
                                  or os.environ.get("CUDA_VISIBLE_DEVICES") == "")

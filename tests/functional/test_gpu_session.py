"""On a machine with a GPU: a whole session (runner, a CUDA worker, minima
evaluated on the GPU) and its report on the GPU, with every speed option. CI has
no GPU, so these run only where one is visible (pytest tests/functional/test_gpu_session.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

NEBTUI = str(Path(sys.executable).with_name("nebtui"))
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
def test_built_minima_stay_on_the_cpu_when_the_energy_is_on_the_gpu(tmp_path):
    from safetensors.torch import save_file

    from engine.networks.models import mlp
    from sessions.disk.config import Problem, SessionConfig
    from sessions.problem.minima import manifest_entry
    from sessions.problem.build import build

    files = []
    for seed in range(2):
        torch.manual_seed(seed)
        path = tmp_path / f"m{seed}.safetensors"
        save_file({k: v.contiguous() for k, v in mlp().state_dict().items()}, str(path))
        files.append(manifest_entry(path))
    config = SessionConfig(problem=Problem(kind="network", model="mlp", data="digits", minima=files), schedule={})
    built = build(config, "cuda:0")
    assert built.minima.device.type == "cpu"
    assert built.energy.device.type == "cuda"
    losses = built.energy.evaluate(built.minima)
    assert losses.device.type == "cpu" and torch.isfinite(losses).all()


@needs_cuda
@pytest.mark.timeout(600)
@pytest.mark.parametrize("speed", [(), ("--bf16", "--channels-last", "--cudnn-benchmark")], ids=["fp32", "fast"])
def test_a_digits_session_and_its_report_run_on_the_gpu(tmp_path, speed):
    env = {**os.environ, "NEBTUI_HOME": str(tmp_path / "home")}
    done = subprocess.run([NEBTUI, "demo", "digits", "--device", "cuda:0", "--json", "--scale", "0.05",
                           "--session", "gpu", *speed], capture_output=True, text=True, timeout=540,
                          env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert len(result["mst"]) == 3
    report = subprocess.run([NEBTUI, "report", "gpu", "--device", "cuda:0", "--format", "json", "--out",
                             str(tmp_path / "report")], capture_output=True, text=True, timeout=540,
                            env=env)
    assert report.returncode == 0, report.stderr

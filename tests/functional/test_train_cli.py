"""`nebtui train` as a user runs it, and `explore` on its output without options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

NEBTUI = str(Path(sys.executable).with_name("nebtui"))


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NEBTUI, *args], capture_output=True, text=True, timeout=timeout)


def test_train_writes_minima_and_sidecars_and_resumes_by_minimum(tmp_path):
    out = tmp_path / "minima"
    first = run("train", "--model", "mlp", "--data", "digits", "--count", "1", "--out", str(out), "--scale", "0.1")
    assert first.returncode == 0, first.stderr
    again = run("train", "--model", "mlp", "--data", "digits", "--count", "2", "--out", str(out), "--scale", "0.1")
    assert again.returncode == 0, again.stderr
    assert "minimum 1/2: minimum-00 already trained, kept" in again.stdout
    assert "minimum 2/2: step 150/150" in again.stdout
    sidecars = [json.loads((out / f"minimum-0{i}.json").read_text()) for i in range(2)]
    assert [s["seed"] for s in sidecars] == [0, 1]
    for sidecar in sidecars:
        assert sidecar["model"] == "mlp" and sidecar["data"] == "digits" and sidecar["recipe"]["steps"] == 150
        assert sidecar["train"]["loss"] < sidecar["curve"]["loss"][0]  # it trained
        assert 0 <= sidecar["test"]["error"] < 0.5 and sidecar["train"]["bn_recalibrated"] is False
    weights = [load_file(str(out / f"minimum-0{i}.safetensors")) for i in range(2)]
    assert not torch.equal(weights[0]["0.weight"], weights[1]["0.weight"])  # distinct seeds

    explored = run("explore", str(out), "--scale", "0.005", "--headless", "--strategy", "vmap")
    assert explored.returncode == 0, explored.stderr
    assert "session finished (all pairs), 1 pairs" in explored.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("--model", "mlp", "--data", "mnist"), "unknown data 'mnist'"),
        (("--model", "nope", "--data", "digits"), "unknown model 'nope'"),
        (("--model", "resnet20", "--data", "cifar10:/no/such"), "does not exist; pass --download to fetch it"),
        (("--model", "mlp", "--data", "digits", "--recipe", "fast"), "unknown recipe 'fast'"),
        (("--model", "mlp", "--data", "digits", "--count", "0"), "--count must be at least 1"),
    ],
)
def test_bad_options_are_one_clear_line(tmp_path, args, message):
    done = run("train", *args, "--out", str(tmp_path / "m"))
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_explore_without_sidecars_asks_for_the_model(tmp_path):
    folder = tmp_path / "bare"
    folder.mkdir()
    for i in range(2):
        torch.save({"w": torch.zeros(1)}, folder / f"m{i}.pt")
    done = run("explore", str(folder))
    assert done.returncode == 2
    assert "give --model and --data" in done.stderr

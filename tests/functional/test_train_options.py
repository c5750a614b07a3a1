"""What a new user types into `nebtui train` and `explore`: a model that does not take
the data, --model-arg, and a factory of their own in the folder they work in (found
there as `python -m` would find it, with no PYTHONPATH)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from cli_runs import assert_one_clear_line, in_process, logged_events, nebtui, wait_until
from safetensors.torch import load_file

RESNET_ON_DIGITS = ("model resnet20 does not fit the data digits: its first layer takes images of 3 channels "
                    "(N, 3, H, W), and digits gives inputs of shape (N, 1, 8, 8)")
# one pair of two minima, in two short cycles: the runner and its worker import the factory
SHORT_SCHEDULE = """name = "short"
[band]
initial_pivots = 3
max_pivots = 5
[[phase]]
repeat = 2
steps = 10
lr = 0.1
optimiser = "SGD"
batch_size = 128
insert = true
"""


@pytest.fixture
def own_models(tmp_path, monkeypatch) -> Path:
    """A folder holding the user's own module mymodels.py (a digits MLP of any width), and no
    PYTHONPATH: the folder is found only by working in it."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "mymodels.py").write_text(textwrap.dedent("""
        from torch import nn

        def make(classes=10, hidden=16):
            return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    """))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    return work


def test_a_model_that_does_not_take_the_data_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "minima"

    done = in_process("train", "--model", "resnet20", "--data", "digits", "--out", str(out))

    assert done.returncode == 2
    assert_one_clear_line(done, RESNET_ON_DIGITS)
    assert not out.exists()


def test_explore_says_the_same_of_minima_it_cannot_feed_the_data(tmp_path, nebtui_home):
    import torch
    from safetensors.torch import save_file

    from engine.networks.models import ZOO

    minima = tmp_path / "resnets"
    minima.mkdir()
    for seed in range(2):
        torch.manual_seed(seed)
        weights = ZOO["resnet20"](classes=10).state_dict()
        save_file({k: v.contiguous() for k, v in weights.items()}, str(minima / f"m{seed}.safetensors"))

    done = in_process("explore", str(minima), "--model", "resnet20", "--data", "digits", "--device", "cpu",
                      "--headless", home=nebtui_home)

    assert_one_clear_line(done, RESNET_ON_DIGITS)


def test_a_factory_in_the_working_folder_trains_and_explores_with_its_model_args(own_models, nebtui_home):
    done = nebtui(None, "train", "--model", "mymodels:make", "--model-arg", "hidden=8", "--data", "digits",
                  "--count", "2", "--scale", "0.02", "--out", "minima", cwd=own_models)

    assert done.returncode == 0, done.stderr
    sidecar = json.loads((own_models / "minima" / "minimum-00.json").read_text())
    assert sidecar["model"] == "mymodels:make" and sidecar["model_args"] == {"hidden": 8, "classes": 10}
    assert tuple(load_file(str(own_models / "minima" / "minimum-00.safetensors"))["0.weight"].shape) == (8, 64)

    (own_models / "short.toml").write_text(SHORT_SCHEDULE)
    done = nebtui(nebtui_home, "explore", "minima", "--model", "mymodels:make", "--model-arg", "hidden=8",
                  "--data", "digits", "--schedule", "short.toml", "--device", "cpu", "--strategy", "loop",
                  "--session", "own", "--detach", cwd=own_models)

    assert done.returncode == 0, done.stderr
    events = nebtui_home / "own" / "events.jsonl"
    ended = wait_until(lambda: [e["kind"] for e in logged_events(events)
                                if e["kind"] in ("session_finished", "session_failed")], 120, "the session's end")
    assert ended == ["session_finished"], [e for e in logged_events(events) if e["kind"] == "session_failed"]


@pytest.mark.parametrize("argument, message", [
    ("hidden", "--model-arg 'hidden' is not KEY=VALUE"),
    ("width=3", "model mymodels:make takes no argument 'width': it takes classes, hidden (check --model-arg)"),
])
def test_a_bad_model_arg_is_one_line(own_models, argument, message):
    done = nebtui(None, "train", "--model", "mymodels:make", "--model-arg", argument, "--data", "digits",
                  "--out", "minima", cwd=own_models)

    assert done.returncode == 2
    assert_one_clear_line(done, message)
    assert not (own_models / "minima").exists()


def test_a_factory_not_in_the_working_folder_says_where_to_run(own_models, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    done = nebtui(None, "train", "--model", "mymodels:make", "--data", "digits", "--out", "minima", cwd=elsewhere)

    assert done.returncode == 2
    assert_one_clear_line(done, f"cannot import 'mymodels' for model 'mymodels:make' from {elsewhere}: run nebtui "
                                "in the folder that holds mymodels.py (or the package mymodels/), or add that "
                                "folder to PYTHONPATH")
    assert not (elsewhere / "minima").exists()

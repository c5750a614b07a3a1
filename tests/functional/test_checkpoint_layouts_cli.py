"""nebtui explore over minima as researchers save them (a Lightning .ckpt, a DDP
state dict, Hugging Face-style folders): the command accepts them, refuses what
is not weights or does not fit in one line, and a resumed session sees a changed
shard. The command line runs in this process; --estimate builds the problem here
as the runner would, and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cli_runs import assert_one_clear_line, in_process

pytestmark = pytest.mark.timeout(120)

SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")


class Recipe:
    """A user's own class, pickled into a checkpoint's hyperparameters."""


def weights(seed: int) -> dict[str, torch.Tensor]:
    from engine.networks.models import mlp

    torch.manual_seed(seed)
    return {k: v.detach().contiguous() for k, v in mlp().state_dict().items()}


def sharded(folder: Path, state: dict[str, torch.Tensor], shard_of_last: str = SHARDS[1]) -> Path:
    folder.mkdir()
    names = list(state)
    save_file({k: state[k] for k in names[:2]}, str(folder / SHARDS[0]))
    save_file({k: state[k] for k in names[2:]}, str(folder / SHARDS[1]))
    weight_map = {**{k: SHARDS[0] for k in names[:2]}, **{k: shard_of_last for k in names[2:]}}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


@pytest.fixture
def minima(tmp_path) -> Path:
    """Four minima of the digits MLP, each saved another way."""
    folder = tmp_path / "minima"
    folder.mkdir()
    torch.save({"state_dict": {f"model.{k}": v for k, v in weights(0).items()}, "epoch": 3, "global_step": 10,
                "pytorch-lightning_version": "2.4.0", "optimizer_states": [], "lr_schedulers": []},
               folder / "a-lightning.ckpt")
    torch.save({f"module.{k}": v for k, v in weights(1).items()}, folder / "b-ddp.pt")
    (folder / "c-hf").mkdir()
    save_file(weights(2), str(folder / "c-hf" / "model.safetensors"))
    sharded(folder / "d-hf-sharded", weights(3))
    return folder


def explore(folder: Path, *more: str):
    return in_process("explore", str(folder), "--model", "mlp", "--data", "digits", "--device", "cpu", *more)


def test_explore_accepts_each_layout(minima, nebtui_home):
    done = explore(minima, "--estimate", "--json")

    assert done.returncode == 0, done.stderr
    estimate = json.loads(done.stdout)
    assert estimate["kind"] == "session_estimated" and estimate["pairs"][1] == 6  # 4 minima, all pairs


def test_explore_refuses_what_is_not_weights_or_does_not_fit_in_one_line(minima, nebtui_home):
    torch.save({"state_dict": weights(4), "hyper_parameters": {"recipe": Recipe()}}, minima / "e.ckpt")
    assert_one_clear_line(explore(minima, "--detach"), f"holds Python objects, not only weights (it needs the class "
                                                       f"{Recipe.__module__}.Recipe)")
    (minima / "e.ckpt").unlink()

    sharded(minima / "e-hf", weights(4), shard_of_last="../a-lightning.ckpt")
    assert_one_clear_line(explore(minima, "--detach"), "names the shard '../a-lightning.ckpt', which is not a file "
                                                       "name in its folder")
    (minima / "e-hf" / "model.safetensors.index.json").unlink()  # no longer a model folder

    torch.save({"model": {**weights(4), "2.weight": torch.zeros(5, 32)}}, minima / "e.pt")
    assert_one_clear_line(explore(minima, "--estimate"), "e.pt does not fit the model ('2.weight' has shape (5, 32), "
                                                         "the model expects (10, 32))")
    assert not nebtui_home.exists() or not [p for p in nebtui_home.iterdir() if not p.name.startswith(".")]


def test_a_changed_shard_is_seen_when_the_session_is_built_again(minima):
    """The runner builds the problem from the manifest at every start: a shard that
    changed since is refused, as a changed file is."""
    from engine.paths.schedule import load_schedule
    from sessions.disk.config import Problem, SessionConfig
    from sessions.errors import SessionError
    from sessions.problem.minima import find_minima, manifest_entry
    from sessions.problem.build import build

    problem = Problem(kind="network", model="mlp", data="digits",
                      minima=[manifest_entry(path) for path in find_minima(minima)])
    config = SessionConfig(problem=problem, schedule=load_schedule("surface"), device="cpu")
    assert build(config).names == ["a-lightning", "b-ddp", "c-hf", "d-hf-sharded"]

    shard = minima / "d-hf-sharded" / SHARDS[1]
    state = {k: v + 1e-3 for k, v in list(weights(3).items())[2:]}
    save_file(state, str(shard))
    with pytest.raises(SessionError) as refused:
        build(config)
    assert str(refused.value) == (f"minimum {minima / 'd-hf-sharded'} changed since the session started: restore "
                                  "the original files")


def test_model_folders_are_listed_without_torch(minima):
    """The CLI lists and hashes safetensors minima, folders included, without importing torch (the runner's business)."""
    import subprocess
    import sys

    (minima / "a-lightning.ckpt").unlink()
    (minima / "b-ddp.pt").unlink()
    code = ("import sys; from sessions.problem.minima import find_minima, manifest_entry; "
            f"print([manifest_entry(p)['parameters'] for p in find_minima({str(minima)!r})]); "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[2410, 2410]", "False"]

"""Minima as researchers save them: Lightning's .ckpt, state dicts nested in a
training checkpoint, keys prefixed by DDP, torch.compile or Lightning, and Hugging
Face-style model folders (one file or shards). Each loads to exactly the flat
vector of the bare state dict; whatever is not plain weights, does not fit the
model or reaches out of its folder is refused in one line."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from engine.networks.layout import ParameterLayout
from engine.networks.models import mlp
from sessions.errors import SessionError
from sessions.problem.minima import find_minima, flat_minimum, manifest_entry, minimum_name, sha256

SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")


class TrainingConfig:
    """A user's own class, pickled into a checkpoint beside the weights."""

    lr = 0.1


@pytest.fixture
def net() -> nn.Module:
    torch.manual_seed(0)
    return mlp()  # 64-32-10: parameters 0.weight, 0.bias, 2.weight, 2.bias


@pytest.fixture
def state(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}


def lightning_checkpoint(state: dict[str, torch.Tensor], **extra) -> dict:
    """A checkpoint laid out as Lightning 2.x's Trainer.save_checkpoint writes it, for a
    LightningModule holding the network as ``self.model`` and trained with SGD."""
    score = torch.tensor(0.25)
    return {
        "epoch": 3,
        "global_step": 10,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": prefixed(state, "model."),
        "loops": {"fit_loop": {"state_dict": {}, "epoch_loop.state_dict": {"_batches_that_stepped": 10},
                               "epoch_progress": {"total": {"ready": 4, "completed": 3}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', 'every_n_train_steps': 0, "
                      "'every_n_epochs': 1, 'train_time_interval': None}": {
                          "monitor": "val_loss", "best_model_score": score, "best_model_path": "/runs/epoch=3.ckpt",
                          "best_k_models": {"/runs/epoch=3.ckpt": score}, "dirpath": "/runs"}},
        "optimizer_states": [{"state": {i: {"momentum_buffer": torch.zeros_like(v)} for i, v in
                                        enumerate(state.values())},
                              "param_groups": [{"lr": 0.1, "momentum": 0.9, "dampening": 0, "weight_decay": 0.0,
                                                "nesterov": False, "params": list(range(len(state)))}]}],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {"lr": 0.1, "hidden": [32]},
        **extra,
    }


def hf_single(folder: Path, state: dict[str, torch.Tensor]) -> Path:
    """A folder as save_pretrained writes a small model: config and one weights file."""
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["Digits"]}')
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def hf_sharded(folder: Path, state: dict[str, torch.Tensor], weight_map: dict[str, str] | None = None) -> Path:
    """A folder as save_pretrained writes a large model: shards and the index naming them."""
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["Digits"]}')
    names = list(state)
    split = {SHARDS[0]: names[:2], SHARDS[1]: names[2:]}
    for shard, keys in split.items():
        save_file({k: state[k] for k in keys}, str(folder / shard), metadata={"format": "pt"})
    weight_map = weight_map or {k: shard for shard, keys in split.items() for k in keys}
    total = sum(v.numel() * v.element_size() for v in state.values())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return folder


# ---- every layout loads the same weights


WRITERS = {
    "lightning.ckpt": lambda path, s: torch.save(lightning_checkpoint(s), path),
    "tutorial.pth": lambda path, s: torch.save({"epoch": 3, "model_state_dict": s, "optimizer_state_dict": {},
                                                "loss": 0.1}, path),
    "model.pt": lambda path, s: torch.save({"model": s, "epoch": 3}, path),
    "ema.pt": lambda path, s: torch.save({"ema": s, "step": 50}, path),
    "model-and-ema.pt": lambda path, s: torch.save({"model": s, "ema": {k: v + 1 for k, v in s.items()}}, path),
    "ddp.pt": lambda path, s: torch.save(prefixed(s, "module."), path),
    "compiled.safetensors": lambda path, s: save_file(prefixed(s, "_orig_mod."), str(path)),
    "ddp-compiled.pt": lambda path, s: torch.save(prefixed(s, "module._orig_mod."), path),
    "lightning-compiled.ckpt": lambda path, s: torch.save({"state_dict": prefixed(s, "model._orig_mod."),
                                                           "epoch": 1}, path),
    "lightning-with-loss.ckpt": lambda path, s: torch.save(
        {"state_dict": {**prefixed(s, "model."), "criterion.weight": torch.ones(10)}, "epoch": 1}, path),
    "hf-single": lambda path, s: hf_single(path, s),
    "hf-sharded": lambda path, s: hf_sharded(path, s),
}


@pytest.mark.parametrize("name", WRITERS)
def test_each_layout_loads_exactly_the_bare_state_dicts_weights(tmp_path, net, state, name):
    layout = ParameterLayout.from_module(net)
    bare = tmp_path / "bare.safetensors"
    save_file(state, str(bare))
    path = tmp_path / name
    WRITERS[name](path, state)

    assert find_minima(tmp_path) == sorted([bare, path])
    assert torch.equal(flat_minimum(path, layout), flat_minimum(bare, layout))
    assert torch.equal(flat_minimum(path, layout), layout.flatten(net))
    entry = manifest_entry(path)
    assert entry["path"] == str(path.absolute()) and len(entry["sha256"]) == 64
    assert entry["parameters"] >= layout.dim  # the checkpoint's tensors, which may hold more than the parameters


def test_a_folder_is_one_minimum_named_after_it(tmp_path, state):
    hf_single(tmp_path / "seed-1", state)
    hf_sharded(tmp_path / "seed-2", state)
    torch.save(lightning_checkpoint(state), tmp_path / "seed-3.ckpt")
    (tmp_path / "lightning_logs").mkdir()  # a folder holding no model is no minimum
    (tmp_path / "lightning_logs" / "hparams.yaml").write_text("lr: 0.1\n")

    found = find_minima(tmp_path)

    assert [minimum_name(p) for p in found] == ["seed-1", "seed-2", "seed-3"]
    assert [manifest_entry(p)["parameters"] for p in found[:2]] == [2410, 2410]  # from the headers alone


def test_a_model_folders_digest_covers_its_weight_files_and_nothing_else(tmp_path, state):
    folder = hf_sharded(tmp_path / "sharded", state)
    files = ["model.safetensors.index.json", *SHARDS]
    lines = "".join(f"{hashlib.sha256((folder / f).read_bytes()).hexdigest()}  {f}\n" for f in sorted(files))
    digest = sha256(folder)
    assert digest == hashlib.sha256(lines.encode()).hexdigest()

    (folder / "config.json").write_text('{"architectures": ["Other"]}')  # not weights
    assert sha256(folder) == digest
    save_file({k: state[k] + 1 for k in list(state)[2:]}, str(folder / SHARDS[1]))  # one shard changed
    assert sha256(folder) != digest


def test_prefixes_are_kept_where_the_model_has_them(tmp_path, state):
    """A model whose own names begin with a wrapper's prefix loads its own state dict
    as saved; the same tensors load into the unwrapped model with the prefix removed."""

    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = mlp()

    holder = Holder()
    holder.module.load_state_dict(state)
    layout = ParameterLayout.from_module(holder)
    assert layout.names[0] == "module.0.weight"
    torch.save(holder.state_dict(), tmp_path / "holder.pt")
    torch.save(prefixed(holder.state_dict(), "module."), tmp_path / "holder-ddp.pt")

    assert torch.equal(flat_minimum(tmp_path / "holder.pt", layout), layout.flatten(holder))
    assert torch.equal(flat_minimum(tmp_path / "holder-ddp.pt", layout), layout.flatten(holder))
    assert torch.equal(flat_minimum(tmp_path / "holder.pt", ParameterLayout.from_module(mlp())),
                       layout.flatten(holder))


def test_buffers_are_neither_parameters_nor_unexpected(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    torch.save({"state_dict": prefixed(net.state_dict(), "model.")}, tmp_path / "bn.ckpt")
    layout = ParameterLayout.from_module(net)
    buffers = [name for name, _ in net.named_buffers()]
    assert torch.equal(flat_minimum(tmp_path / "bn.ckpt", layout, buffers), layout.flatten(net))

    bigger = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))  # the checkpoint lacks its '2.'
    with pytest.raises(SessionError) as refused:
        flat_minimum(tmp_path / "bn.ckpt", ParameterLayout.from_module(bigger), [n for n, _ in bigger.named_buffers()])
    assert "does not fit the model (missing '2.weight', '2.bias'): all minima" in str(refused.value)


# ---- refused, in one line


def refusal(path: Path, net: nn.Module) -> str:
    with pytest.raises(SessionError) as refused:
        flat_minimum(path, ParameterLayout.from_module(net))
    message = str(refused.value)
    assert "\n" not in message, message
    return message


def test_a_checkpoint_that_needs_a_class_is_refused_naming_it(tmp_path, net, state):
    path = tmp_path / "epoch=3.ckpt"
    torch.save(lightning_checkpoint(state, hyper_parameters={"config": TrainingConfig()}), path)

    message = refusal(path, net)

    assert message == (f"{path} holds Python objects, not only weights (it needs the class "
                       f"{TrainingConfig.__module__}.TrainingConfig), and nebtui never unpickles those: save the "
                       "weights alone, with torch.save(model.state_dict(), path) or "
                       "safetensors.torch.save_file(model.state_dict(), path)")
    with pytest.raises(SessionError, match="it needs the class"):
        manifest_entry(path)  # explore refuses it as it lists the minima


@pytest.mark.parametrize("change, expected", [
    (lambda s: {k: v for k, v in s.items() if k != "2.bias"}, "does not fit the model (missing '2.bias'): all minima "
                                                              "must come from the same architecture as --model"),
    (lambda s: {**s, "2.weight": torch.zeros(5, 32)}, "does not fit the model ('2.weight' has shape (5, 32), the "
                                                      "model expects (10, 32)): all minima must come from the same"),
])
def test_a_checkpoint_that_does_not_fit_the_model_is_refused(tmp_path, net, state, change, expected):
    path = tmp_path / "epoch=3.ckpt"
    torch.save(lightning_checkpoint(change(state)), path)  # the prefix model. is removed first: the misfit remains

    assert expected in refusal(path, net)


def test_a_prefix_no_wrapper_adds_is_shown_not_guessed(tmp_path, net, state):
    """A LightningModule that calls its network self.net: nothing is stripped, and the line shows why."""
    torch.save({"state_dict": prefixed(state, "net."), "epoch": 3}, tmp_path / "net.ckpt")
    assert "does not fit the model (missing '0.weight', '0.bias', '2.weight' and 1 more; unexpected 'net.0.weight', " \
           "'net.0.bias', 'net.2.weight' and 1 more): all minima" in refusal(tmp_path / "net.ckpt", net)


def test_a_checkpoint_without_a_state_dict_is_refused(tmp_path, net):
    torch.save({"epoch": 3, "net": "resnet20", "weights": [1.0, 2.0]}, tmp_path / "run.pt")
    message = refusal(tmp_path / "run.pt", net)
    assert "holds no state dict, a dict of tensors by name, bare or under 'state_dict', 'model', 'model_state_dict', " \
           "'ema' (it holds 'epoch', 'net', 'weights'): save the weights with torch.save" in message
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint at all")
    assert "garbage.ckpt is not a readable PyTorch weights file (" in refusal(tmp_path / "garbage.ckpt", net)


def test_a_shard_named_outside_its_folder_is_refused_unread(tmp_path, net, state):
    outside = tmp_path / "outside.safetensors"
    save_file({k: state[k] for k in list(state)[2:]}, str(outside))  # weights that would load if it were followed
    for shard in ("../outside.safetensors", str(outside)):
        folder = tmp_path / f"model-{len(shard)}"
        hf_sharded(folder, state, weight_map={**{k: SHARDS[0] for k in list(state)[:2]},
                                              **{k: shard for k in list(state)[2:]}})
        expected = f"{folder}/model.safetensors.index.json names the shard {shard!r}, which is not a file name in " \
                   f"its folder: nebtui reads no file outside {folder}"
        assert refusal(folder, net) == expected
        with pytest.raises(SessionError, match="which is not a file name in its folder"):
            manifest_entry(folder)


@pytest.mark.parametrize("linked", ["model.safetensors", SHARDS[1]])
def test_a_link_out_of_a_model_folder_is_refused(tmp_path, net, state, linked):
    folder = (hf_single if linked == "model.safetensors" else hf_sharded)(tmp_path / "model", state)
    outside = tmp_path / "elsewhere.safetensors"
    os.replace(folder / linked, outside)
    (folder / linked).symlink_to(outside)

    assert refusal(folder, net) == (f"{folder / linked} is a link out of its model folder, and nebtui reads only the "
                                    "folder's own files: copy the file itself in (cp -L)")
    os.replace(outside, folder / "real.safetensors")  # a link within the folder is the folder's own file
    (folder / linked).unlink()
    (folder / linked).symlink_to("real.safetensors")
    layout = ParameterLayout.from_module(net)
    assert torch.equal(flat_minimum(folder, layout), layout.flatten(net))


def test_a_broken_sharded_folder_is_refused(tmp_path, net, state):
    folder = hf_sharded(tmp_path / "lost", state)
    (folder / SHARDS[1]).unlink()
    assert refusal(folder, net) == (f"{folder}/model.safetensors.index.json names the shard {SHARDS[1]}, which is "
                                    f"not in {folder}: copy or download the missing shards")

    folder = hf_sharded(tmp_path / "misplaced", state, weight_map={k: SHARDS[0] for k in state})
    assert f"puts the tensor '2.weight' in {SHARDS[0]}, which does not hold it" in refusal(folder, net)

    folder = hf_sharded(tmp_path / "huge-header", state)
    (folder / SHARDS[1]).write_bytes((10 ** 9).to_bytes(8, "little") + b"{}")  # the cap holds for shards too
    assert f"{SHARDS[1]} is not a readable safetensors file (its header claims 1000000000 bytes, more than the " \
           "100000000 safetensors allows)" in refusal(folder, net)

    folder = hf_sharded(tmp_path / "no-map", state)
    (folder / "model.safetensors.index.json").write_text('{"metadata": {}}')
    assert "has no weight_map from tensor names to shard files" in refusal(folder, net)

"""Minima files: every accepted checkpoint form loads to the same flat vector;
anything that is not plain weights is refused with one clear message."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from engine.networks.layout import ParameterLayout
from engine.networks.models import mlp
from sessions.disk.folder import SessionError
from sessions.problem.minima import find_minima, flat_minimum, manifest_entry


class Payload:
    """Stands for any Python object a pickle can carry (and run code while loading)."""


@pytest.fixture
def net():
    torch.manual_seed(0)
    return mlp()


def test_each_accepted_form_loads_the_same_weights(tmp_path, net):
    layout = ParameterLayout.from_module(net)
    expected = layout.flatten(net)
    state = net.state_dict()
    save_file(state, str(tmp_path / "a.safetensors"))
    torch.save(state, tmp_path / "b.pt")
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "c.pth")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "d.pt")  # DataParallel
    torch.save({"model": state}, tmp_path / "e.pt")
    files = find_minima(tmp_path)
    assert [f.name for f in files] == ["a.safetensors", "b.pt", "c.pth", "d.pt", "e.pt"]
    for path in files:
        assert torch.equal(flat_minimum(path, layout), expected), path.name
    entry = manifest_entry(files[0], layout.dim)
    assert entry["parameters"] == 2410 and len(entry["sha256"]) == 64


def test_a_pickle_carrying_objects_is_refused(tmp_path, net):
    with open(tmp_path / "evil.pt", "wb") as stream:
        pickle.dump({"weights": Payload()}, stream)
    with pytest.raises(SessionError) as refused:
        flat_minimum(tmp_path / "evil.pt", ParameterLayout.from_module(net))
    assert (f"holds Python objects, not only weights (it needs the class {Payload.__module__}.Payload), and nebtui "
            "never unpickles those") in str(refused.value)


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda p: p.write_bytes(b"not a safetensors file"), "is not a readable safetensors file"),
        (lambda p: save_file({"0.weight": torch.zeros(3, 3)}, str(p)), "has shape (3, 3), the model expects (32, 64)"),
        (lambda p: save_file({"0.weight": torch.zeros(32, 64)}, str(p)),
         "does not fit the model (missing '0.bias', '2.weight', '2.bias'):"),
    ],
)
def test_broken_or_foreign_files_are_refused(tmp_path, net, write, message):
    path = tmp_path / "x.safetensors"
    write(path)
    with pytest.raises(SessionError) as caught:
        flat_minimum(path, ParameterLayout.from_module(net))
    assert message in str(caught.value)


def test_nan_weights_are_refused(tmp_path, net):
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["0.weight"][0, 0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"))
    with pytest.raises(SessionError, match="NaN or infinite weights"):
        flat_minimum(tmp_path / "nan.safetensors", ParameterLayout.from_module(net))


def test_truncated_file_is_refused(tmp_path, net):
    save_file(net.state_dict(), str(tmp_path / "t.safetensors"))
    data = (tmp_path / "t.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(SessionError, match="not a readable safetensors file"):
        flat_minimum(tmp_path / "t.safetensors", ParameterLayout.from_module(net))


@pytest.mark.parametrize("files, message", [([], "holds no weight files"), (["only.pt"], "holds only one minimum")])
def test_folders_without_two_minima_are_refused(tmp_path, files, message):
    for name in files:
        torch.save({}, tmp_path / name)
    with pytest.raises(SessionError, match=message):
        find_minima(tmp_path)
    with pytest.raises(SessionError, match="does not exist"):
        find_minima(tmp_path / "missing")


def test_a_minimum_still_in_training_is_not_a_minimum(tmp_path, net):
    weights = {k: v.contiguous() for k, v in net.state_dict().items()}
    for name in ("minimum-00.safetensors", "minimum-01.safetensors", "minimum-02.partial.safetensors"):
        save_file(weights, str(tmp_path / name))
    assert [p.name for p in find_minima(tmp_path)] == ["minimum-00.safetensors", "minimum-01.safetensors"]
    (tmp_path / "minimum-01.safetensors").unlink()
    with pytest.raises(SessionError, match=r"holds unfinished training \(minimum-02.partial.safetensors\)"):
        find_minima(tmp_path)


# ---- the minima folder nebtui train writes


def test_a_training_state_in_the_earlier_layout_still_loads(tmp_path):
    """minimum-NN.partial.safetensors as the earlier code wrote it, built here with safetensors itself."""
    import json

    from safetensors.torch import save_file

    from sessions.problem.minima_folder import load_partial, partial_path, save_partial

    stem = tmp_path / "minimum-00"
    identity = {"model": "mlp", "model_args": {}, "data": "digits", "recipe": {"steps": 10}, "seed": 3}
    meta = {"step": 4, "position": 2, "history": [1.5, 1.2]}
    tensors = {"weights.0": torch.arange(4.0), "generator": torch.zeros(8, dtype=torch.uint8)}
    header = {"version": 1, "identity": identity, "meta": meta, "seconds": 2.5}
    save_file(tensors, str(partial_path(stem)), metadata={"nebtui": json.dumps(header)})
    state, seconds = load_partial(partial_path(stem), identity)
    assert seconds == 2.5 and state["meta"] == meta
    assert all(torch.equal(state["tensors"][k], v) for k, v in tensors.items())

    save_partial(partial_path(stem), state, identity, 3.0)  # written again: the same layout
    from safetensors import safe_open

    with safe_open(str(partial_path(stem)), "pt") as opened:
        assert json.loads(opened.metadata()["nebtui"]) == {**header, "seconds": 3.0}
    with pytest.raises(SessionError, match="was started with another seed: rerun with the same options"):
        load_partial(partial_path(stem), {**identity, "seed": 4})
    partial_path(stem).write_bytes(b"garbage")
    with pytest.raises(SessionError, match=r"minimum-00.partial.safetensors is damaged \(StateFileError\)"):
        load_partial(partial_path(stem), identity)


def test_claims_and_what_is_still_in_training(tmp_path, net):
    from sessions.problem.minima_folder import claim, in_training, partial_path, trained, write_minimum

    done, claimed, left = (tmp_path / f"minimum-0{i}" for i in range(3))
    write_minimum(done, net.state_dict(), {"model": "mlp", "data": "digits"})
    assert trained(done) and not trained(claimed)
    partial_path(left).write_bytes(b"a saved state")
    lock = claim(claimed)
    try:
        assert lock is not None and claim(claimed) is None  # the claim is exclusive
        assert in_training(tmp_path) == ["minimum-01", "minimum-02"]
    finally:
        lock.release()
    assert in_training(tmp_path) == ["minimum-02"]  # a released claim with no state is no training


def test_sidecars_agree_or_are_refused(tmp_path, net):
    from sessions.problem.minima_folder import read_sidecars, write_minimum

    stems = [tmp_path / f"minimum-0{i}" for i in range(2)]
    for stem in stems:
        write_minimum(stem, net.state_dict(), {"model": "mlp", "model_args": {"hidden": [8]}, "data": "digits"})
    files = [s.with_suffix(".safetensors") for s in stems]
    assert read_sidecars(files) == {"model": "mlp", "model_args": {"hidden": [8]}, "data": "digits",
                                    "loss": "cross_entropy"}  # a sidecar without a loss: the default
    stems[1].with_suffix(".json").write_text('{"model": "small_cnn", "data": "digits"}')
    with pytest.raises(SessionError, match=r"sidecars name different models or data \(2 kinds\)"):
        read_sidecars(files)
    stems[1].with_suffix(".json").unlink()
    assert read_sidecars(files) is None

"""A researcher's data from --data: torchvision's on-disk formats written small here
(MNIST's idx files, SVHN's .mat files, an image folder of PNGs) and a data factory
module, read through sessions.problem.build as the runner, the workers and train read them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from data_formats import FACTORY, image_folder, mnist_folder, svhn_folder

from engine.networks.datasets import MEAN_STD
from sessions.disk.config import Problem
from sessions.errors import SessionError
from sessions.problem.build import absolute_data, load_data, model_arguments, parse_data


def problem(data: str, model: str = "mlp", import_dir: Path | None = None) -> Problem:
    return Problem(kind="network", model=model, data=data, import_dir=None if import_dir is None else str(import_dir))


def test_mnist_and_fashion_mnist_read_from_their_idx_files(tmp_path):
    for kind, folder in (("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")):
        made = mnist_folder(tmp_path / kind, folder)
        flat = load_data(problem(f"{kind}:{tmp_path / kind}"), "cpu")
        train_x, train_y = flat["train"]
        assert train_x.dtype == torch.uint8 and tuple(train_x.shape) == (12, 1, 28, 28)
        assert torch.equal(train_x[:, 0], torch.from_numpy(made["train"]))
        assert torch.equal(train_y, torch.from_numpy(made["train-labels"]).long())
        assert tuple(flat["test"][0].shape) == (5, 1, 28, 28) and flat["classes"] == 10
        mean, std = MEAN_STD[kind]
        expected = (torch.from_numpy(made["train"][:2]).double().reshape(2, -1) / 255 - mean[0]) / std[0]
        # float32 standardisation of values within a few units of 0: a few float32 ulps of 4
        torch.testing.assert_close(flat["prepare"](train_x[:2]).double(), expected, rtol=0, atol=4e-6)
        assert model_arguments(problem(f"{kind}:{tmp_path / kind}")) == {"classes": 10, "inputs": 784}
        images = load_data(problem(f"{kind}:{tmp_path / kind}", model="resnet20"), "cpu")
        assert tuple(images["prepare"](train_x[:2]).shape) == (2, 1, 28, 28)


def test_mnist_as_published_gzipped_is_unpacked_beside_the_files(tmp_path):
    made = mnist_folder(tmp_path, packed=True)
    loaded = load_data(problem(f"mnist:{tmp_path}"), "cpu")
    assert torch.equal(loaded["test"][0][:, 0], torch.from_numpy(made["t10k"]))
    assert (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()


def test_svhn_reads_its_mat_files_with_label_10_as_digit_0(tmp_path):
    made = svhn_folder(tmp_path)
    loaded = load_data(problem(f"svhn:{tmp_path}", model="resnet20"), "cpu")
    train_x, train_y = loaded["train"]
    assert tuple(train_x.shape) == (7, 3, 32, 32) and train_x.dtype == torch.uint8
    # X[h, w, c, n] of the file is image n's channel c at row h, column w
    assert torch.equal(train_x[4, 2, 5, 7], torch.tensor(made["train"][5, 7, 2, 4]))
    assert train_y.tolist() == [0, 1, 9, 0, 5, 2, 3] and loaded["test"][1].tolist() == [0, 1, 9]
    assert model_arguments(problem(f"svhn:{tmp_path}")) == {"classes": 10, "inputs": 3 * 32 * 32}


def test_an_image_folder_is_resized_and_centre_cropped(tmp_path):
    image_folder(tmp_path)
    loaded = load_data(problem(f"imagefolder:{tmp_path}", model="resnet20"), "cpu")
    train_x, train_y = loaded["train"]
    assert tuple(train_x.shape) == (6, 3, 32, 32) and train_x.dtype == torch.uint8
    assert train_y.tolist() == [0, 0, 1, 1, 2, 2] and loaded["test"][1].tolist() == [0, 1, 2]
    assert train_x[2, :, 16, 16].tolist() == [80, 0, 200]  # one colour per image survives the resize
    assert loaded["classes"] == 3
    wide = load_data(problem(f"imagefolder@20:{tmp_path}", model="resnet20"), "cpu")
    assert tuple(wide["train"][0].shape) == (6, 3, 20, 20)
    assert model_arguments(problem(f"imagefolder@20:{tmp_path}")) == {"classes": 3, "inputs": 3 * 20 * 20}
    assert model_arguments(problem(f"imagefolder:{tmp_path}", model="torchvision:resnet18")) == {"num_classes": 3}


@pytest.fixture
def factory_dir(tmp_path):
    (tmp_path / "labdata.py").write_text(textwrap.dedent(FACTORY))
    return tmp_path


def test_a_folder_typed_relative_is_kept_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_data("imagefolder@64:photos") == f"imagefolder@64:{tmp_path / 'photos'}"
    assert absolute_data("svhn:~/svhn") == f"svhn:{Path.home() / 'svhn'}"
    assert absolute_data("labdata:make") == "labdata:make" and absolute_data("digits") == "digits"


def test_a_data_factory_gives_datasets_or_tensors(factory_dir):
    assert parse_data("labdata:as_datasets").factory == "labdata:as_datasets"
    loaded = load_data(problem("labdata:as_datasets", import_dir=factory_dir), "cpu")
    train_x, train_y = loaded["train"]
    assert tuple(train_x.shape) == (10, 2, 3) and train_y.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert loaded["test"][1].tolist() == [0, 1, 2, 3] and loaded["classes"] == 5
    assert tuple(loaded["prepare"](train_x).shape) == (10, 6)  # flattened for the MLP
    first = loaded["augment"](train_x, torch.Generator().manual_seed(3))
    assert torch.equal(first, loaded["augment"](train_x, torch.Generator().manual_seed(3)))
    assert model_arguments(problem("labdata:as_datasets", import_dir=factory_dir), loaded) == {
        "classes": 5, "inputs": 6}
    given = Problem(kind="network", model="mlp", model_args={"classes": 3, "inputs": 8}, data="labdata:broken",
                    import_dir=str(factory_dir))
    assert model_arguments(given) == {"classes": 3, "inputs": 8}  # nothing left to ask the (failing) factory
    collated = load_data(problem("labdata:with_collate", import_dir=factory_dir), "cpu")
    assert collated["train"][0][4].tolist() == [4.0, 5.0, 6.0] and collated["train"][1].tolist() == [0, 1, 0, 1, 0]
    tensors = load_data(problem("labdata:as_tensors", model="resnet20", import_dir=factory_dir), "cpu")
    assert tensors["classes"] == 3 and tensors["prepare"] is None and tensors["augment"] is None


@pytest.mark.parametrize("factory, message", [
    ("global_noise", "data factory labdata:global_noise: its augment gives different batches from generators in the "
                     "same state: draw every random number from the generator it is given"),
    ("a_dict", "data factory labdata:a_dict returned a dict: return an engine.networks.datasets.UserData, or a pair"),
    ("broken", "data factory labdata:broken failed (OSError: no such share: /mnt/lab): fix it"),
    ("missing", "labdata has no callable 'missing': check --data labdata:missing"),
    ("faulty_dataset", "data factory labdata:faulty_dataset: its train set cannot be read (AttributeError: 'Faulty' "
                       "object has no attribute 'table')"),
    ("faulty_prepare", "data factory labdata:faulty_prepare: its prepare fails on 2 training inputs (RuntimeError: "),
    ("without_collate", "data factory labdata:without_collate: its train set cannot be read (its items are dicts, "
                        "whose 'pixels' collates to a list, not a tensor"),
])
def test_a_faulty_data_factory_is_one_line(factory_dir, factory, message):
    with pytest.raises(SessionError) as refused:
        load_data(problem(f"labdata:{factory}", import_dir=factory_dir), "cpu")
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_missing_or_damaged_files_name_the_folder_and_what_it_should_hold(tmp_path):
    def refusal(data: str, download: bool = False) -> str:
        with pytest.raises(SessionError) as refused:
            load_data(problem(data), "cpu", download=download)
        assert "\n" not in str(refused.value)
        return str(refused.value)

    empty = tmp_path / "empty"
    assert refusal(f"mnist:{empty}") == (
        f"mnist:{empty} has no MNIST/raw/train-images-idx3-ubyte: put the four MNIST files there "
        "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) or add "
        "--download")
    mnist_folder(tmp_path / "packed", "FashionMNIST", packed=True)
    (tmp_path / "packed" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    assert refusal(f"fashion-mnist:{tmp_path / 'packed'}") == (
        f"fashion-mnist:{tmp_path / 'packed'} has no FashionMNIST/raw/train-images-idx3-ubyte (unpack the .gz files "
        "with gunzip): put the four FashionMNIST files there (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) or add --download")
    mnist_folder(tmp_path / "bad")
    (tmp_path / "bad" / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file")
    assert refusal(f"mnist:{tmp_path / 'bad'}").startswith(
        f"mnist:{tmp_path / 'bad'}: the MNIST files in {tmp_path / 'bad' / 'MNIST' / 'raw'} could not be read (")
    assert refusal(f"svhn:{empty}") == (f"svhn:{empty} has no train_32x32.mat: put SVHN's train_32x32.mat and "
                                        "test_32x32.mat there or add --download")
    svhn_folder(tmp_path / "svhn")
    (tmp_path / "svhn" / "test_32x32.mat").write_bytes(b"MATLAB? no")
    assert "test_32x32.mat is not a readable .mat file" in refusal(f"svhn:{tmp_path / 'svhn'}")
    assert refusal(f"imagefolder:{empty}").startswith(f"imagefolder:{empty} has no train/ folder: put train/ and val/")
    image_folder(tmp_path / "images")
    (tmp_path / "images" / "val" / "fox").mkdir()
    (tmp_path / "images" / "val" / "fox" / "0.png").write_bytes((tmp_path / "images/val/cat/0.png").read_bytes())
    assert "val/ has the class folders cat, dog, eel, fox but train/ has cat, dog, eel" in refusal(
        f"imagefolder:{tmp_path / 'images'}")
    image_folder(tmp_path / "unreadable")
    (tmp_path / "unreadable" / "val" / "dog" / "0.png").write_bytes(b"not a png")
    assert refusal(f"imagefolder:{tmp_path / 'unreadable'}") == (
        f"imagefolder:{tmp_path / 'unreadable'}: an image in val/ cannot be read (cannot identify image file "
        f"{tmp_path / 'unreadable' / 'val' / 'dog' / '0.png'}): remove it or replace it")
    image_folder(tmp_path / "bare")
    (tmp_path / "bare" / "train" / "eel" / "0.png").unlink()
    (tmp_path / "bare" / "train" / "eel" / "1.png").unlink()
    assert refusal(f"imagefolder:{tmp_path / 'bare'}").startswith(
        f"imagefolder:{tmp_path / 'bare'}: in train/, found no valid file for the classes eel.")
    assert refusal(f"imagefolder:{tmp_path / 'images'}", download=True).startswith(
        "--download fetches torchvision's data sets")


def test_a_session_on_svhn_files_builds_the_energy_its_minima_have(tmp_path):
    """What the runner, the workers and the reports build from a config: the energy of each
    minimum is the model's mean cross-entropy on the standardised training images."""
    from safetensors.torch import save_file

    from engine.paths.schedule import load_schedule
    from sessions.disk.config import SessionConfig
    from sessions.problem.build import build, build_model

    made = svhn_folder(tmp_path / "svhn")
    spec = f"svhn:{tmp_path / 'svhn'}"
    nets, minima = [], []
    for seed in range(2):
        torch.manual_seed(seed)
        nets.append(build_model(problem(spec)))
        save_file(nets[-1].state_dict(), tmp_path / f"m{seed}.safetensors")
        minima.append({"path": str(tmp_path / f"m{seed}.safetensors")})
    config = SessionConfig(problem=Problem(kind="network", model="mlp", data=spec, minima=minima),
                           schedule=load_schedule("surface"), strategy="loop")
    built = build(config)
    images = torch.from_numpy(made["train"].transpose(3, 2, 0, 1)).double() / 255  # (7, 3, 32, 32)
    mean, std = (torch.tensor(v, dtype=torch.float64).view(3, 1, 1) for v in MEAN_STD["svhn"])
    inputs = ((images - mean) / std).flatten(1)  # (7, 3072)
    labels = torch.tensor([0, 1, 9, 0, 5, 2, 3])
    expected = torch.stack([torch.nn.functional.cross_entropy(net.double()(inputs), labels) for net in nets])
    # float32 sums over 3072 inputs of standardised pixels against a float64 reference
    torch.testing.assert_close(built.energy.evaluate(built.minima).double(), expected, rtol=1e-5, atol=1e-5)


def test_a_vouch_covers_the_data_factory_and_a_data_folder_needs_none(tmp_path):
    from sessions.problem import trust

    given = trust.tag(tmp_path, "s1", "mlp", {}, import_dir="/lab", data="labdata:blobs")
    assert trust.vouched(tmp_path, "s1", "mlp", {}, given, import_dir="/lab", data="labdata:blobs")
    assert not trust.vouched(tmp_path, "s1", "mlp", {}, given, import_dir="/lab", data="labdata:other")
    assert trust.runs_user_code("mlp", "labdata:blobs") and trust.runs_user_code("lab.nets:wide", "digits")
    assert not trust.runs_user_code("resnet20", "svhn:data")  # nebtui's SVHN reader on the folder ./data
    assert not trust.is_data_factory("imagefolder@64:images") and trust.is_data_factory("lab.data:make")

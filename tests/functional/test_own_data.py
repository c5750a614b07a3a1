"""A researcher's own data on the command line: `nebtui train` and `explore --headless`
on a data factory, `train` on MNIST's files, the vouch that lets a session's runner import
the factory, and the one-line refusals of data that is not there."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from cli_runs import DIGITS_SCHEDULE, assert_one_clear_line, in_process
from data_formats import FACTORY, image_folder, mnist_folder

TRAIN = ("--count", "2", "--scale", "0.02", "--device", "cpu")


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A folder holding the module labdata.py, where the user types their commands."""
    (tmp_path / "labdata.py").write_text(textwrap.dedent(FACTORY))
    (tmp_path / "tiny.toml").write_text(DIGITS_SCHEDULE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def explore(minima: Path, *args: str):
    return in_process("explore", str(minima), "--schedule", "tiny.toml", "--strategy", "loop", "--device", "cpu",
                      "--scale", "0.2", "--headless", *args)


def test_minima_trained_on_a_data_factory_are_explored_with_it(lab, nebtui_home):
    trained = in_process("train", "--model", "mlp", "--data", "labdata:blobs", "--out", "minima", *TRAIN)
    assert trained.returncode == 0, trained.stderr
    sidecar = json.loads((lab / "minima" / "minimum-00.json").read_text())
    assert sidecar["data"] == "labdata:blobs" and sidecar["model_args"] == {"classes": 3, "inputs": 8}
    # the sidecars' data factory is a name read from a file: it is not imported, it is asked for
    asked = explore(lab / "minima")
    assert_one_clear_line(asked, f"the sidecars in {lab / 'minima'} name the data factory labdata:blobs, and nebtui "
                                 "runs no code named in a file: if you trust it, pass --data labdata:blobs")
    done = explore(lab / "minima", "--data", "labdata:blobs", "--session", "blobs")
    assert done.returncode == 0, done.stderr
    assert "session finished (all pairs), 1 pair" in done.stdout
    config = json.loads((nebtui_home / "blobs" / "config.json").read_text())
    assert config["problem"]["data"] == "labdata:blobs" and config["problem"]["import_dir"] == str(lab)

    # a session whose config names another factory than the one vouched for is refused
    config["problem"]["data"] = "labdata:as_tensors"
    (nebtui_home / "blobs" / "config.json").write_text(json.dumps(config))
    refused = in_process("report", "blobs", "--out", str(lab / "report"))
    assert_one_clear_line(refused, "session blobs names the data factory labdata:as_tensors, which was not given on "
                                   "this machine, and nebtui runs no code named in a file")
    wrong = in_process("sessions", "trust", "blobs", "labdata:blobs")
    assert_one_clear_line(wrong, "session blobs names the data factory labdata:as_tensors, not labdata:blobs")
    assert in_process("sessions", "trust", "blobs", "labdata:as_tensors").returncode == 0
    # vouched for, the factory is imported: its 4 features do not fit the MLP of 8 inputs
    imported = in_process("report", "blobs", "--out", str(lab / "report"))
    assert_one_clear_line(imported, "model mlp does not fit the data labdata:as_tensors: its first layer takes 8 "
                                    "features per sample (N, 8)")


def test_a_minimum_trained_on_mnist_files_records_them_in_its_sidecar(lab):
    mnist_folder(lab / "mnist")
    # typed relative to the folder the command runs in; kept absolute, for the runner runs elsewhere
    trained = in_process("train", "--model", "mlp", "--data", "mnist:mnist", "--out", "minima",
                         "--count", "1", "--scale", "0.01", "--device", "cpu")
    assert trained.returncode == 0, trained.stderr
    sidecar = json.loads((lab / "minima" / "minimum-00.json").read_text())
    assert sidecar["data"] == f"mnist:{lab / 'mnist'}" and sidecar["model_args"] == {"classes": 10, "inputs": 784}
    assert sidecar["test"]["error"] is not None  # evaluated on the t10k files


def test_data_that_is_not_there_is_one_line(lab):
    def train(data: str, *args: str):
        return in_process("train", "--model", "mlp", "--data", data, "--out", "out", *args)

    nowhere = lab / "nowhere"
    assert_one_clear_line(train(f"fashion-mnist:{nowhere}"), f"fashion-mnist:{nowhere} has no FashionMNIST/raw/"
                          "train-images-idx3-ubyte: put the four FashionMNIST files there")
    assert_one_clear_line(train(f"svhn:{nowhere}"), f"svhn:{nowhere} has no train_32x32.mat")
    assert_one_clear_line(train("nosuchmodule:make"), "cannot import 'nosuchmodule' for data 'nosuchmodule:make'")
    assert_one_clear_line(train("labdata:broken"), "data factory labdata:broken failed (OSError: no such share")
    assert_one_clear_line(train("imagefolder@big:/x"), "only imagefolder takes a size")
    image_folder(lab / "images")
    assert_one_clear_line(train(f"imagefolder:{lab / 'images'}", "--download"),
                          "--download fetches torchvision's data sets")
    assert not (lab / "out").exists()
    (lab / "minima").mkdir()
    for i in range(2):
        (lab / "minima" / f"m{i}.safetensors").write_bytes(b"")
    explored = in_process("explore", "minima", "--model", "mlp", "--data", f"imagefolder:{lab / 'images'}",
                          "--download")
    assert_one_clear_line(explored, "--download fetches torchvision's data sets")

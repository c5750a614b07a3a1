"""Models by name from torchvision's registry (`--model torchvision:NAME`) in `nebtui train`
and `explore`, and `--align` refused in one line on a model weight matching cannot analyse.

torchvision's models take 3-channel images, so on the embedded 1-channel digits they are
one line; they train and explore on CIFAR-10, here a few images in torchvision's file
layout whose md5 sums stand in for the official ones (in this process: train, and explore
with --estimate, which builds the problem here and starts no runner)."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest
from cli_runs import assert_one_clear_line, in_process

# the smallest registry model that fits 32x32 images: 0.35M parameters with 10 classes
SMALL = ("--model", "torchvision:shufflenet_v2_x0_5", "--model-arg", "num_classes=10")
TRAIN_IMAGES = (3, 3, 3, 3, 4)  # per data_batch_1..5


@pytest.fixture
def tiny_cifar10(tmp_path, monkeypatch) -> str:
    """cifar10:FOLDER with 16 training and 4 test images of random pixels, and
    torchvision's CIFAR10 checking these files' md5 sums in this process."""
    from torchvision.datasets import CIFAR10

    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    pixels = np.random.default_rng(0)

    def write(name: str, entry: dict) -> list[str]:
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        return [name, hashlib.md5((folder / name).read_bytes()).hexdigest()]

    def batch(name: str, n: int) -> list[str]:
        return write(name, {"data": pixels.integers(0, 256, (n, 3072), dtype=np.uint8),
                            "labels": [int(c) for c in pixels.integers(0, 10, n)]})

    monkeypatch.setattr(CIFAR10, "train_list", [batch(f"data_batch_{i + 1}", n) for i, n in enumerate(TRAIN_IMAGES)])
    monkeypatch.setattr(CIFAR10, "test_list", [batch("test_batch", 4)])
    meta = write("batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": meta[1]})
    return f"cifar10:{folder.parent}"


def test_two_torchvision_minima_train_and_explore_with_an_estimate(tmp_path, tiny_cifar10, nebtui_home):
    minima = tmp_path / "minima"

    done = in_process("train", *SMALL, "--data", tiny_cifar10, "--recipe", "he2016", "--scale", "0.00005",
                      "--count", "2", "--out", str(minima))

    assert done.returncode == 0, done.stderr
    sidecar = json.loads((minima / "minimum-01.json").read_text())
    assert sidecar["model"] == "torchvision:shufflenet_v2_x0_5" and sidecar["model_args"] == {"num_classes": 10}

    done = in_process("explore", str(minima), "--estimate", "--device", "cpu", "--scale", "0.01",
                      home=nebtui_home)  # the model, its arguments and the data read back from the sidecars

    assert done.returncode == 0, done.stderr
    assert "estimate: 1 pair left" in done.stdout

    done = in_process("explore", str(minima), *SMALL, "--data", tiny_cifar10, "--align", "--estimate", "--device",
                      "cpu", home=nebtui_home)

    assert_one_clear_line(done, "--align: cannot analyse layer 'stage2.0.branch1.0': grouped convolutions "
                                "(groups=24) are not supported; leave --align out to connect the minima as they are")


@pytest.mark.parametrize("args, message", [
    (("--model", "torchvision:resnet18", "--recipe", "digits"),
     "model torchvision:resnet18 does not fit the data digits-images: its first layer takes images of 3 channels "
     "(N, 3, H, W), and digits-images gives inputs of shape (N, 1, 8, 8)"),
    (("--model", "torchvision:resnet18"), "torchvision:resnet18 has no default training recipe: choose one with "
                                          "--recipe (he2016, huang2017, digits)"),
    (("--model", "torchvision:resnet19", "--recipe", "digits"),
     "unknown torchvision model 'resnet19': did you mean torchvision:resnet18"),
    (("--model", "torchvision:resnet18", "--model-arg", "weights=IMAGENET1K_V1", "--recipe", "digits"),
     "model torchvision:resnet18 is built from random weights and nebtui downloads none"),
], ids=["3 channels", "no recipe", "unknown", "weights"])
def test_what_cannot_train_on_the_digits_is_one_line_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "minima"

    done = in_process("train", *args, "--data", "digits-images", "--out", str(out))

    assert done.returncode == 2
    assert_one_clear_line(done, message)
    assert not out.exists()

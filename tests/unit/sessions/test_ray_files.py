"""An actor on a node without the runner's files builds from copies in a private folder
of its own, which nobody else can read or plant links in, and which is gone afterwards."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from sessions.problem.minima import sha256
from sessions.processes.raypool import files_of, localised

MINIMUM = b"the bytes of a minimum"
BATCH = b"the bytes of a data file"


def elsewhere_config(root: Path) -> tuple[dict, dict[str, bytes]]:
    """A config and its files as the runner sends them, at paths this node lacks."""
    minimum, data = root / "runner" / "minimum-00.safetensors", root / "runner" / "cifar"
    config = {"problem": {"kind": "network", "minima": [{"path": str(minimum)}], "data": f"cifar10:{data}"}}
    return config, {str(minimum): MINIMUM, str(data / "cifar-10-batches-py" / "data_batch_1"): BATCH}


def test_files_missing_here_are_copied_to_a_private_folder_and_removed_after(tmp_path):
    config, files = elsewhere_config(tmp_path)
    with localised(config, files) as here, localised(config, files) as again:
        minimum = Path(here["problem"]["minima"][0]["path"])
        folder = Path(tempfile.gettempdir()) / minimum.relative_to(tempfile.gettempdir()).parts[0]
        assert minimum.read_bytes() == MINIMUM
        data = Path(here["problem"]["data"].removeprefix("cifar10:"))
        assert (data / "cifar-10-batches-py" / "data_batch_1").read_bytes() == BATCH
        info = folder.lstat()
        assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
        assert stat.S_IMODE(minimum.stat().st_mode) & 0o077 == 0
        other = Path(again["problem"]["minima"][0]["path"])
        assert not other.is_relative_to(folder)  # each its own, made fresh: no name known in advance
    assert not folder.exists() and not other.exists()
    assert config["problem"]["minima"][0]["path"] == str(tmp_path / "runner" / "minimum-00.safetensors")


def test_files_the_node_has_are_used_where_they_are(tmp_path):
    config, files = elsewhere_config(tmp_path)
    for path, data in files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    with localised(config, files) as here:
        assert here == config


def test_a_model_folder_minimum_travels_as_its_weight_files(tmp_path):
    folder = tmp_path / "runner" / "run-3"
    folder.mkdir(parents=True)
    save_file({"weight": torch.arange(6.0).reshape(2, 3)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text("{}")  # not a weight file: stays behind
    config = {"problem": {"kind": "network", "minima": [{"path": str(folder)}], "data": "digits"}}
    files = files_of(config)
    assert list(files) == [str(folder / "model.safetensors")]
    digest = sha256(folder)
    folder.rename(tmp_path / "moved")  # this node lacks the runner's folder
    with localised(config, files) as here:
        copied = Path(here["problem"]["minima"][0]["path"])
        assert copied.is_dir() and sha256(copied) == digest  # the same minimum, as the manifest checks it

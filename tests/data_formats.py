"""Small files in the on-disk formats --data reads (MNIST's idx files, SVHN's .mat
files, an image folder of PNGs) and a data factory module, for the tests of
engine.networks.datasets and of the command line on them."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, packed: bool = False) -> None:
    """MNIST's idx files: images (N, 28, 28) uint8 with magic 2051, labels (N,) uint8 with magic 2049."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {f"{prefix}-images-idx3-ubyte": struct.pack(">iiii", 2051, *images.shape) + images.tobytes(),
             f"{prefix}-labels-idx1-ubyte": struct.pack(">ii", 2049, len(labels)) + labels.tobytes()}
    for name, content in files.items():
        if packed:
            (folder / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (folder / name).write_bytes(content)


def mnist_folder(root: Path, name: str = "MNIST", packed: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    made = {}
    for prefix, n in (("train", 12), ("t10k", 5)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(root / name / "raw", prefix, images, labels, packed)
        made[prefix] = images
        made[f"{prefix}-labels"] = labels
    return made


def svhn_folder(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """SVHN's layout: X (32, 32, 3, N) uint8, y (N, 1) with 10 for the digit 0."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, n in (("train", 7), ("test", 3)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = np.array([[10], [1], [9], [10], [5], [2], [3]][:n], dtype=np.uint8)
        savemat(root / f"{name}_32x32.mat", {"X": x, "y": y})
        made[name], made[f"{name}-labels"] = x, y
    return made


def image_folder(root: Path, classes: tuple[str, ...] = ("cat", "dog", "eel"), size: tuple[int, int] = (40, 48)
                 ) -> None:
    """train/ and val/ with a few PNGs per class, each of one colour (its class's)."""
    from PIL import Image

    for split, per_class in (("train", 2), ("val", 1)):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.new("RGB", size, (80 * c, 10 * i, 200)).save(folder / f"{i}.png")


FACTORY = '''
import torch
from torch.utils.data import Dataset

from engine.networks.datasets import UserData


class Squares(Dataset):
    def __init__(self, n, offset):
        self.n, self.offset = n, offset

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.full((2, 3), float(i + self.offset)), (i + self.offset) % 4


def flip(batch, generator):
    mirrored = torch.rand(batch.shape[0], generator=generator, device=batch.device) < 0.5
    return torch.where(mirrored[:, None, None], batch.flip(-1), batch)


def as_datasets():
    return UserData(Squares(10, 0), Squares(4, 100), augment=flip, classes=5)


def as_tensors():
    x = torch.arange(24, dtype=torch.float32).view(6, 4)
    return (x, torch.tensor([0, 1, 2, 0, 1, 2])), (x[:2], torch.tensor([2, 1]))


def global_noise():
    x = torch.zeros(4, 3)
    return UserData((x, torch.tensor([0, 1, 0, 1])), (x, torch.tensor([0, 1, 0, 1])),
                    augment=lambda batch, generator: batch + torch.rand(batch.shape))


class Blobs(Dataset):
    """Three classes around three corners of an 8-d cube: an MLP separates them in a few steps."""

    def __init__(self, n, seed):
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 3
        self.points = torch.randn(n, 8, generator=generator) * 0.3 + torch.eye(8)[self.labels]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.points[i], int(self.labels[i])


def jitter(batch, generator):
    return batch + 0.01 * torch.randn(batch.shape, generator=generator, device=batch.device)


def blobs():
    return UserData(Blobs(96, 0), Blobs(30, 1), augment=jitter)


class Records(Dataset):
    """Items as a dict, which torch's default_collate would keep a dict: its collate makes the pair."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"pixels": [i, i + 1, i + 2], "digit": i % 2}


def records_pair(items):
    return torch.tensor([r["pixels"] for r in items], dtype=torch.float32), torch.tensor([r["digit"] for r in items])


def with_collate():
    return UserData(Records(5), Records(2), collate=records_pair)


def without_collate():
    return UserData(Records(5), Records(2))


class Faulty(Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        raise AttributeError("'Faulty' object has no attribute 'table'")


def faulty_dataset():
    return UserData(Faulty(), Faulty())


def faulty_prepare():
    x = torch.zeros(4, 3)
    return UserData((x, torch.tensor([0, 1, 0, 1])), (x, torch.tensor([0, 1, 0, 1])), prepare=lambda x: x.view(5))


def a_dict():
    return {"train": 1}


def broken():
    raise OSError("no such share: /mnt/lab")
'''

"""Small data sets kept in memory as tensors: scikit-learn's 8x8 digits, XOR."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Samples:
    """Inputs and their targets, one row per sample."""

    inputs: Tensor  # (N, ...) float32
    targets: Tensor  # (N,) int64 class labels or float32 0/1

    def __post_init__(self) -> None:
        if self.inputs.shape[0] != self.targets.shape[0]:
            raise ValueError(
                f"inputs have {self.inputs.shape[0]} rows but targets "
                f"{self.targets.shape[0]}: give one target per sample"
            )

    def __len__(self) -> int:
        return self.inputs.shape[0]


@dataclass(frozen=True)
class DigitsSplit(Samples):
    """Digits with flat inputs (N, 64) in [0, 1] and labels 0..9 (int64)."""

    def images(self) -> Tensor:
        """The inputs as images: a (N, 1, 8, 8) view, no copy."""
        return self.inputs.view(-1, 1, 8, 8)


@dataclass(frozen=True)
class Digits:
    train: DigitsSplit
    test: DigitsSplit


def digits(seed: int = 0, test_fraction: float = 0.25) -> Digits:
    """scikit-learn's 1797 handwritten 8x8 digits, split once by ``seed``.

    Pixel values 0..16 are scaled to [0, 1]. The same ``seed`` and
    ``test_fraction`` always give the same split.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    pixels, targets = _digits_table()
    inputs = torch.from_numpy((pixels / 16.0).astype(np.float32))  # (1797, 64)
    labels = torch.from_numpy(targets.astype(np.int64))  # (1797,)
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(labels)))
    n_test = int(round(test_fraction * len(labels)))
    test, train = order[:n_test], order[n_test:]
    return Digits(
        train=DigitsSplit(inputs[train].contiguous(), labels[train].contiguous()),
        test=DigitsSplit(inputs[test].contiguous(), labels[test].contiguous()),
    )


def _digits_table() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``load_digits`` returns them: pixels (1797, 64) in 0..16
    and targets (1797,). Read straight from the file scikit-learn ships: importing
    sklearn.datasets takes about 2 s, paid by every process that loads digits."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without running it
    folders = spec.submodule_search_locations if spec is not None else None
    table = Path(folders[0]) / "datasets" / "data" / "digits.csv.gz" if folders else None
    if table is None or not table.is_file():  # another layout: let scikit-learn read it
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.data, bunch.target
    raw = np.loadtxt(table, delimiter=",")
    return raw[:, :-1], raw[:, -1].astype(int)


def xor() -> Samples:
    """The four XOR points: inputs (4, 2) in {0, 1}, targets (4,) float 0/1."""
    inputs = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    targets = torch.tensor([0.0, 1.0, 1.0, 0.0])
    return Samples(inputs, targets)

"""CIFAR10 / CIFAR100 kept on the device as uint8, with the standard
augmentation ("C10+", "C100+") done there, batched.

Files are read through torchvision's CIFAR readers (which check their md5
sums) from a local root; they are fetched only when asked (``download=True``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

PAD = 4  # pixels of zero padding before the random 32x32 crop
SIZE = 32

# Per-channel (R, G, B) mean and standard deviation of the training images, in [0, 1].
MEAN_STD: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


@dataclass(frozen=True)
class CifarSplit:
    """One split: uint8 images and their labels, on one device."""

    kind: str  # "cifar10" | "cifar100"
    images: Tensor  # (N, 3, 32, 32) uint8
    labels: Tensor  # (N,) int64

    def __post_init__(self) -> None:
        if self.images.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"{self.images.shape[0]} images but {self.labels.shape[0]} labels: give one label per image"
            )

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass(frozen=True)
class CifarData:
    kind: str  # "cifar10" | "cifar100"
    class_names: tuple[str, ...]
    train: CifarSplit
    test: CifarSplit

    @property
    def classes(self) -> int:
        return len(self.class_names)


def _dataset_class(kind: str):
    from torchvision.datasets import CIFAR10, CIFAR100

    classes = {"cifar10": CIFAR10, "cifar100": CIFAR100}
    if kind not in classes:
        raise ValueError(f"unknown CIFAR kind {kind!r}: use 'cifar10' or 'cifar100'")
    return classes[kind]


def load_cifar(
    kind: str, root: Path | str, *, download: bool = False, device: str | torch.device = "cpu"
) -> CifarData:
    """CIFAR10 or CIFAR100 ("cifar10" | "cifar100") from the folder ``root``
    (which holds cifar-10-batches-py/ or cifar-100-python/), on ``device``."""
    return read_cifar(_dataset_class(kind), root, download=download, device=device)


def read_cifar(
    dataset, root: Path | str, *, download: bool = False, device: str | torch.device = "cpu"
) -> CifarData:
    """Both splits of a torchvision CIFAR dataset class (CIFAR10, CIFAR100 or a
    subclass with the same file layout) as uint8 tensors on ``device``."""
    from torchvision.datasets import CIFAR100

    kind = "cifar100" if issubclass(dataset, CIFAR100) else "cifar10"
    root = Path(root)
    name = dataset.__name__
    if not download:
        folder = root / dataset.base_folder
        if not folder.is_dir():
            raise ValueError(
                f"{name} not found: {folder} does not exist; pass --download to fetch it"
            )
        wanted = [f for f, _md5 in dataset.train_list + dataset.test_list] + [dataset.meta["filename"]]
        missing = [f for f in wanted if not (folder / f).is_file()]
        if missing:
            raise ValueError(
                f"{name} incomplete: {folder} lacks {', '.join(missing)}; pass --download to fetch it"
            )
    splits = {}
    for train in (True, False):
        try:
            raw = dataset(str(root), train=train, download=download)
        except RuntimeError as err:
            raise ValueError(
                f"{name} files in {root / dataset.base_folder} are corrupt ({err}); "
                f"delete them and pass --download to fetch them again"
            ) from None
        images = torch.from_numpy(raw.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32) uint8
        labels = torch.tensor(raw.targets, dtype=torch.int64)  # (N,)
        splits[train] = CifarSplit(kind, images.to(device), labels.to(device))
    return CifarData(kind, tuple(raw.classes), train=splits[True], test=splits[False])


def normalise(x: Tensor, kind: str = "cifar10") -> Tensor:
    """uint8 images (B, 3, H, W) -> float32, standardised per channel with the
    training set's mean and std of ``kind``."""
    if kind not in MEAN_STD:
        raise ValueError(f"unknown CIFAR kind {kind!r}: use one of {sorted(MEAN_STD)}")
    mean, std = (torch.tensor(v, device=x.device).view(3, 1, 1) for v in MEAN_STD[kind])
    return (x.float() / 255.0 - mean) / std


@dataclass(frozen=True)
class CropFlip:
    """One random crop and flip per sample of a batch."""

    top: Tensor  # (B,) int64 in 0..2 PAD: the crop's first row in the padded image
    left: Tensor  # (B,) int64 in 0..2 PAD: its first column
    flip: Tensor  # (B,) bool: mirror left-right


def draw_crop_flip(batch: int, generator: torch.Generator) -> CropFlip:
    """Draw top, left (uniform in 0..2 PAD), then flip (probability 1/2), in
    that order, on the generator's device."""
    dev = generator.device
    top = torch.randint(0, 2 * PAD + 1, (batch,), generator=generator, device=dev)
    left = torch.randint(0, 2 * PAD + 1, (batch,), generator=generator, device=dev)
    flip = torch.rand(batch, generator=generator, device=dev) < 0.5
    return CropFlip(top, left, flip)


def crop_flip(x: Tensor, choice: CropFlip) -> Tensor:
    """Pad (B, C, 32, 32) by PAD zeros on each side, cut each sample's 32x32
    window at (top, left), mirror the flipped ones; same dtype and device."""
    b, c, h, w = x.shape
    padded = F.pad(x, (PAD, PAD, PAD, PAD))  # (B, C, h + 2 PAD, w + 2 PAD)
    top, left, flip = (t.to(x.device) for t in (choice.top, choice.left, choice.flip))
    cols = torch.arange(w, device=x.device)  # (w,)
    cols = torch.where(flip[:, None], cols.flip(0), cols) + left[:, None]  # (B, w)
    rows = torch.arange(h, device=x.device) + top[:, None]  # (B, h)
    samples = torch.arange(b, device=x.device)[:, None, None, None]
    channels = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[samples, channels, rows[:, None, :, None], cols[:, None, None, :]]  # (B, C, h, w)


def augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """The standard augmentation, batched on x's device: PAD-pixel zero
    padding, a random 32x32 crop and a random horizontal flip per sample.
    Sample i of the result comes from sample i of ``x`` (labels stay aligned)."""
    return crop_flip(x, draw_crop_flip(x.shape[0], generator))


def batches(split: CifarSplit, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """The split in order, unaugmented: (normalised images (B, 3, 32, 32)
    float32, labels (B,)) per batch; the last batch may be smaller."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, len(split), batch_size):
        stop = start + batch_size
        yield normalise(split.images[start:stop], split.kind), split.labels[start:stop]

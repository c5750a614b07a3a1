"""CIFAR10 / CIFAR100 kept on the device as uint8, with the standard
augmentation ("C10+", "C100+") done there, batched.

Files are read from a local root, in the layout and with the md5 sums of
torchvision's CIFAR classes; they are fetched (by torchvision) only when asked
(``download=True``). The batches are Python pickles, and a pickle may name any
function to call: each file is read once, its md5 checked on those bytes, and
those same bytes unpickled by ``load_batch``, which builds only the dicts,
lists, strings, numbers and numpy arrays a CIFAR batch holds and refuses a
file that names anything else. MD5 alone would not do: collisions are cheap.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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
    subclass with the same file layout and md5 sums) as uint8 tensors on ``device``."""
    from torchvision.datasets import CIFAR100

    kind = "cifar100" if issubclass(dataset, CIFAR100) else "cifar10"
    root = Path(root)
    folder = root / dataset.base_folder
    if download and not _intact(dataset, folder):
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(dataset.url, str(root), filename=dataset.filename, md5=dataset.tgz_md5)
    _check_present(dataset, folder)
    splits = {}
    for train, files in ((True, dataset.train_list), (False, dataset.test_list)):
        entries = [_read_entry(dataset, folder, name, md5) for name, md5 in files]
        images = np.concatenate([_images(entry, folder / name) for entry, (name, _) in zip(entries, files)])
        labels = [label for entry, (name, _) in zip(entries, files) for label in _labels(entry, folder / name)]
        if len(labels) != images.shape[0]:
            raise ValueError(f"{dataset.__name__} files in {folder} hold {images.shape[0]} images but "
                             f"{len(labels)} labels; delete them and pass --download to fetch them again")
        images_t = torch.from_numpy(images).reshape(-1, 3, SIZE, SIZE)  # (N, 3, 32, 32) uint8
        splits[train] = CifarSplit(kind, images_t.to(device), torch.tensor(labels, dtype=torch.int64).to(device))
    classes = _class_names(dataset, folder)
    for split in splits.values():
        if len(split) and not 0 <= int(split.labels.min()) <= int(split.labels.max()) < len(classes):
            raise ValueError(f"{dataset.__name__} files in {folder} hold labels outside 0..{len(classes) - 1}; "
                             f"delete them and pass --download to fetch them again")
    return CifarData(kind, classes, train=splits[True], test=splits[False])


def _check_present(dataset, folder: Path) -> None:
    """One line naming what is missing, if anything is."""
    name = dataset.__name__
    if not folder.is_dir():
        raise ValueError(f"{name} not found: {folder} does not exist; pass --download to fetch it")
    wanted = [f for f, _md5 in dataset.train_list + dataset.test_list] + [dataset.meta["filename"]]
    missing = [f for f in wanted if not (folder / f).is_file()]
    if missing:
        raise ValueError(f"{name} incomplete: {folder} lacks {', '.join(missing)}; pass --download to fetch it")


def _intact(dataset, folder: Path) -> bool:
    """Whether every file is there with its md5 sum (else a download fetches them)."""
    files = dataset.train_list + dataset.test_list + [[dataset.meta["filename"], dataset.meta["md5"]]]
    try:
        return all(hashlib.md5((folder / f).read_bytes()).hexdigest() == md5 for f, md5 in files)
    except OSError:
        return False


def _read_entry(dataset, folder: Path, filename: str, md5: str) -> Any:
    """The unpickled content of one file, from bytes read once: the md5 sum is checked on
    the very bytes then unpickled, so the file cannot change in between."""
    path = folder / filename
    data = path.read_bytes()
    if hashlib.md5(data).hexdigest() != md5:
        raise ValueError(f"{dataset.__name__} files in {folder} are corrupt ({filename} has the wrong md5 sum); "
                         f"delete them and pass --download to fetch them again")
    try:
        return load_batch(data)
    except pickle.UnpicklingError as error:
        raise ValueError(f"{dataset.__name__} file {path} {error}: it was not loaded; delete it and pass "
                         f"--download to fetch the official files") from None
    except Exception as error:  # noqa: BLE001 - any damage reads the same to the user
        raise ValueError(f"{dataset.__name__} file {path} is not a CIFAR batch ({type(error).__name__}); "
                         f"delete it and pass --download to fetch the official files") from None


def _latin1(text: str, encoding: str) -> bytes:
    """How a protocol-2 pickle written by Python 3 stores bytes: ``_codecs.encode(text, "latin1")``."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"asks for the text encoding {encoding!r}, which a CIFAR batch never does")
    return codecs.encode(text, "latin1")


# What a CIFAR batch's pickle may name: numpy's array rebuilder (under its numpy 1 and 2
# module names), the array and dtype types, and the bytes encoder of Python 3's protocol 2.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_BATCH_NAMES = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1,
}


class _BatchUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings and numbers, and numpy arrays through _BATCH_NAMES only."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _BATCH_NAMES:
            raise pickle.UnpicklingError(f"names {module[:80]}.{name[:80]}, which a CIFAR batch never does")
        return _BATCH_NAMES[(module, name)]

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refers to objects outside itself, which a CIFAR batch never does")


def load_batch(data: bytes) -> Any:
    """A CIFAR batch's pickle (Python 2's, as published, or Python 3's) from its bytes,
    calling nothing but numpy's array rebuilding; pickle.UnpicklingError says what else it named."""
    return _BatchUnpickler(io.BytesIO(data), encoding="latin1").load()


def _images(entry: Any, path: Path) -> np.ndarray:
    """A batch's images, (n, 3072) uint8, as the files hold them: each row is R, G, B planes of 32 x 32."""
    images = entry.get("data") if isinstance(entry, dict) else None
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 2
            and images.shape[1] == 3 * SIZE * SIZE):
        raise ValueError(f"{path} holds no (n, 3072) uint8 'data' array, as a CIFAR batch does; delete it and "
                         f"pass --download to fetch the official files")
    return images


def _labels(entry: dict, path: Path) -> list[int]:
    labels = entry.get("labels", entry.get("fine_labels"))
    if not (isinstance(labels, list) and all(type(label) is int for label in labels)):
        raise ValueError(f"{path} holds no list of integer labels, as a CIFAR batch does; delete it and pass "
                         f"--download to fetch the official files")
    return labels


def _class_names(dataset, folder: Path) -> tuple[str, ...]:
    meta = dataset.meta
    entry = _read_entry(dataset, folder, meta["filename"], meta["md5"])
    names = entry.get(meta["key"]) if isinstance(entry, dict) else None
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ValueError(f"{folder / meta['filename']} holds no list of class names under {meta['key']!r}; "
                         f"delete it and pass --download to fetch the official files")
    return tuple(names)


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

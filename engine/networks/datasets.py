"""A researcher's data as tensors in memory: torchvision's on-disk formats read
from a local folder (MNIST, Fashion-MNIST, SVHN, an ImageNet-style image folder)
and what a user's data factory returns (``UserData``).

Every loader gives a ``Tensors``: both splits as tensors, the class count, and
the two functions the energy applies to batches: ``prepare`` (stored samples ->
model inputs, train and test alike) and ``augment`` (training batches only,
drawn from the generator it is given). Images are kept as uint8 and standardised
batch by batch by ``prepare``, as CIFAR's are (engine.networks.cifar).

Nothing is fetched unless ``download=True``; a missing or damaged file is a
ValueError of one line that names the folder and the files it should hold.

A user's map-style Dataset too large for memory is not read into tensors but
streamed (``user_tensors``'s ``placement``; engine.networks.stream): its split in
``Tensors`` is then the ``inputs`` and ``targets`` Columns of a ``Streamed``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

Split = tuple[Tensor, Tensor]  # (inputs (N, ...), targets (N,))

# Per-channel mean and standard deviation of the training images in [0, 1], each
# computed over its training set as usually quoted: MNIST's 60,000 images (the
# figures of PyTorch's MNIST example), Fashion-MNIST's 60,000, SVHN's 73,257
# (train_32x32.mat); an image folder gets ImageNet's, those torchvision's
# pretrained models were trained with (an image folder's own are unknown here).
MEAN_STD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
IMAGE_SIZE = 32  # an image folder's images are resized and centre-cropped to this, unless told otherwise
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class Tensors:
    """A data set as the energy takes it: both splits in memory, on one device (or a
    split streamed from a Dataset: the Columns of an engine.networks.stream.Streamed)."""

    train: Split
    test: Split
    classes: int
    prepare: Callable[[Tensor], Tensor] | None = None  # stored samples -> model inputs (every batch)
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None  # training batches only


class Rows(dict):
    """Samples whose items are dicts of tensors (tokens, masks, labels): a dict of
    tensors with one row per sample. To a ``(model, batch)`` loss it is the dict
    (``batch["tokens"]``); to the energy and the training loop it takes rows as a
    tensor of inputs does (``rows[index]``, ``index_select``, ``to``, ``tensor_split``,
    ``view`` of the row axis), every tensor alike, so that one draw of indices picks
    the same samples from each."""

    def __init__(self, tensors: Any):
        super().__init__(tensors)
        counts = {name: value.shape[0] if isinstance(value, Tensor) and value.dim() else None
                  for name, value in self.items()}
        if not counts or None in counts.values() or len(set(counts.values())) != 1:
            shapes = ", ".join(f"{name} {tuple(getattr(v, 'shape', ())) or type(v).__name__}"
                               for name, v in self.items())
            raise ValueError(f"its items are dicts whose values must be tensors with one row per sample, got "
                             f"{shapes or 'an empty dict'}")

    @property
    def shape(self) -> torch.Size:
        return torch.Size([next(iter(self.values())).shape[0]])  # (N,): the samples

    @property
    def device(self) -> torch.device:
        return next(iter(self.values())).device

    def dim(self) -> int:
        return 1

    def _each(self, take: Callable[[Tensor], Tensor]) -> "Rows":
        return Rows({name: take(value) for name, value in self.items()})

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(key)
        return self._each(lambda value: value[key])

    def to(self, *args: Any, **kwargs: Any) -> "Rows":
        return self._each(lambda value: value.to(*args, **kwargs))

    def clone(self) -> "Rows":
        return self._each(Tensor.clone)

    def index_select(self, dim: int, index: Tensor) -> "Rows":
        return self._each(lambda value: value.index_select(dim, index))

    def view(self, *rows: int) -> "Rows":
        """The row axis (N B,) viewed as ``rows`` (N, B), each tensor keeping its own trailing shape."""
        return self._each(lambda value: value.view(*rows, *value.shape[1:]))

    def tensor_split(self, sections: int) -> list["Rows"]:
        parts = {name: value.tensor_split(sections) for name, value in self.items()}
        return [Rows({name: part[i] for name, part in parts.items()}) for i in range(sections)]


@dataclass(frozen=True)
class UserData:
    """What a data factory (``--data package.module:factory``) returns.

    ``train`` and ``test`` are each either a pair of tensors ``(inputs (N, ...),
    targets (N,))`` or a map-style ``torch.utils.data.Dataset`` whose items are
    ``(input, target)``; a Dataset is read whole into memory once, its items put
    together by ``collate`` (a list of items -> ``(inputs, targets)``; default
    torch's ``default_collate``). Items may instead be dicts of tensors (tokens,
    masks, labels), or a split a dict of tensors with one row per sample: such data
    takes a ``(model, batch)`` loss (``--loss``), to which a batch is the dict
    (engine.networks.loss), and has no prepare or augment.

    ``prepare`` (optional) turns a batch of stored inputs into model inputs, on the
    batch's device, for training and test batches alike (keep images uint8 and
    standardise them here, say). ``augment`` (optional) takes a batch of stored
    training inputs and a ``torch.Generator`` and returns the augmented batch, of
    the same shape, sample i from sample i: it must draw its randomness from that
    generator only, so that a stopped session resumes bit for bit. ``classes`` is
    the class count (default: the largest training label + 1)."""

    train: Any
    test: Any
    collate: Callable[[list[Any]], Any] | None = None
    prepare: Callable[[Tensor], Tensor] | None = None
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None
    classes: int | None = None


class Standardise:
    """uint8 images (B, C, H, W) -> float32, standardised per channel; flattened to
    (B, C H W) if ``flat`` (for a fully connected network)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], *, flat: bool = False):
        self.mean, self.std, self.flat = mean, std, flat
        self._on: dict[torch.device, tuple[Tensor, Tensor]] = {}  # mean, std (C, 1, 1) per device: copied once

    def __call__(self, x: Tensor) -> Tensor:
        if x.device not in self._on:
            shape = (len(self.mean), 1, 1)
            self._on[x.device] = (torch.tensor(self.mean, device=x.device).view(shape),
                                  torch.tensor(self.std, device=x.device).view(shape))
        mean, std = self._on[x.device]
        x = (x.float() / 255.0 - mean) / std
        return x.flatten(1) if self.flat else x


# --- MNIST and Fashion-MNIST: torchvision's idx files --------------------------

def load_mnist(kind: str, root: Path, *, spec: str, download: bool = False, flat: bool = False,
               device: str | torch.device = "cpu") -> Tensors:
    """MNIST or Fashion-MNIST (``kind`` "mnist" | "fashion-mnist") from ``root``, which holds
    MNIST/raw/ (or FashionMNIST/raw/) with the four idx files, unpacked, as torchvision keeps them."""
    from torchvision.datasets import MNIST, FashionMNIST

    dataset = {"mnist": MNIST, "fashion-mnist": FashionMNIST}[kind]
    raw = root / dataset.__name__ / "raw"
    processed = root / dataset.__name__ / "processed"  # torchvision's older layout, read as it reads it
    if download:
        _fetch(lambda: dataset(str(root), train=True, download=True), dataset.__name__, root)
    if not all((processed / f).is_file() for f in ("training.pt", "test.pt")):
        missing = [name for name in MNIST_FILES if not (raw / name).is_file()]
        if missing and all((raw / f"{name}.gz").is_file() for name in missing):
            missing = _unpack(raw, missing)  # the files as published: unpacked beside them, as a download does
        if missing:
            packed = " (unpack the .gz files with gunzip)" if (raw / f"{missing[0]}.gz").is_file() else ""
            raise ValueError(f"{spec} has no {dataset.__name__}/raw/{missing[0]}{packed}: put the four "
                             f"{dataset.__name__} files there ({', '.join(MNIST_FILES)}) or add --download")
    splits = []
    for train in (True, False):
        try:
            read = dataset(str(root), train=train)
            images, labels = read.data, read.targets
        except (RuntimeError, OSError, ValueError, AssertionError, IndexError) as error:
            raise ValueError(f"{spec}: the {dataset.__name__} files in {raw} could not be read ({_first_line(error)}): "
                             f"put the official files there, or delete them and add --download") from None
        if not (images.dtype == torch.uint8 and images.dim() == 3 and labels.dim() == 1
                and len(images) == len(labels)):
            raise ValueError(f"{spec}: the {dataset.__name__} files in {raw} hold {tuple(images.shape)} images and "
                             f"{tuple(labels.shape)} labels, not N 28x28 uint8 images with one label each: put the "
                             f"official files there, or delete them and add --download")
        splits.append((images.unsqueeze(1).to(device), labels.long().to(device)))  # (N, 1, 28, 28) uint8, (N,)
    _check_labels(spec, splits, 10)
    mean, std = MEAN_STD[kind]
    return Tensors(splits[0], splits[1], 10, Standardise(mean, std, flat=flat))


def _unpack(raw: Path, names: list[str]) -> list[str]:
    """Unpack raw/NAME.gz to raw/NAME for each name, with torchvision's extract_archive; the
    names left missing (none, unless the folder cannot be written)."""
    from torchvision.datasets.utils import extract_archive

    left = []
    for name in names:
        try:
            extract_archive(str(raw / f"{name}.gz"), str(raw))
        except OSError:  # a read-only folder, a damaged archive: the one line below asks for the files
            (raw / name).unlink(missing_ok=True)
            left.append(name)
    return left


# --- SVHN: the cropped digits' .mat files ------------------------------------

SVHN_FILES = {True: "train_32x32.mat", False: "test_32x32.mat"}


def load_svhn(root: Path, *, spec: str, download: bool = False, flat: bool = False,
              device: str | torch.device = "cpu") -> Tensors:
    """SVHN's cropped digits from ``root`` (train_32x32.mat and test_32x32.mat), label 10 read as digit 0.

    The files are read here with scipy.io.loadmat, as torchvision's SVHN reads them, but
    without its md5 check, so a copy of one's own (a subset, say) reads too; torchvision
    fetches and checks the official files when ``download`` is asked for."""
    from scipy.io import loadmat

    splits = []
    for train in (True, False):
        path = root / SVHN_FILES[train]
        if download and not path.is_file():
            from torchvision.datasets import SVHN

            _fetch(lambda: SVHN(str(root), split="train" if train else "test", download=True), "SVHN", root)
        if not path.is_file():
            raise ValueError(f"{spec} has no {SVHN_FILES[train]}: put SVHN's train_32x32.mat and test_32x32.mat "
                             f"there or add --download")
        try:
            mat = loadmat(str(path), variable_names=["X", "y"])
        except Exception as error:  # noqa: BLE001 - any damage reads the same to the user
            raise ValueError(f"{spec}: {path.name} is not a readable .mat file ({_first_line(error)}): put SVHN's "
                             f"file there, or delete it and add --download") from None
        images, labels = mat.get("X"), mat.get("y")
        if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4
                and images.shape[:3] == (32, 32, 3) and isinstance(labels, np.ndarray)
                and labels.size == images.shape[3] and np.issubdtype(labels.dtype, np.number)):
            raise ValueError(f"{spec}: {path.name} does not hold SVHN's X (32x32x3xN uint8) and y (N labels 1..10): "
                             f"put SVHN's file there, or delete it and add --download")
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(3, 2, 0, 1)))  # (N, 3, 32, 32) uint8
        y = torch.from_numpy(labels.reshape(-1).astype(np.int64)) % 10  # SVHN writes digit 0 as 10
        splits.append((x.to(device), y.to(device)))
    _check_labels(spec, splits, 10)
    mean, std = MEAN_STD["svhn"]
    return Tensors(splits[0], splits[1], 10, Standardise(mean, std, flat=flat))


# --- An ImageNet-style folder: train/ and val/, one folder per class -----------

def image_folder_classes(root: Path, *, spec: str) -> list[str]:
    """The class folders of ``root``/train, sorted as torchvision's ImageFolder sorts them."""
    train = root / "train"
    if not train.is_dir():
        raise ValueError(f"{spec} has no train/ folder: put train/ and val/ there, each with one folder of images "
                         f"per class (train/CLASS/IMAGE.png)")
    classes = sorted(entry.name for entry in train.iterdir() if entry.is_dir())
    if not classes:
        raise ValueError(f"{spec}: train/ holds no class folders: put the images of each class in a folder of "
                         f"their own (train/CLASS/IMAGE.png)")
    return classes


def load_image_folder(root: Path, *, spec: str, size: int = IMAGE_SIZE, flat: bool = False,
                      device: str | torch.device = "cpu") -> Tensors:
    """train/ and val/ of ``root`` read with torchvision's ImageFolder, each image resized
    (shorter side ``size``) and centre-cropped to ``size`` x ``size``, kept as uint8."""
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    classes = image_folder_classes(root, spec=spec)
    shape = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()])
    splits = []
    for name in ("train", "val"):
        folder = root / name
        if not folder.is_dir():
            raise ValueError(f"{spec} has no {name}/ folder: put train/ and val/ there, each with one folder of "
                             f"images per class ({name}/CLASS/IMAGE.png)")
        try:
            dataset = ImageFolder(str(folder), transform=shape)
        except OSError as error:  # a class folder without images
            found = _first_line(error)
            raise ValueError(f"{spec}: in {name}/, {found[:1].lower()}{found[1:]}: put images in each class's "
                             f"folder") from None
        if dataset.classes != classes:
            raise ValueError(f"{spec}: val/ has the class folders {', '.join(dataset.classes)} but train/ has "
                             f"{', '.join(classes)}: give val/ the same class folders as train/")
        try:
            splits.append(tuple(t.to(device) for t in materialise(dataset)))
        except OSError as error:  # an image PIL cannot read; PIL names the file as the repr of its handle
            found = re.sub(r"<_io\.BufferedReader name='(.*)'>", r"\1", _first_line(error))
            raise ValueError(f"{spec}: an image in {name}/ cannot be read ({found}): remove it or replace "
                             f"it") from None
    mean, std = MEAN_STD["imagefolder"]
    return Tensors(splits[0], splits[1], len(classes), Standardise(mean, std, flat=flat))  # type: ignore[arg-type]


# --- A user's data factory --------------------------------------------------------

def materialise(dataset: Any, collate: Callable[[list[Any]], Any] | None = None, chunk: int = 1024) -> Split:
    """A map-style Dataset read whole into memory: its items ``dataset[0] .. dataset[len - 1]``
    put together by ``collate`` (default torch's default_collate), ``chunk`` items at a time.
    The one place a Dataset becomes tensors: streaming data larger than memory replaces it."""
    from torch.utils.data import default_collate

    collate = collate or default_collate
    inputs, targets = [], []
    for start in range(0, len(dataset), chunk):
        batch = collate([dataset[i] for i in range(start, min(start + chunk, len(dataset)))])
        if isinstance(batch, dict):  # dict items: one Rows, no targets of their own
            for name, value in batch.items():
                if not isinstance(value, Tensor):
                    raise TypeError(f"its items are dicts, whose {name!r} collates to a {type(value).__name__}, not "
                                    f"a tensor: give each key a tensor (dict items go to a (model, batch) loss), or "
                                    f"a collate that makes the pair (inputs, targets)")
            inputs.append(Rows(batch))
            continue
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(f"its collate gave a {type(batch).__name__}, not a pair (inputs, targets)")
        x, y = (torch.as_tensor(t) for t in batch)
        inputs.append(x)
        targets.append(y)
    if not inputs:
        raise ValueError("it holds no samples")
    if isinstance(inputs[0], Rows):
        return _dict_split(Rows({name: torch.cat([part[name] for part in inputs]) for name in inputs[0]}))
    return torch.cat(inputs), torch.cat(targets)


def _dict_split(rows: Rows) -> Split:
    """Dict items as a split: the Rows, and a placeholder target per sample (their
    ``(model, batch)`` loss finds its labels in the dict)."""
    return rows, torch.zeros(rows.shape[0], dtype=torch.long, device=rows.device)  # type: ignore[return-value]


def user_tensors(result: Any, *, spec: str, device: str | torch.device = "cpu", placement: str = "memory",
                 budget: int | None = None) -> Tensors:
    """What a data factory returned (a UserData, or a pair (train, test)) as Tensors on
    ``device``; ValueError naming the factory and what is wrong.

    ``placement`` says where a split given as a map-style Dataset goes: "memory" (read
    whole into tensors), "stream" (read on demand, engine.networks.stream) or "auto"
    (streamed when its estimated size is over STREAM_FRACTION of ``budget``, by default
    the memory available on ``device``; stream.choose). A streamed training set of class
    labels needs ``UserData.classes`` (its labels are not read ahead), and its labels are
    checked against the class count on its first rows only."""
    from engine.networks import stream
    if isinstance(result, tuple) and len(result) == 2:
        result = UserData(*result)
    if not isinstance(result, UserData):
        raise ValueError(f"data factory {spec} returned a {type(result).__name__}: return an "
                         f"engine.networks.datasets.UserData, or a pair (train, test)")
    splits = []
    for name in ("train", "test"):
        split = getattr(result, name)
        try:
            if isinstance(split, (tuple, list)) and len(split) == 2 and all(isinstance(t, Tensor) for t in split):
                x, y = split
            elif isinstance(split, dict) and split and all(isinstance(t, Tensor) for t in split.values()):
                x, y = _dict_split(Rows(split))
            elif hasattr(split, "__getitem__") and hasattr(split, "__len__"):
                if len(split) and stream.choose(placement, split, result.collate, device, budget):
                    streamed = stream.Streamed(split, result.collate)
                    x, y = streamed.inputs, streamed.targets
                else:
                    x, y = materialise(split, result.collate)
            else:
                raise TypeError(f"it is a {type(split).__name__}: give a pair of tensors (inputs, targets) or a "
                                f"map-style Dataset")
        except Exception as error:  # noqa: BLE001 - a user's Dataset and collate may raise anything
            reason = _first_line(error) if isinstance(error, (TypeError, ValueError)) else \
                f"{type(error).__name__}: {_first_line(error)}"
            raise ValueError(f"data factory {spec}: its {name} set cannot be read ({reason})") from None
        if x.dim() < 1 or y.dim() != 1 or x.shape[0] != len(y) or x.shape[0] == 0:
            raise ValueError(f"data factory {spec}: its {name} set has inputs of shape {tuple(x.shape)} and targets "
                             f"of shape {tuple(y.shape)}: give N inputs and N targets (a 1-d tensor of N labels)")
        splits.append((x.to(device), y.to(device)))
    if any(isinstance(x, Rows) for x, _ in splits):
        if not all(isinstance(x, Rows) for x, _ in splits):
            raise ValueError(f"data factory {spec}: give dict items in both its train and test sets, or in neither")
        if result.augment is not None or result.prepare is not None:
            raise ValueError(f"data factory {spec}: its items are dicts, which take no prepare or augment: leave "
                             f"them out (your (model, batch) loss gets the batch as it is)")
        return Tensors(splits[0], splits[1], result.classes or 0)  # type: ignore[arg-type]
    classes = result.classes
    if classes is None and isinstance(splits[0][1], stream.Column):
        raise ValueError(f"data factory {spec}: its training set is streamed (too large to read into memory), and "
                         f"its labels are not read ahead: set UserData.classes (the class count)")
    if classes is None:
        labels = splits[0][1]
        if labels.is_floating_point():
            raise ValueError(f"data factory {spec}: its training targets are not class labels (integers): set "
                             f"UserData.classes (for a regression, --loss mse: the outputs per sample), or give int64 "
                             f"labels")
        classes = int(labels.max()) + 1
    splits = [(x, y.long() if isinstance(y, Tensor) and not y.is_floating_point() else y) for x, y in splits]
    _check_labels(f"data factory {spec}", [(x, y if isinstance(y, Tensor) else y[:FIRST_ROWS]) for x, y in splits],
                  classes)
    _check_prepare(result.prepare, splits[0][0], spec)
    _check_augment(result.augment, splits[0][0], spec)
    return Tensors(splits[0], splits[1], classes, result.prepare, result.augment)  # type: ignore[arg-type]


FIRST_ROWS = 1024  # the rows of a streamed split whose labels are checked before it is used


def _check_prepare(prepare: Any, inputs: Tensor, spec: str) -> None:
    """Refuse a prepare that is no function of a batch, or fails on two training inputs."""
    if prepare is None:
        return
    if not callable(prepare):
        raise ValueError(f"data factory {spec}: its prepare is a {type(prepare).__name__}, not a function of a batch")
    try:
        prepared = prepare(inputs[:2].clone())
    except Exception as error:  # noqa: BLE001 - a user's function may raise anything
        raise ValueError(f"data factory {spec}: its prepare fails on 2 training inputs "
                         f"({type(error).__name__}: {_first_line(error)})") from None
    if not (isinstance(prepared, Tensor) and prepared.shape[:1] == inputs[:2].shape[:1]):
        raise ValueError(f"data factory {spec}: its prepare must return a tensor with one row per input")


def _check_augment(augment: Any, inputs: Tensor, spec: str) -> None:
    """Refuse an augmentation that, from two generators in the same state, gives different
    batches: it draws from elsewhere, and a resumed session would not replay it."""
    if augment is None:
        return
    if not callable(augment):
        raise ValueError(f"data factory {spec}: its augment is a {type(augment).__name__}, not a function of "
                         f"(inputs, generator)")
    batch = inputs[:4]
    results = []
    for _ in range(2):
        generator = torch.Generator(device=batch.device).manual_seed(0)
        try:
            results.append(augment(batch.clone(), generator))
        except Exception as error:  # noqa: BLE001 - a user's function may raise anything
            raise ValueError(f"data factory {spec}: its augment fails on 4 training inputs "
                             f"({type(error).__name__}: {_first_line(error)})") from None
    if not (isinstance(results[0], Tensor) and results[0].shape == batch.shape):
        raise ValueError(f"data factory {spec}: its augment must return a tensor of the batch's shape "
                         f"{tuple(batch.shape)}")
    if not torch.equal(results[0], results[1]):
        raise ValueError(f"data factory {spec}: its augment gives different batches from generators in the same "
                         f"state: draw every random number from the generator it is given (a resumed session "
                         f"must replay it)")


def _fetch(download: Callable[[], Any], name: str, root: Path) -> None:
    """Run torchvision's download of ``name`` into ``root``; a failure is one line."""
    try:
        download()
    except Exception as error:  # noqa: BLE001 - no network, a refused connection, a bad checksum...
        reason = getattr(error, "reason", None) or _first_line(error)
        raise ValueError(f"cannot fetch {name} into {root} ({reason}): check the network, or put the files there "
                         f"yourself and leave --download out") from None


def _check_labels(name: str, splits: list[Split], classes: int) -> None:
    for split, (_, labels) in zip(("training", "test"), splits):
        if labels.is_floating_point() or not len(labels):
            continue
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= classes:
            raise ValueError(f"{name}: its {split} labels run from {low} to {high}, outside the {classes} classes "
                             f"0..{classes - 1}")


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]

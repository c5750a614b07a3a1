"""CIFAR loading from the official on-disk layout, normalisation, augmentation."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10, CIFAR100

from engine.networks.cifar import (
    MEAN_STD,
    PAD,
    CifarSplit,
    CropFlip,
    augment,
    batches,
    crop_flip,
    draw_crop_flip,
    load_cifar,
    normalise,
    read_cifar,
)

# --- small files in the official layout -----------------------------------------


def _rows(n: int, first: int) -> np.ndarray:
    """(n, 3072) uint8: sample k's value at flat position q is (7 q + first + k) mod 256."""
    k = np.arange(first, first + n)[:, None]
    return ((7 * np.arange(3072)[None, :] + k) % 256).astype(np.uint8)


def _write(path: Path, entry: dict) -> str:
    # The official files are Python 2 pickles with str keys; protocol 2 with str
    # keys reads back the same way through torchvision's reader.
    path.write_bytes(pickle.dumps(entry, protocol=2))
    return hashlib.md5(path.read_bytes()).hexdigest()


def _verified(official, folder: Path, files: list[str], meta: str):
    """A subclass of ``official`` whose md5 sums are those of the test's own
    files: torchvision's integrity check runs, against these files."""
    md5 = {f: hashlib.md5((folder / f).read_bytes()).hexdigest() for f in files + [meta]}
    n_train = len(official.train_list)
    return type(
        "Test" + official.__name__,
        (official,),
        {
            "train_list": [[f, md5[f]] for f in files[:n_train]],
            "test_list": [[f, md5[f]] for f in files[n_train:]],
            "meta": {**official.meta, "md5": md5[meta]},
        },
    )


C10_TRAIN = [2, 1, 3, 2, 2]  # samples per data_batch_1..5
C10_TEST = 3


@pytest.fixture
def cifar10_root(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    first = 0
    for i, n in enumerate(C10_TRAIN, start=1):
        labels = [(first + k) % 10 for k in range(n)]
        entry = {"batch_label": f"batch {i}", "data": _rows(n, first), "labels": labels}
        _write(folder / f"data_batch_{i}", entry)
        first += n
    _write(folder / "test_batch", {"data": _rows(C10_TEST, 100), "labels": [9, 0, 4]})
    _write(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)], "num_vis": 3072})
    return tmp_path


@pytest.fixture
def cifar100_root(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train = {"data": _rows(4, 0), "fine_labels": [99, 0, 57, 3], "coarse_labels": [0, 1, 2, 3]}
    _write(folder / "train", train)
    _write(folder / "test", {"data": _rows(2, 50), "fine_labels": [12, 88], "coarse_labels": [4, 5]})
    _write(
        folder / "meta",
        {
            "fine_label_names": [f"f{i}" for i in range(100)],
            "coarse_label_names": [f"g{i}" for i in range(20)],
        },
    )
    return tmp_path


def _cifar10(root: Path):
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return _verified(CIFAR10, root / "cifar-10-batches-py", files, "batches.meta")


def _cifar100(root: Path):
    return _verified(CIFAR100, root / "cifar-100-python", ["train", "test"], "meta")


# --- loading ---------------------------------------------------------------------


def test_cifar10_loads_images_channel_first_with_labels_in_file_order(cifar10_root):
    data = read_cifar(_cifar10(cifar10_root), cifar10_root)
    assert data.kind == "cifar10" and data.classes == 10
    assert data.class_names[3] == "c3"
    n = sum(C10_TRAIN)
    assert data.train.images.shape == (n, 3, 32, 32) and data.train.images.dtype == torch.uint8
    assert data.train.labels.dtype == torch.int64
    assert data.train.labels.tolist() == [k % 10 for k in range(n)]
    assert data.test.labels.tolist() == [9, 0, 4]
    # flat position q = 1024 c + 32 i + j holds (7 q + sample) mod 256
    img = data.train.images
    assert img[0, 0, 0, 0] == 0
    assert img[4, 1, 2, 5] == (7 * (1024 + 64 + 5) + 4) % 256
    assert img[9, 2, 31, 31] == (7 * 3071 + 9) % 256
    assert torch.equal(data.test.images.reshape(3, -1), torch.from_numpy(_rows(3, 100)))


def test_cifar100_loads_fine_labels(cifar100_root):
    data = read_cifar(_cifar100(cifar100_root), cifar100_root, device="cpu")
    assert data.kind == "cifar100" and data.classes == 100
    assert data.train.labels.tolist() == [99, 0, 57, 3]
    assert data.test.labels.tolist() == [12, 88]
    assert torch.equal(data.train.images.reshape(4, -1), torch.from_numpy(_rows(4, 0)))
    assert data.test.images.shape == (2, 3, 32, 32)


def test_load_cifar_checks_md5_sums_of_the_official_files(cifar10_root, cifar100_root):
    # Same layout but not the official bytes: torchvision's integrity check refuses them.
    with pytest.raises(ValueError, match="corrupt.*--download"):
        load_cifar("cifar10", cifar10_root)
    with pytest.raises(ValueError, match="CIFAR100 files in .* are corrupt"):
        load_cifar("cifar100", cifar100_root)


def test_missing_root_or_files_give_one_clear_line(tmp_path, cifar10_root):
    line = r"^CIFAR10 not found: .*cifar-10-batches-py does not exist; pass --download"
    with pytest.raises(ValueError, match=line) as err:
        load_cifar("cifar10", tmp_path / "nowhere")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="CIFAR100 not found: .*cifar-100-python"):
        load_cifar("cifar100", tmp_path / "nowhere")
    (cifar10_root / "cifar-10-batches-py" / "data_batch_3").unlink()
    (cifar10_root / "cifar-10-batches-py" / "batches.meta").unlink()
    with pytest.raises(ValueError, match="lacks data_batch_3, batches.meta; pass --download"):
        load_cifar("cifar10", cifar10_root)
    with pytest.raises(ValueError, match="unknown CIFAR kind 'cifar1000'"):
        load_cifar("cifar1000", tmp_path)


def test_a_batch_whose_pickle_names_a_function_is_refused_in_one_line_and_nothing_runs(cifar10_root):
    folder = cifar10_root / "cifar-10-batches-py"
    ran = cifar10_root / "ran"
    # a protocol-0 pickle that calls os.system: what torchvision's pickle.load would run
    (folder / "data_batch_2").write_bytes(b"cos\nsystem\n(S'touch " + str(ran).encode() + b"'\ntR.")
    with pytest.raises(ValueError) as refused:
        read_cifar(_cifar10(cifar10_root), cifar10_root)  # md5 sums of these very files: only the pickle is wrong
    assert "\n" not in str(refused.value)
    assert "data_batch_2 names os.system, which a CIFAR batch never does" in str(refused.value)
    assert not ran.exists()


def test_a_batch_holding_other_objects_than_a_cifar_batch_is_refused_in_one_line(cifar10_root):
    folder = cifar10_root / "cifar-10-batches-py"
    _write(folder / "test_batch", {"data": _rows(3, 100).astype(np.float64), "labels": [9, 0, 4]})
    with pytest.raises(ValueError, match=r"test_batch holds no \(n, 3072\) uint8 'data' array") as refused:
        read_cifar(_cifar10(cifar10_root), cifar10_root)
    assert "\n" not in str(refused.value)
    _write(folder / "test_batch", {"data": _rows(3, 100), "labels": [9, 0, 10]})
    with pytest.raises(ValueError, match=r"labels outside 0\.\.9"):
        read_cifar(_cifar10(cifar10_root), cifar10_root)


# --- normalisation and evaluation batches --------------------------------------------


def test_normalise_uses_the_per_channel_mean_and_std():
    x = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    x[1] = 255
    for kind in ("cifar10", "cifar100"):
        mean, std = MEAN_STD[kind]
        out = normalise(x, kind)
        assert out.dtype == torch.float32 and out.shape == x.shape
        for c in range(3):
            assert out[0, c, 1, 2].item() == pytest.approx(-mean[c] / std[c], rel=1e-6)
            assert out[1, c, 3, 0].item() == pytest.approx((1 - mean[c]) / std[c], rel=1e-6)
    assert normalise(x)[0, 0, 0, 0].item() == pytest.approx(-0.4914 / 0.2470, rel=1e-6)
    with pytest.raises(ValueError, match="unknown CIFAR kind"):
        normalise(x, "svhn")


def test_batches_cover_the_split_in_order():
    images = torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8)
    split = CifarSplit("cifar100", images, torch.arange(7))
    got = list(batches(split, 3))
    assert [len(y) for _, y in got] == [3, 3, 1]
    assert torch.equal(torch.cat([y for _, y in got]), torch.arange(7))
    assert torch.equal(torch.cat([x for x, _ in got]), normalise(images, "cifar100"))
    with pytest.raises(ValueError, match="batch_size"):
        next(batches(split, 0))
    with pytest.raises(ValueError, match="one label per image"):
        CifarSplit("cifar10", images, torch.arange(6))


# --- augmentation ---------------------------------------------------------------------


def coordinate_images(batch: int) -> torch.Tensor:
    """(B, 3, 32, 32) uint8: channel 0 = row + 1, channel 1 = column + 1,
    channel 2 = sample + 1. Zero only where padding was added."""
    x = torch.empty(batch, 3, 32, 32, dtype=torch.uint8)
    x[:, 0] = torch.arange(1, 33, dtype=torch.uint8)[:, None]
    x[:, 1] = torch.arange(1, 33, dtype=torch.uint8)[None, :]
    x[:, 2] = torch.arange(1, batch + 1, dtype=torch.uint8)[:, None, None]
    return x


def expected_crop(b: int, top: int, left: int, flip: bool) -> torch.Tensor:
    """Sample b of coordinate_images after padding, cropping at (top, left), flipping: by hand."""
    out = torch.zeros(3, 32, 32, dtype=torch.uint8)
    for i in range(32):
        for j in range(32):
            r = i + top - PAD
            c = (31 - j if flip else j) + left - PAD
            if 0 <= r < 32 and 0 <= c < 32:
                out[:, i, j] = torch.tensor([r + 1, c + 1, b + 1])
    return out


def test_crop_flip_by_hand_at_the_extreme_offsets():
    x = coordinate_images(3)
    choice = CropFlip(torch.tensor([0, 8, 4]), torch.tensor([0, 8, 4]), torch.tensor([False, True, True]))
    out = crop_flip(x, choice)
    # top-left window: 4 zero rows and columns, then the image's first 28 x 28
    assert not out[0, :, :4].any() and not out[0, :, :, :4].any()
    assert torch.equal(out[0, :, 4:, 4:], x[0, :, :28, :28])
    # bottom-right window, mirrored: zeros at the bottom and on the left
    assert not out[1, :, 28:].any() and not out[1, :, :, :4].any()
    assert torch.equal(out[1, :, :28, 4:], x[1, :, 4:, 4:].flip(-1))
    # centred and mirrored: the plain mirror image
    assert torch.equal(out[2], x[2].flip(-1))
    for b in range(3):
        top, left, flip = (int(t[b]) for t in (choice.top, choice.left, choice.flip))
        assert torch.equal(out[b], expected_crop(b, top, left, flip))


def test_augment_crops_and_flips_exactly_as_the_generator_chose():
    x = coordinate_images(48)
    out = augment(x, torch.Generator().manual_seed(5))
    assert out.shape == x.shape and out.dtype == torch.uint8
    choice = draw_crop_flip(48, torch.Generator().manual_seed(5))
    for b in range(48):
        top, left, flip = int(choice.top[b]), int(choice.left[b]), bool(choice.flip[b])
        assert torch.equal(out[b], expected_crop(b, top, left, flip)), f"sample {b}"
    # the sample channel stays the sample's own: labels stay aligned
    assert all(set(out[b, 2].unique().tolist()) <= {0, b + 1} for b in range(48))


def test_augment_draws_every_offset_and_both_flips():
    choice = draw_crop_flip(2000, torch.Generator().manual_seed(0))
    assert set(choice.top.tolist()) == set(range(2 * PAD + 1))
    assert set(choice.left.tolist()) == set(range(2 * PAD + 1))
    assert 900 < int(choice.flip.sum()) < 1100
    out = augment(coordinate_images(200), torch.Generator().manual_seed(0))
    # some crops reach into the zero padding, some samples are mirrored
    assert (out[:, 0] == 0).any(dim=(1, 2)).sum() > 100
    # the centre pixels always come from the image; columns run backwards where mirrored
    mirrored = out[:, 1, 16, 17].long() < out[:, 1, 16, 16].long()
    assert 60 < int(mirrored.sum()) < 140


def test_augment_is_deterministic_under_a_seeded_generator():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    a = augment(x, torch.Generator().manual_seed(7))
    b = augment(x, torch.Generator().manual_seed(7))
    c = augment(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    g = torch.Generator().manual_seed(7)
    first, second = augment(x, g), augment(x, g)
    assert torch.equal(first, a) and not torch.equal(second, a)


def test_augment_works_on_float_images_too():
    x = coordinate_images(4).float()
    choice = draw_crop_flip(4, torch.Generator().manual_seed(2))
    assert torch.equal(crop_flip(x, choice), crop_flip(coordinate_images(4), choice).float())

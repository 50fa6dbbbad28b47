"""CelebA with a binary target and one or several binary sensitive attributes (FairDD's setting).

Reads ``list_attr_celeba.txt`` and ``list_eval_partition.txt`` (or Kaggle's
``.csv`` versions) from ``ROOT/celeba/`` or ``ROOT/`` and the aligned images from
``img_align_celeba/``. Train = official partition 0; test = partition 2
subsampled to equal (target, sensitive) cells, taking the first images of each
cell in file order. Images are centre-cropped to 178x178 and resized to
``im_size`` (64 by default); normalised with the training split's statistics.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from ddaudit.data._attributes import Attributes, Grouping, check_varies, parse_names, select_attributes
from ddaudit.data._images import normalize_splits_, parse_im_size, read_image, stack_images
from ddaudit.data._options import as_count
from ddaudit.data._registry import register_preset
from ddaudit.data._sampling import stratified_take
from ddaudit.data._types import GroupTensors, RealData
from ddaudit.errors import ConfigError, InputError

MISSING_FILE = "no CelebA file {file!r} under {root} (looked in {root}/celeba and {root})"
UNKNOWN_ATTRIBUTE = "unknown CelebA attribute {name!r} for option {option}; valid attributes include: {examples} ({count} in all)"
SAME_ATTRIBUTES = "target and sensitive are both {name!r}: pick two different CelebA attributes"
BAD_ATTR_FILE = "{path} is not a CelebA attribute list: {why}"
NO_PARTITION = "{image} is listed in the attribute file but not in list_eval_partition"
EMPTY_TEST_CELL = "the CelebA test partition has no image with {target}={t} and {sensitive}={s}; no balanced test set can be built"
EMPTY_TEST_INTERSECTION = ("the CelebA test partition has no image with {target}={t} and {group}; no balanced test set "
                           "can be built: pick fewer sensitive attributes")

CROP = 178
TRAIN_PARTITION, TEST_PARTITION = 0, 2
SUBSET_SEED = 1


def _base_folder(root: str) -> Path:
    base = Path(root).expanduser()
    for folder in (base / "celeba", base):
        if any((folder / f"list_attr_celeba{ext}").is_file() for ext in (".txt", ".csv")):
            return folder
    raise InputError(MISSING_FILE.format(file="list_attr_celeba.txt", root=root))


def _find(folder: Path, stem: str, root: str) -> Path:
    for ext in (".txt", ".csv"):
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    raise InputError(MISSING_FILE.format(file=f"{stem}.txt", root=root))


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(attribute names, image names, values in {0, 1} ``(N, A)``) from the txt or Kaggle csv list."""
    text = path.read_text()
    if path.suffix == ".csv":
        rows = list(csv.reader(text.splitlines()))
        names, body = rows[0][1:], rows[1:]
    else:
        lines = text.splitlines()
        if len(lines) < 2:
            raise InputError(BAD_ATTR_FILE.format(path=path, why="fewer than two lines"))
        names, body = lines[1].split(), [line.split() for line in lines[2:] if line.strip()]
    images, values = [], []
    for row in body:
        if len(row) != len(names) + 1:
            raise InputError(BAD_ATTR_FILE.format(path=path, why=f"row {row[:1]} has {len(row) - 1} values for {len(names)} attributes"))
        images.append(row[0])
        values.append([v.strip() == "1" for v in row[1:]])
    return names, images, np.asarray(values, dtype=np.int64).reshape(len(images), len(names))


def read_partition(path: Path) -> dict[str, int]:
    """Image name -> partition (0 train, 1 validation, 2 test)."""
    rows = [line.replace(",", " ").split() for line in path.read_text().splitlines() if line.strip()]
    partition = {}
    for row in rows:
        if len(row) == 2 and row[1].isdigit():
            partition[row[0]] = int(row[1])
    return partition


def _image_folder(base: Path) -> Path:
    folder = base / "img_align_celeba"
    nested = folder / "img_align_celeba"
    return nested if nested.is_dir() else folder


def _attribute_index(names: list[str], option: str, value: str) -> int:
    if value in names:
        return names.index(value)
    lowered = [n.lower() for n in names]
    if str(value).lower() in lowered:
        return lowered.index(str(value).lower())
    examples = ", ".join(names[:8])
    raise InputError(UNKNOWN_ATTRIBUTE.format(name=value, option=option, examples=examples, count=len(names)))


def _sensitive_columns(names: list[str], sensitive) -> list[int]:
    """Columns of the sensitive attributes: one name as before, or a comma list (``Male,Young``)."""
    wanted = parse_names(sensitive) if isinstance(sensitive, str) else list(sensitive)
    if len(wanted) == 1:
        return [_attribute_index(names, "sensitive", wanted[0])]
    return select_attributes(names, wanted, source="CelebA's list_attr_celeba")


@register_preset("celeba", help="CelebA: binary target vs binary sensitive attribute(s) (options target, sensitive; e.g. sensitive=Male,Young)", needs_root=True)
def celeba(root: str | None, *, target="Attractive", sensitive="Male", im_size=64, limit=None, n_train=None) -> RealData:
    """``limit`` keeps the first rows of each partition (before test balancing); ``n_train`` a stratified subset.

    ``sensitive`` may name several attributes (``"Male,Young"``): the groups are
    then their intersections and the test set is balanced over (target, intersection) cells.
    """
    size = parse_im_size(im_size)
    base = _base_folder(root)
    names, images, values = read_attributes(_find(base, "list_attr_celeba", root))
    t, columns = _attribute_index(names, "target", target), _sensitive_columns(names, sensitive)
    if t in columns:
        raise ConfigError(SAME_ATTRIBUTES.format(name=names[t]))
    keep = None if limit is None else as_count("limit", limit)
    partition_of = read_partition(_find(base, "list_eval_partition", root))
    missing = next((image for image in images if image not in partition_of), None)
    if missing is not None:
        raise InputError(NO_PARTITION.format(image=missing))
    partition = np.asarray([partition_of[image] for image in images], dtype=np.int64)
    grouping = Grouping(Attributes.of([names[c] for c in columns], [["0", "1"]] * len(columns)))
    num_groups = grouping.num_groups
    table = values[:, columns]
    y = values[:, t]
    a = grouping.groups(table)[0].numpy()
    cell = num_groups * y + a

    train_rows = np.flatnonzero(partition == TRAIN_PARTITION)[:keep]
    test_pool = np.flatnonzero(partition == TEST_PARTITION)[:keep]
    if grouping.several:
        check_varies(table[np.concatenate([train_rows, test_pool])], grouping.attributes, "the CelebA rows read")
    if n_train is not None:
        count = as_count("n_train", n_train, maximum=len(train_rows))
        order = np.random.default_rng(SUBSET_SEED).permutation(len(train_rows))
        train_rows = train_rows[np.sort(stratified_take(cell[train_rows], count, order))]
    per_cell = [test_pool[cell[test_pool] == c] for c in range(2 * num_groups)]
    smallest = min(len(rows) for rows in per_cell)
    if smallest == 0:
        empty = next(c for c in range(2 * num_groups) if len(per_cell[c]) == 0)
        if grouping.several:
            raise InputError(EMPTY_TEST_INTERSECTION.format(
                target=names[t], t=empty // num_groups, group=grouping.group_names()[empty % num_groups]))
        raise InputError(EMPTY_TEST_CELL.format(target=names[t], t=empty // 2, sensitive=names[columns[0]], s=empty % 2))
    test_rows = np.sort(np.concatenate([rows[:smallest] for rows in per_cell]))

    folder = _image_folder(base)

    def tensors(rows: np.ndarray) -> GroupTensors:
        x = stack_images((read_image(folder / images[i], mode="RGB", size=size, center_crop=CROP) for i in rows), 3, size)
        groups, attrs = grouping.groups(table[rows])
        return GroupTensors(x, torch.as_tensor(y[rows]), groups, attrs)

    train, test = tensors(train_rows), tensors(test_rows)
    mean, std = normalize_splits_(train.x, test.x)
    target_name = names[t]
    sensitive_names = list(grouping.attributes.names)
    single = None if grouping.several else [f"not {sensitive_names[0]}", sensitive_names[0]]
    return RealData.from_splits(
        "celeba", test=test, train=train, mean=mean, std=std,
        class_names=[f"not {target_name}", target_name], group_names=grouping.group_names(single),
        attributes=grouping.multi,
        meta={
            "source": str(root),
            "target": target_name,
            "sensitive": sensitive_names[0] if len(sensitive_names) == 1 else ",".join(sensitive_names),
            "train_files": [images[i] for i in train_rows],
            "test_files": [images[i] for i in test_rows],
            "test_per_cell": smallest,
        },
    )

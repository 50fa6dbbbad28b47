"""Any image folder with a CSV of labels and groups: ``folder:ROOT``.

``ROOT/groups.csv`` (or option ``csv``) has the columns ``path,label,group`` and
optionally ``split`` (``train``/``test``; rows without one are test rows). Paths
are relative to ROOT. Labels and groups that are all whole numbers are used as
indices; otherwise their sorted distinct values become indices and names.
Images are resized to ``im_size`` (by default the first image's size), kept grey
when the first image is grey, and normalised with the training split's
statistics (the test split's when there is no training row).

Several protected attributes: option ``sensitive=colour,gender`` names group
columns of the CSV instead of ``group``; the groups are their intersections.
"""

from __future__ import annotations

from csv import DictReader
from pathlib import Path

import numpy as np
import torch

from ddaudit.data._attributes import Attributes, Grouping, check_intersection_size, check_varies, select_attributes
from ddaudit.data._images import image_info, normalize_splits_, parse_im_size, read_image, stack_images
from ddaudit.data._registry import register_preset
from ddaudit.data._types import GroupTensors, RealData
from ddaudit.errors import InputError

MISSING_CSV = "no group CSV at {path}: write one with columns path,label,group[,split] or pass csv=FILE"
MISSING_COLUMNS = "{path} lacks column(s) {missing}: it needs path,label,group and optionally split"
BAD_SPLIT = "{path} row {row}: split {value!r} must be 'train' or 'test'"
EMPTY_VALUE = "{path} row {row}: empty {column}"
MISSING_IMAGE = "image {image} listed in {path} does not exist"
NO_TEST_ROWS = "{path} has no test rows: mark some rows split=test (rows without a split are test rows)"

_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def _indices(values: list[str]) -> tuple[np.ndarray, list[str]]:
    """Whole numbers are indices already; anything else maps sorted distinct values to 0..K-1."""
    if all(v.isdigit() for v in values):
        numbers = np.asarray([int(v) for v in values], dtype=np.int64)
        return numbers, [str(i) for i in range(int(numbers.max()) + 1)]
    names = sorted(set(values))
    lookup = {name: i for i, name in enumerate(names)}
    return np.asarray([lookup[v] for v in values], dtype=np.int64), names


def _columns(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return [c.strip() for c in (DictReader(handle).fieldnames or [])]


def _read_rows(path: Path, groups: tuple[str, ...] = ("group",)) -> list[dict[str, str]]:
    """The CSV's rows; *groups* are the columns that must hold a value on every row."""
    required = ("path", "label", *groups)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in required if c not in columns]
        if missing:
            raise InputError(MISSING_COLUMNS.format(path=path, missing=", ".join(missing)))
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    for number, row in enumerate(rows, start=2):
        for column in required:
            if not row.get(column):
                raise InputError(EMPTY_VALUE.format(path=path, row=number, column=column))
        split = row.get("split", "").lower() or "test"
        if split not in ("train", "test"):
            raise InputError(BAD_SPLIT.format(path=path, row=number, value=row.get("split")))
        row["split"] = split
    return rows


def _attribute_columns(csv_path: Path, sensitive) -> tuple[str, ...]:
    """The CSV columns *sensitive* names (any column but path, label and split)."""
    available = [c for c in _columns(csv_path) if c not in ("path", "label", "split")]
    return tuple(available[c] for c in select_attributes(available, sensitive, source=str(csv_path)))


@register_preset("folder", help="an image folder with ROOT/groups.csv: path,label,group[,split] (sensitive=COL,COL: several group columns)", needs_root=True)
def folder(root: str | None, *, csv="groups.csv", im_size=None, sensitive=None) -> RealData:
    """``csv`` is relative to ROOT unless absolute; ``im_size`` defaults to the first image's size.

    ``sensitive`` names group columns of the CSV (``colour,gender``); several make
    the groups their intersections.
    """
    requested_size = None if im_size is None else parse_im_size(im_size)
    base = Path(root).expanduser()
    csv_path = base / Path(csv).expanduser()
    if not csv_path.is_file():
        raise InputError(MISSING_CSV.format(path=csv_path))
    columns = ("group",) if sensitive is None else _attribute_columns(csv_path, sensitive)
    rows = _read_rows(csv_path, columns)
    if not any(row["split"] == "test" for row in rows):
        raise InputError(NO_TEST_ROWS.format(path=csv_path))
    labels, class_names = _indices([row["label"] for row in rows])
    coded = [_indices([row[column] for row in rows]) for column in columns]
    grouping = Grouping(Attributes.of(columns, [names for _, names in coded]))
    table = np.stack([values for values, _ in coded], axis=1)
    if grouping.several:
        check_varies(table, grouping.attributes, str(csv_path))
    check_intersection_size(grouping.attributes.names, grouping.attributes.sizes)
    group_names = grouping.group_names()
    paths = [base / row["path"] for row in rows]
    for path in paths:
        if not path.is_file():
            raise InputError(MISSING_IMAGE.format(image=path, path=csv_path))
    height, width, first_mode = image_info(paths[0])
    size = requested_size or (height, width)
    mode, channel = ("L", 1) if first_mode in _GREY_MODES else ("RGB", 3)

    def tensors(split: str) -> GroupTensors:
        index = np.asarray([i for i, row in enumerate(rows) if row["split"] == split], dtype=np.int64)
        x = stack_images((read_image(paths[i], mode=mode, size=size) for i in index), channel, size)
        groups, attrs = grouping.groups(table[index])
        return GroupTensors(x, torch.as_tensor(labels[index]), groups, attrs)

    train, test = tensors("train"), tensors("test")
    mean, std = normalize_splits_(train.x, test.x)
    return RealData.from_splits(
        "folder", test=test, train=train, class_names=class_names, group_names=group_names, mean=mean, std=std,
        attributes=grouping.multi, meta={"source": str(root), "csv": str(csv_path)},
    )

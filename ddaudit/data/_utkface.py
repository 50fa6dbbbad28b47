"""UTKFace: age bucket as the class, race as the group (FairDD's setting), or other attributes of the names.

Labels come from the file names, ``AGE_GENDER_RACE_DATETIME.jpg`` (or
``.jpg.chip.jpg``), anywhere under ROOT. Class = age < 20 / 20-39 / >= 40; group =
race 0-3 (White, Black, Asian, Indian); race 4 ("Others") is dropped, and names
that do not parse are skipped; both are counted in ``meta``. The test set takes
``test_per_cell`` images of every (age, race) cell, at most half of a cell so
that every cell keeps training rows; the rest is training data. Normalised with
the training split's statistics.

Options ``target`` and ``sensitive`` pick other attributes of the names (``age``
bucket, ``gender`` 0 male / 1 female, ``race``); several sensitive attributes
(``sensitive=race,gender``) make the groups their intersections and the test
set samples every (class, intersection) cell.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ddaudit.data._attributes import Attributes, Grouping, check_varies, select_attributes
from ddaudit.data._images import normalize_splits_, parse_im_size, read_image, stack_images
from ddaudit.data._options import as_count, as_seed
from ddaudit.data._registry import register_preset
from ddaudit.data._types import GroupTensors, RealData
from ddaudit.errors import ConfigError, InputError

MISSING_ROOT = "UTKFace root {root} is not a folder"
NO_IMAGES = "no UTKFace images named AGE_GENDER_RACE_DATETIME.jpg under {root}"
EMPTY_TEST = "no UTKFace test images under {root}: an (age, race) cell needs at least 2 images to give one to the test set"
UNKNOWN_TARGET = "unknown UTKFace target {target!r}; the file names give: {valid}"
SAME_ATTRIBUTE = "target and sensitive both name {name!r}: pick different UTKFace attributes"

CLASS_NAMES = ["<20", "20-39", ">=40"]
GROUP_NAMES = ["White", "Black", "Asian", "Indian"]
#: UTKFace's gender field: 0 male, 1 female.
GENDER_NAMES = ["male", "female"]
OTHER_RACE = 4


def age_bucket(age: int) -> int:
    return 0 if age < 20 else (1 if age < 40 else 2)


def parse_name(name: str) -> tuple[int, int, int] | None:
    """(age, gender, race) from a UTKFace file name, or None when it does not follow the pattern."""
    lowered = name.lower()
    for suffix in (".jpg.chip.jpg", ".jpg"):
        if lowered.endswith(suffix):
            stem = name[: -len(suffix)]
            break
    else:
        return None
    parts = stem.split("_")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    age, gender, race = int(parts[0]), int(parts[1]), int(parts[2])
    if gender not in (0, 1) or not 0 <= race <= OTHER_RACE:
        return None
    return age, gender, race


#: What each file name tells: the attribute name, its values' names and how a parsed (age, gender, race) maps to one.
ATTRIBUTES = {
    "age": (CLASS_NAMES, lambda age, gender, race: age_bucket(age)),
    "gender": (GENDER_NAMES, lambda age, gender, race: gender),
    "race": (GROUP_NAMES, lambda age, gender, race: race),
}


def _choose(target, sensitive) -> tuple[str, Grouping]:
    """The target attribute and the kept sensitive ones (refusing an unknown name or the target twice)."""
    names = list(ATTRIBUTES)
    target_name = str(target).strip().lower()
    if target_name not in names:
        raise ConfigError(UNKNOWN_TARGET.format(target=target, valid=", ".join(names)))
    columns = select_attributes(names, sensitive, source="UTKFace's file names")
    if target_name in [names[c] for c in columns]:
        raise ConfigError(SAME_ATTRIBUTE.format(name=target_name))
    chosen = [names[c] for c in columns]
    return target_name, Grouping(Attributes.of(chosen, [ATTRIBUTES[n][0] for n in chosen]))


@register_preset("utkface", help="UTKFace: age bucket (<20, 20-39, >=40) vs race (4 groups), labels from file names; options target, sensitive (age, gender, race; e.g. sensitive=race,gender)", needs_root=True)
def utkface(root: str | None, *, im_size=64, test_per_cell=100, seed=0, target="age", sensitive="race") -> RealData:
    """``seed`` picks which images of each (class, group) cell go to the test set.

    ``target`` and ``sensitive`` name attributes of the file names (``age`` bucket,
    ``gender``, ``race``); several sensitive ones (``race,gender``) make the groups
    their intersections.
    """
    size = parse_im_size(im_size)
    per_cell = as_count("test_per_cell", test_per_cell)
    rng = np.random.default_rng(as_seed(seed))
    target_name, grouping = _choose(target, sensitive)
    base = Path(root).expanduser()
    if not base.is_dir():
        raise InputError(MISSING_ROOT.format(root=root))
    files, labels, table = [], [], []
    skipped, other_race = 0, 0
    for path in sorted(p for p in base.rglob("*") if p.is_file() and p.name.lower().endswith(".jpg")):
        parsed = parse_name(path.name)
        if parsed is None:
            skipped += 1
            continue
        if parsed[2] == OTHER_RACE:
            other_race += 1
            continue
        files.append(path)
        labels.append(ATTRIBUTES[target_name][1](*parsed))
        table.append([ATTRIBUTES[name][1](*parsed) for name in grouping.attributes.names])
    if not files:
        raise InputError(NO_IMAGES.format(root=root))
    labels, table = np.asarray(labels, dtype=np.int64), np.asarray(table, dtype=np.int64)
    if grouping.several:
        check_varies(table, grouping.attributes, f"the UTKFace images under {root}")
    class_names = list(ATTRIBUTES[target_name][0])
    group_names = grouping.group_names()
    groups = grouping.groups(table)[0].numpy()

    in_test = np.zeros(len(files), dtype=bool)
    test_cells = {}
    for y in range(len(class_names)):
        for a in range(grouping.num_groups):
            rows = np.flatnonzero((labels == y) & (groups == a))
            take = min(per_cell, len(rows) // 2)
            in_test[rows[rng.permutation(len(rows))[:take]]] = True
            test_cells[f"{class_names[y]}/{group_names[a]}"] = take
    if not in_test.any():
        raise InputError(EMPTY_TEST.format(root=root))

    def tensors(rows: np.ndarray) -> GroupTensors:
        x = stack_images((read_image(files[i], mode="RGB", size=size) for i in rows), 3, size)
        a, attrs = grouping.groups(table[rows])
        return GroupTensors(x, torch.as_tensor(labels[rows]), a, attrs)

    train, test = tensors(np.flatnonzero(~in_test)), tensors(np.flatnonzero(in_test))
    mean, std = normalize_splits_(train.x, test.x)
    meta = {
        "source": str(root),
        "skipped_bad_names": skipped,
        "dropped_other_race": other_race,
        "test_per_cell": test_cells,
        "train_files": [str(files[i]) for i in np.flatnonzero(~in_test)],
        "test_files": [str(files[i]) for i in np.flatnonzero(in_test)],
    }
    if (target_name, grouping.attributes.names) != ("age", ("race",)):
        meta.update(target=target_name, sensitive=",".join(grouping.attributes.names))
    return RealData.from_splits(
        "utkface", test=test, train=train, class_names=class_names, group_names=group_names, mean=mean, std=std,
        attributes=grouping.multi, meta=meta,
    )

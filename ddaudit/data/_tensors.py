"""Your own group-labelled tensors: ``tensors:TRAIN.pt,TEST.pt`` or ``tensors:TEST.pt``.

Each file holds a dict ``{"x": float (N, C, H, W), "y": int (N,), "a": int (N,)}``,
optionally ``"class_names"``/``"group_names"`` (lists of strings). Files are read
with ``torch.load(..., weights_only=True)``; pixels are used as stored
(``space="stored"``), so the synthetic set must be in the same space.

Several protected attributes: ``"a"`` is an integer ``(N, K)`` table with,
optionally, ``"attributes"`` (K names; default ``a0 .. a{K-1}``) and
``"attribute_values"`` (K lists of value names). Option ``sensitive`` picks
attributes by name (default: all); the groups are then their intersections.

Option ``keys`` reads a single file holding both splits under other key names
(``keys=biased-dd``: Biased-DD's ``training_imgs``/``training_labs``/``training_attrs``/
``testing_*``; see :mod:`ddaudit.data._tensor_keys`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ddaudit.data._registry import register_preset
from ddaudit.data._tensor_keys import ONE_FILE, parse_keys, split_by_keys
from ddaudit.data._types import GroupTensors, RealData
from ddaudit.data._attributes import Attributes, Grouping, check_intersection_size, check_varies, select_attributes
from ddaudit.errors import ConfigError, InputError

BAD_FILE_LIST = "tensors preset takes 'tensors:TEST.pt' or 'tensors:TRAIN.pt,TEST.pt', not {root!r}"
MISSING_FILE = "tensor file {path} does not exist"
UNSAFE_FILE = "cannot load {path} safely (weights_only=True): {why}"
BAD_CONTENT = "{path}: {why}; expected a dict with x (N,C,H,W float), y (N,) and a (N,) or (N, K) integer tensors"
COLUMN_MISMATCH = "{path}: a has {found} attribute column(s) but {other} has {expected}: both files must hold the same attributes"
NAMES_MISMATCH = "{path}: a has {columns} attribute column(s) but {key} lists {count}: give one entry per column"
VALUE_NAMES = "{path}: attribute_values[{k}] names {count} values but attribute {name!r} takes values up to {largest}"
ONE_COLUMN = "--sensitive picks among several attributes, but {path} holds one group column (a is (N,)); drop --sensitive"


def _load(path: Path) -> dict:
    if not path.is_file():
        raise InputError(MISSING_FILE.format(path=path))
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to unpickle safely is the file's fault
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(UNSAFE_FILE.format(path=path, why=first_line)) from None
    if not isinstance(content, dict):
        raise InputError(BAD_CONTENT.format(path=path, why=f"found a {type(content).__name__}"))
    return content


def _tensors(path: Path, content: dict) -> GroupTensors:
    for key in ("x", "y", "a"):
        if not isinstance(content.get(key), torch.Tensor):
            raise InputError(BAD_CONTENT.format(path=path, why=f"no tensor {key!r}"))
    x, y, a = content["x"], content["y"], content["a"]
    if x.ndim != 4 or not x.is_floating_point():
        raise InputError(BAD_CONTENT.format(path=path, why=f"x is {x.dtype} {tuple(x.shape)}"))
    for key, labels in (("y", y), ("a", a)):
        dims = (1, 2) if key == "a" else (1,)
        if labels.ndim not in dims or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool \
                or (labels.ndim == 2 and labels.shape[1] == 0):
            raise InputError(BAD_CONTENT.format(path=path, why=f"{key} is {labels.dtype} {tuple(labels.shape)}"))
        if labels.shape[0] != x.shape[0]:
            raise InputError(BAD_CONTENT.format(path=path, why=f"{key} has {labels.shape[0]} rows for {x.shape[0]} images"))
        if labels.numel() and int(labels.min()) < 0:
            raise InputError(BAD_CONTENT.format(path=path, why=f"{key} has negative values"))
    if x.shape[0] == 0:
        raise InputError(BAD_CONTENT.format(path=path, why="no rows"))
    if not bool(torch.isfinite(x).all()):
        raise InputError(BAD_CONTENT.format(path=path, why="x contains NaN or infinite values"))
    return GroupTensors(x.to(torch.float32).contiguous(), y.to(torch.int64), a.to(torch.int64))


BAD_NAMES = "{path}: {key} must be a list of at least {count} strings"
SHAPE_MISMATCH = "train images are {train} per image but test images are {test}: both files must share C, H, W"


def _names(contents: list[tuple[Path, dict]], key: str, count: int) -> list[str]:
    for path, content in contents:
        names = content.get(key)
        if names is None:
            continue
        if not isinstance(names, (list, tuple)) or len(names) < count or not all(isinstance(n, str) for n in names):
            raise InputError(BAD_NAMES.format(path=path, key=key, count=count))
        return list(names)
    return [str(i) for i in range(count)]


def _attribute_table(contents: list[tuple[Path, dict]], splits: list[GroupTensors]) -> Attributes:
    """The attributes of (N, K) group tables: the same K in every file, names and value names checked."""
    (first_path, _), columns = contents[0], splits[0].a.shape[1]
    for (path, _), split in zip(contents[1:], splits[1:]):
        if split.a.shape[1] != columns:
            raise InputError(COLUMN_MISMATCH.format(path=path, found=split.a.shape[1], other=first_path, expected=columns))
    names = [f"a{k}" for k in range(columns)]
    values = None
    for path, content in contents:
        if content.get("attributes") is not None:
            given = content["attributes"]
            if not isinstance(given, (list, tuple)) or not all(isinstance(n, str) for n in given):
                raise InputError(BAD_NAMES.format(path=path, key="attributes", count=columns))
            if len(given) != columns:
                raise InputError(NAMES_MISMATCH.format(path=path, columns=columns, key="attributes", count=len(given)))
            names = list(given)
        if content.get("attribute_values") is not None and values is None:
            given = content["attribute_values"]
            if not isinstance(given, (list, tuple)) or not all(
                    isinstance(v, (list, tuple)) and all(isinstance(n, str) for n in v) for v in given):
                raise InputError(BAD_NAMES.format(path=path, key="attribute_values", count=columns))
            if len(given) != columns:
                raise InputError(NAMES_MISMATCH.format(path=path, columns=columns, key="attribute_values", count=len(given)))
            values = (path, [list(v) for v in given])
    largest = [max(int(s.a[:, k].max()) for s in splits) for k in range(columns)]
    if values is None:
        return Attributes.of(names, [[str(v) for v in range(top + 1)] for top in largest])
    path, given = values
    for k, top in enumerate(largest):
        if len(given[k]) <= top:
            raise InputError(VALUE_NAMES.format(path=path, k=k, count=len(given[k]), name=names[k], largest=top))
    return Attributes.of(names, given)


def _select(contents, splits, sensitive) -> tuple[Grouping | None, list[GroupTensors]]:
    """Keep the attributes *sensitive* names: the groups become their value (one) or intersection (several)."""
    if splits[0].a.ndim == 1:
        if sensitive is not None:
            raise ConfigError(ONE_COLUMN.format(path=contents[0][0]))
        return None, splits
    available = _attribute_table(contents, splits)
    columns = select_attributes(available.names, sensitive, source=f"{contents[-1][0]}")
    grouping = Grouping(available.pick(columns))
    table = torch.cat([s.a[:, columns] for s in splits])
    check_varies(table.numpy(), grouping.attributes, str(contents[-1][0]) if len(contents) == 1
                 else f"{contents[0][0]} and {contents[1][0]}")
    check_intersection_size(grouping.attributes.names, grouping.attributes.sizes)
    out = []
    for split in splits:
        a, attrs = grouping.groups(split.a[:, columns])
        out.append(GroupTensors(split.x, split.y, a, attrs))
    return grouping, out


@register_preset("tensors", help="your own tensors: 'tensors:TEST.pt' or 'tensors:TRAIN.pt,TEST.pt' (dicts of x, y, a)", needs_root=True)
def tensors(root: str | None, *, sensitive=None, keys=None) -> RealData:
    """Pixels are used as stored; ``num_classes``/``num_groups`` are the largest labels + 1.

    ``sensitive`` (``"NAME[,NAME...]"``) picks attributes of an ``(N, K)`` ``a``;
    ``keys`` reads both splits of one file saved under other key names
    (:mod:`ddaudit.data._tensor_keys`, e.g. ``keys=biased-dd``).
    """
    paths = [Path(p.strip()).expanduser() for p in (root or "").split(",")]
    if not 1 <= len(paths) <= 2 or any(not str(p) or str(p) == "." for p in paths):
        raise InputError(BAD_FILE_LIST.format(root=root))
    if keys is not None:
        parse_keys(keys)  # a malformed mapping is refused before any file is read
        if len(paths) != 1:
            raise ConfigError(ONE_FILE.format(root=root))
    contents = [(path, _load(path)) for path in paths]
    if keys is not None:
        contents = split_by_keys(paths[0], contents[0][1], keys)
    splits = [_tensors(path, content) for path, content in contents]
    train, test = (None, splits[0]) if len(splits) == 1 else splits
    if train is not None and train.x.shape[1:] != test.x.shape[1:]:
        raise InputError(SHAPE_MISMATCH.format(train=tuple(train.x.shape[1:]), test=tuple(test.x.shape[1:])))
    if len({s.a.ndim for s in splits}) > 1:  # one file with a group column, the other with attribute columns
        widths = [1 if s.a.ndim == 1 else int(s.a.shape[1]) for s in splits]
        raise InputError(COLUMN_MISMATCH.format(path=contents[1][0], found=widths[1], other=contents[0][0],
                                                expected=widths[0]))
    grouping, splits = _select(contents, splits, sensitive)
    if grouping is not None:
        return _several(root, paths, contents, splits, grouping)
    train, test = (None, splits[0]) if len(splits) == 1 else splits
    num_classes = max(int(s.y.max()) for s in splits) + 1
    num_groups = max(int(s.a.max()) for s in splits) + 1
    return RealData(
        name="tensors",
        test=test,
        train=train,
        num_classes=num_classes,
        num_groups=num_groups,
        channel=int(test.x.shape[1]),
        im_size=(int(test.x.shape[2]), int(test.x.shape[3])),
        mean=None,
        std=None,
        class_names=_names(contents, "class_names", num_classes),
        group_names=_names(contents, "group_names", num_groups),
        space="stored",
        meta={"source": [str(p) for p in paths]},
    )


def _several(root, paths, contents, splits, grouping: Grouping) -> RealData:
    """The dataset when ``a`` held attribute columns: groups are the kept attribute's values or their intersections."""
    train, test = (None, splits[0]) if len(splits) == 1 else splits
    num_classes = max(int(s.y.max()) for s in splits) + 1
    single = None
    if not grouping.several:
        single = _names(contents, "group_names", grouping.num_groups) if any(
            c.get("group_names") is not None for _, c in contents) else None
    return RealData.from_splits(
        "tensors", test=test, train=train, class_names=_names(contents, "class_names", num_classes),
        group_names=grouping.group_names(single), space="stored", attributes=grouping.multi,
        meta={"source": [str(p) for p in paths], "sensitive": list(grouping.attributes.names)},
    )

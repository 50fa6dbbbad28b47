"""Your own group-labelled tensors: ``tensors:TRAIN.pt,TEST.pt`` or ``tensors:TEST.pt``.

Each file holds a dict ``{"x": float (N, C, H, W), "y": int (N,), "a": int (N,)}``,
optionally ``"class_names"``/``"group_names"`` (lists of strings). Files are read
with ``torch.load(..., weights_only=True)``; pixels are used as stored
(``space="stored"``), so the synthetic set must be in the same space.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ddaudit.data._registry import register_preset
from ddaudit.data._types import GroupTensors, RealData
from ddaudit.errors import InputError

BAD_FILE_LIST = "tensors preset takes 'tensors:TEST.pt' or 'tensors:TRAIN.pt,TEST.pt', not {root!r}"
MISSING_FILE = "tensor file {path} does not exist"
UNSAFE_FILE = "cannot load {path} safely (weights_only=True): {why}"
BAD_CONTENT = "{path}: {why}; expected a dict with x (N,C,H,W float), y (N,) and a (N,) integer tensors"


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
        if labels.ndim != 1 or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
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


@register_preset("tensors", help="your own tensors: 'tensors:TEST.pt' or 'tensors:TRAIN.pt,TEST.pt' (dicts of x, y, a)", needs_root=True)
def tensors(root: str | None) -> RealData:
    """Pixels are used as stored; ``num_classes``/``num_groups`` are the largest labels + 1."""
    paths = [Path(p.strip()).expanduser() for p in (root or "").split(",")]
    if not 1 <= len(paths) <= 2 or any(not str(p) or str(p) == "." for p in paths):
        raise InputError(BAD_FILE_LIST.format(root=root))
    contents = [(path, _load(path)) for path in paths]
    splits = [_tensors(path, content) for path, content in contents]
    train, test = (None, splits[0]) if len(splits) == 1 else splits
    if train is not None and train.x.shape[1:] != test.x.shape[1:]:
        raise InputError(SHAPE_MISMATCH.format(train=tuple(train.x.shape[1:]), test=tuple(test.x.shape[1:])))
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

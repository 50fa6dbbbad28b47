"""Trajectory-matching outputs: MTT and FTD (``mtt``) and DATM (``datm``).

``distill.py`` writes ``images_<it>.pt`` and ``labels_<it>.pt`` (plain CPU
tensors) next to ``images_best.pt``/``labels_best.pt``; DATM adds ``lr_<it>.pt``
/ ``lr_best.pt`` with the learned evaluator learning rate and stores soft
labels. With ZCA on, the images are in ZCA space and MTT also writes
``images_zca_<it>.pt`` (the inverse transform) beside them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ddaudit.errors import InputError
from ddaudit.io import _messages as msg
from ddaudit.io._convert import make_synthetic_set
from ddaudit.io._files import load_torch
from ddaudit.io._registry import register_reader, single_set
from ddaudit.io._types import SyntheticSet

_ITERATION_FILE = re.compile(r"^(?P<kind>images|labels|lr)_(?P<tag>best|\d+)\.pt$")


class _Files(NamedTuple):
    directory: Path
    tag: str
    images: Path
    labels: Path
    lr: Path


def _files_for(path: Path) -> _Files | None:
    """The images/labels/lr files a directory or one of those files refers to."""
    if path.is_dir():
        directory, tag = path, "best"
    else:
        match = _ITERATION_FILE.match(path.name)
        if match is None:
            return None
        directory, tag = path.parent, match["tag"]
    return _Files(
        directory,
        tag,
        directory / f"images_{tag}.pt",
        directory / f"labels_{tag}.pt",
        directory / f"lr_{tag}.pt",
    )


def _names_an_iteration(files: _Files | None) -> bool:
    """A file named like ``images_best.pt``, or a directory holding such a file."""
    return files is not None and (files.images.is_file() or files.labels.is_file())


def _is_datm(path: Path) -> bool:
    files = _files_for(path)
    return _names_an_iteration(files) and files.lr.is_file()


def _is_mtt(path: Path) -> bool:
    return _names_an_iteration(_files_for(path))


@register_reader("datm", detect=_is_datm, priority=10)
def read_datm(path: Path, index: int) -> SyntheticSet:
    """DATM images_best.pt + labels_best.pt (soft) + lr_best.pt (learned evaluator lr)."""
    return _read(path, index, format="datm", with_lr=True)


@register_reader("mtt", detect=_is_mtt, priority=20)
def read_mtt(path: Path, index: int) -> SyntheticSet:
    """MTT/FTD images_best.pt + labels_best.pt, or an images_<it>.pt/labels_<it>.pt pair."""
    return _read(path, index, format="mtt", with_lr=False)


def _read(path: Path, index: int, *, format: str, with_lr: bool) -> SyntheticSet:
    single_set(index, path)
    files = _files_for(path)
    if files is None:
        raise InputError(
            msg.WRONG_STRUCTURE.format(
                path=path,
                format=format.upper(),
                problem="expected a directory with images_best.pt or a file named images_<it>.pt",
            )
        )
    for needed in (files.images, files.labels) + ((files.lr,) if with_lr else ()):
        if not needed.is_file():
            raise InputError(msg.MISSING_PARTNER.format(path=path, partner=needed.name))
    meta: dict[str, Any] = {
        "space_hint": "zca_or_normalized",
        "iteration": files.tag if files.tag == "best" else int(files.tag),
        "files": {"images": str(files.images), "labels": str(files.labels)},
    }
    zca_files = sorted(p.name for p in files.directory.glob("images_zca_*.pt"))
    if zca_files:
        meta["zca_inverse_files"] = zca_files
    lr = None
    if with_lr:
        lr = _learning_rate(files.lr)
        meta["files"]["lr"] = str(files.lr)
    return make_synthetic_set(
        load_torch(files.images),
        load_torch(files.labels),
        format=format,
        path=str(path),
        where=str(files.images.parent / f"{{images,labels}}_{files.tag}.pt"),
        lr=lr,
        meta=meta,
    )


def _learning_rate(path: Path) -> float:
    value = load_torch(path)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and _is_real(value):
        lr = float(value.detach().reshape(()).item())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        lr = float(value)
    else:
        found = (
            f"a {value.dtype} tensor of shape {tuple(value.shape)}"
            if isinstance(value, torch.Tensor)
            else type(value).__name__
        )
        raise InputError(msg.BAD_LR.format(path=path, found=found))
    if not math.isfinite(lr) or lr <= 0:
        raise InputError(msg.BAD_LR.format(path=path, found=repr(lr)))
    return lr


def _is_real(tensor: torch.Tensor) -> bool:
    return tensor.dtype != torch.bool and not tensor.is_complex()

"""Generic containers a user exports a set into: ``.pt``, ``.npz`` and ``.safetensors``.

All three carry an images array and a labels array under one of the
conventional key pairs; a ``.pt`` may also hold a plain ``(images, labels)``
pair. Nothing is assumed about pixel space.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from ddaudit.errors import InputError
from ddaudit.io import _messages as msg
from ddaudit.io._convert import make_synthetic_set
from ddaudit.io._files import is_torch_file, load_npz, load_safetensors, load_torch
from ddaudit.io._registry import register_reader, single_set
from ddaudit.io._types import SyntheticSet

#: Accepted (images, labels) key pairs, tried in this order.
KEY_PAIRS = (("images", "labels"), ("x", "y"), ("data", "targets"))
_ARRAY_KEY_PAIRS = KEY_PAIRS[:2]


def _pair_from_mapping(
    content: Mapping[str, Any], key_pairs: tuple[tuple[str, str], ...]
) -> tuple[Any, Any, tuple[str, str]] | None:
    for images_key, labels_key in key_pairs:
        if images_key in content and labels_key in content:
            return content[images_key], content[labels_key], (images_key, labels_key)
    return None


def _pair_from_torch(content: Any) -> tuple[Any, Any, tuple[str, str] | None] | None:
    if isinstance(content, dict):
        return _pair_from_mapping(content, KEY_PAIRS)
    if (
        isinstance(content, (list, tuple))
        and len(content) == 2
        and all(isinstance(item, torch.Tensor) for item in content)
    ):
        return content[0], content[1], None
    return None


def _is_tensor_file(path: Path) -> bool:
    return is_torch_file(path) and _pair_from_torch(load_torch(path)) is not None


def _missing_keys(path: Path, content: Any, key_pairs: tuple[tuple[str, str], ...]) -> InputError:
    expected = " or ".join(f"{a}/{b}" for a, b in key_pairs)
    if isinstance(content, Mapping):
        found = sorted(str(key) for key in content)
    else:
        found = f"a {type(content).__name__}"
    return InputError(msg.MISSING_KEYS.format(path=path, expected=expected, found=found))


def _read_pair(
    path: Path,
    index: int,
    content: Any,
    pair: tuple[Any, Any, tuple[str, str] | None] | None,
    *,
    format: str,
    key_pairs: tuple[tuple[str, str], ...],
) -> SyntheticSet:
    single_set(index, path)
    if pair is None:
        raise _missing_keys(path, content, key_pairs)
    images, labels, keys = pair
    meta = {"keys": list(keys)} if keys else {}
    return make_synthetic_set(
        images, labels, format=format, path=str(path), where=str(path), meta=meta
    )


@register_reader("tensors", detect=_is_tensor_file, priority=50)
def read_tensors(path: Path, index: int) -> SyntheticSet:
    """A .pt holding {'images', 'labels'} (or x/y, data/targets) or an (images, labels) pair."""
    content = load_torch(path)
    return _read_pair(
        path, index, content, _pair_from_torch(content), format="tensors", key_pairs=KEY_PAIRS
    )


def _has_suffix(suffix: str):
    def detect(path: Path) -> bool:
        return path.is_file() and path.suffix.lower() == suffix

    return detect


@register_reader("npz", detect=_has_suffix(".npz"), priority=60)
def read_npz(path: Path, index: int) -> SyntheticSet:
    """A numpy .npz with images/labels (or x/y) arrays, read without pickle."""
    arrays = load_npz(path)
    pair = _pair_from_mapping(arrays, _ARRAY_KEY_PAIRS)
    return _read_pair(path, index, arrays, pair, format="npz", key_pairs=_ARRAY_KEY_PAIRS)


@register_reader("safetensors", detect=_has_suffix(".safetensors"), priority=60)
def read_safetensors(path: Path, index: int) -> SyntheticSet:
    """A .safetensors file with images/labels (or x/y) tensors."""
    tensors = load_safetensors(path)
    pair = _pair_from_mapping(tensors, _ARRAY_KEY_PAIRS)
    return _read_pair(path, index, tensors, pair, format="safetensors", key_pairs=_ARRAY_KEY_PAIRS)

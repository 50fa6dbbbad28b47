"""Turn whatever a reader found into a validated :class:`SyntheticSet`.

All readers share this one place so that every format gets the same checks
(shape, dtype, finiteness, label range) and the same canonical form: float32
contiguous CPU images ``(N, C, H, W)`` and int64 labels ``(N,)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ddaudit.errors import InputError
from ddaudit.io import _messages as msg
from ddaudit.io._types import SyntheticSet


def as_tensor(value: Any, *, where: str, what: str) -> torch.Tensor:
    """A detached CPU tensor from a tensor or numpy array (nothing else is data here)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise InputError(msg.NOT_A_TENSOR.format(where=where, what=what, found="object array"))
        return torch.from_numpy(np.ascontiguousarray(value))
    raise InputError(msg.NOT_A_TENSOR.format(where=where, what=what, found=type(value).__name__))


def make_synthetic_set(
    images: Any,
    labels: Any,
    *,
    format: str,
    path: str,
    where: str,
    lr: float | None = None,
    meta: dict | None = None,
) -> SyntheticSet:
    """Validate images and labels and build the set; ``where`` names the source in errors."""
    meta = dict(meta or {})
    images = _canonical_images(as_tensor(images, where=where, what="images"), where, meta)
    hard, soft = _canonical_labels(as_tensor(labels, where=where, what="labels"), where, meta)
    if hard.shape[0] != images.shape[0]:
        raise InputError(
            msg.LABELS_LENGTH.format(where=where, labels=hard.shape[0], images=images.shape[0])
        )
    return SyntheticSet(
        images=images,
        labels=hard,
        format=format,
        path=path,
        soft_labels=soft,
        lr=lr,
        meta=meta,
    )


def _canonical_images(images: torch.Tensor, where: str, meta: dict) -> torch.Tensor:
    if images.dtype == torch.uint8:
        images = images.to(torch.float32) / 255.0
        meta["space_hint"] = "raw"
    elif not images.is_floating_point():
        raise InputError(msg.IMAGES_DTYPE.format(where=where, dtype=_dtype_name(images)))
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4:
        raise InputError(msg.IMAGES_NDIM.format(where=where, shape=tuple(images.shape)))
    if images.shape[0] == 0:
        raise InputError(msg.EMPTY_SET.format(where=where))
    images = images.to(torch.float32)
    bad = int((~torch.isfinite(images)).sum())
    if bad:
        raise InputError(msg.NON_FINITE_IMAGES.format(where=where, count=bad, total=images.numel()))
    return images.contiguous()


def _canonical_labels(
    labels: torch.Tensor, where: str, meta: dict
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Hard int64 labels, plus the soft ``(N, K)`` originals when the file stores those."""
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim == 2:
        if labels.shape[1] == 0 or labels.dtype == torch.bool or labels.is_complex():
            raise InputError(msg.LABELS_NDIM.format(where=where, shape=tuple(labels.shape)))
        soft = labels.to(torch.float32).contiguous()
        bad = int((~torch.isfinite(soft)).sum())
        if bad:
            raise InputError(msg.NON_FINITE_SOFT_LABELS.format(where=where, count=bad))
        meta["soft_label_kind"] = _soft_label_kind(soft)
        return soft.argmax(dim=1).to(torch.int64).contiguous(), soft
    if labels.ndim != 1:
        raise InputError(msg.LABELS_NDIM.format(where=where, shape=tuple(labels.shape)))
    return _hard_labels(labels, where), None


def _hard_labels(labels: torch.Tensor, where: str) -> torch.Tensor:
    if labels.dtype == torch.bool or labels.is_complex():
        raise InputError(
            msg.NON_INTEGER_LABELS.format(where=where, dtype=_dtype_name(labels), example="")
        )
    if labels.is_floating_point():
        fractional = ~torch.isfinite(labels) | (labels != torch.round(labels))
        if bool(fractional.any()):
            example = f" such as {labels[fractional][0].item()!r}"
            text = msg.NON_INTEGER_LABELS.format(
                where=where, dtype=_dtype_name(labels), example=example
            )
            raise InputError(text)
    labels = labels.to(torch.int64)
    negative = labels < 0
    if bool(negative.any()):
        raise InputError(
            msg.NEGATIVE_LABELS.format(
                where=where, count=int(negative.sum()), smallest=int(labels.min())
            )
        )
    return labels.contiguous()


def _soft_label_kind(soft: torch.Tensor) -> str:
    """``"probabilities"`` when rows are distributions, else ``"logits"`` (softmax them)."""
    rows_sum_to_one = torch.allclose(soft.sum(dim=1), torch.ones(soft.shape[0]), atol=1e-4)
    if bool((soft >= 0).all()) and rows_sum_to_one:
        return "probabilities"
    return "logits"


def _dtype_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")

"""One on-disk form for per-sample vectors (KDE weights, pseudo-groups).

``{KEY: (N,) tensor, "settings", "dataset"[, "labels", "recovery"]}`` in the
dataset's training order, read back with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ddaudit.errors import ConfigError, InputError


def save_vector(
    path: str | Path,
    key: str,
    vector: torch.Tensor,
    *,
    settings: dict,
    dataset: str,
    labels: torch.Tensor | None,
    recovery: dict | None,
    force: bool,
    exists_message: str,
) -> Path:
    path = Path(path)
    if path.exists() and not force:
        raise ConfigError(exists_message.format(path=path))
    payload = {key: vector, "settings": dict(settings), "dataset": dataset}
    if labels is not None:
        payload["labels"] = labels.detach().cpu().long()
    if recovery is not None:
        payload["recovery"] = dict(recovery)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def load_vector(path: str | Path, key: str, *, floating: bool, missing_message: str, content_message: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(missing_message.format(path=path))
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(content_message.format(path=path)) from None
    vector = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(vector, torch.Tensor) or vector.dim() != 1 or vector.is_floating_point() != floating:
        raise InputError(content_message.format(path=path))
    return payload

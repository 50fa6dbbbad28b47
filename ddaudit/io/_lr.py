"""The learned learning rate that MTT-family distillers save beside their images."""

from __future__ import annotations

from pathlib import Path

import torch

from ddaudit.errors import InputError


def read_lr(path: str | Path) -> float:
    """A learned learning rate stored as a tensor file (DATM's ``lr_best.pt``), read safely."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(f"{path} is not a readable tensor file ({type(error).__name__})") from None
    try:
        lr = float(torch.as_tensor(value).reshape(-1)[0])
    except Exception:  # noqa: BLE001
        raise InputError(f"{path} does not hold a single learning-rate value") from None
    if not lr > 0 or lr != lr or lr == float("inf"):
        raise InputError(f"{path} holds the learning rate {lr!r}; a learning rate must be a positive number")
    return lr

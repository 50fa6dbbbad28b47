"""Image files to tensors, and the per-build normalisation of image-folder datasets.

CelebA, UTKFace and folder+CSV datasets have no agreed normalisation constants,
so they are normalised with the per-channel mean/std of the split they are built
from (training rows when there are any, else the test rows); the values are
stored in ``RealData.mean``/``std``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ddaudit.errors import ConfigError, InputError

UNREADABLE_IMAGE = "cannot read image {path}: {why}"
BAD_IM_SIZE = "option im_size={value!r} must be a positive whole number or HEIGHTxWIDTH"


def parse_im_size(value: Any) -> tuple[int, int]:
    """``64``, ``"64"``, ``(64, 48)`` or ``"64x48"`` as (height, width)."""
    try:
        if isinstance(value, str):
            parts = [int(p) for p in value.lower().replace(",", "x").split("x")]
        elif isinstance(value, (tuple, list)):
            parts = [int(p) for p in value]
        else:
            if isinstance(value, bool) or int(value) != value:
                raise ValueError
            parts = [int(value)]
    except (TypeError, ValueError):
        raise ConfigError(BAD_IM_SIZE.format(value=value)) from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise ConfigError(BAD_IM_SIZE.format(value=value))
    return parts[0], parts[1]


def read_image(path: Path, *, mode: str, size: tuple[int, int], center_crop: int | None = None) -> np.ndarray:
    """An image as uint8 ``(H, W, C)``: converted to *mode*, centre-cropped, resized (bilinear)."""
    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if center_crop is not None:
                left = int(round((image.width - center_crop) / 2.0))
                top = int(round((image.height - center_crop) / 2.0))
                image = image.crop((left, top, left + center_crop, top + center_crop))
            if image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise InputError(UNREADABLE_IMAGE.format(path=path, why=error)) from None
    return array[:, :, None] if array.ndim == 2 else array


def image_info(path: Path) -> tuple[int, int, str]:
    """(height, width, PIL mode) of an image file without decoding its pixels."""
    try:
        with Image.open(path) as image:
            return image.height, image.width, image.mode
    except (OSError, UnidentifiedImageError) as error:
        raise InputError(UNREADABLE_IMAGE.format(path=path, why=error)) from None


def stack_images(arrays: Iterable[np.ndarray], channel: int, size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``(H, W, C)`` arrays to one float32 ``(N, C, H, W)`` tensor in [0, 1]."""
    arrays = list(arrays)
    if not arrays:
        return torch.zeros((0, channel, *size), dtype=torch.float32)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(torch.float32).div_(255.0).contiguous()


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std over images and pixels, accumulated in float64 (std 1 for a constant channel)."""
    channels = x.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        block = x[start : start + chunk].to(torch.float64)
        total += block.sum(dim=(0, 2, 3))
        squares += (block**2).sum(dim=(0, 2, 3))
    count = max(x.shape[0] * x.shape[2] * x.shape[3], 1)
    mean = total / count
    std = (squares / count - mean**2).clamp_min(0).sqrt()
    std = torch.where(std < 1e-6, torch.ones_like(std), std)  # a constant channel is only centred
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


def normalize_(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``(x - mean) / std`` per channel, in place."""
    return x.sub_(torch.tensor(mean)[:, None, None]).div_(torch.tensor(std)[:, None, None])


def normalize_splits_(train: torch.Tensor, test: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Fit per-channel statistics on *train* (on *test* when there is no training row), normalise both in place."""
    mean, std = channel_stats(train if len(train) else test)
    normalize_(train, mean, std)
    normalize_(test, mean, std)
    return mean, std

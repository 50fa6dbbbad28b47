"""A directory of class sub-folders of PNG/JPEG images (SRe2L, DD-Ranking, exports).

SRe2L writes ``new{cls:03d}/class{cls:03d}_id{ipc:03d}.jpg``. Class indices
come from the folder names: when every name ends in a number (``new003``,
``3``) that number is the class index, otherwise sorted names are numbered
from 0 as torchvision's ImageFolder does. Pixels are read into [0, 1].
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ddaudit.errors import InputError
from ddaudit.io import _messages as msg
from ddaudit.io._convert import make_synthetic_set
from ddaudit.io._registry import register_reader, single_set
from ddaudit.io._types import SyntheticSet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_CHANNELS = {"L": 1, "RGB": 3}
_TRAILING_NUMBER = re.compile(r"(\d+)$")


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_imagefolder(path: Path) -> bool:
    return path.is_dir() and any(_image_files(folder) for folder in _class_folders(path))


def class_indices(names: list[str]) -> dict[str, int]:
    """Folder name -> class index: trailing numbers when all names have one, else sorted order."""
    numbers = [_TRAILING_NUMBER.search(name) for name in names]
    if names and all(numbers):
        mapping: dict[str, int] = {}
        seen: dict[int, str] = {}
        for name, match in zip(names, numbers):
            number = int(match.group(1))
            if number in seen:
                text = msg.DUPLICATE_CLASS_NUMBER.format(
                    first=seen[number], second=name, number=number
                )
                raise InputError(text)
            seen[number] = name
            mapping[name] = number
        return mapping
    return {name: position for position, name in enumerate(sorted(names))}


@register_reader("imagefolder", detect=_is_imagefolder, priority=90)
def read_imagefolder(path: Path, index: int) -> SyntheticSet:
    """A directory of class sub-folders of PNG/JPEG images (SRe2L new000/class000_id000.jpg)."""
    single_set(index, path)
    folders = _class_folders(path) if path.is_dir() else []
    files_per_folder = [(folder, _image_files(folder)) for folder in folders]
    if not any(files for _, files in files_per_folder):
        raise InputError(msg.NOT_IMAGEFOLDER.format(path=path))
    for folder, files in files_per_folder:
        if not files:
            raise InputError(msg.EMPTY_CLASS_FOLDER.format(path=folder))
    class_to_idx = class_indices([folder.name for folder in folders])

    pixels: list[np.ndarray] = []
    labels: list[int] = []
    reference: tuple[Path, tuple[int, int], str] | None = None
    for folder, files in files_per_folder:
        for file in files:
            array, size, mode = _read_image(file)
            if reference is None:
                reference = (file, size, mode)
            elif (size, mode) != reference[1:]:
                raise InputError(
                    msg.MIXED_IMAGES.format(
                        path=file,
                        found=_describe(size, mode),
                        first=reference[0],
                        expected=_describe(*reference[1:]),
                    )
                )
            pixels.append(array)
            labels.append(class_to_idx[folder.name])

    stacked = torch.from_numpy(np.stack(pixels))
    if stacked.ndim == 4:
        stacked = stacked.permute(0, 3, 1, 2)
    images = stacked.to(torch.float32) / 255.0
    return make_synthetic_set(
        images,
        torch.tensor(labels, dtype=torch.int64),
        format="imagefolder",
        path=str(path),
        where=str(path),
        meta={"space_hint": "raw", "class_to_idx": class_to_idx, "image_mode": reference[2]},
    )


def _read_image(file: Path) -> tuple[np.ndarray, tuple[int, int], str]:
    """Pixels as uint8 ``(H, W)`` or ``(H, W, 3)``, with size and mode for the consistency check."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image.load()
            mode, size = image.mode, image.size
            if mode not in _CHANNELS:
                raise InputError(msg.UNSUPPORTED_MODE.format(path=file, mode=mode))
            return np.asarray(image, dtype=np.uint8).copy(), size, mode
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        reason = " ".join(str(error).split())[:160] or type(error).__name__
        raise InputError(msg.UNREADABLE_IMAGE.format(path=file, reason=reason)) from None


def _describe(size: tuple[int, int], mode: str) -> str:
    return f"{size[0]}x{size[1]} {mode}"

"""IDC, DREAM and DANCE condensed sets: ``data.pt`` = ``[images, targets]``.

IDC's ``condense.py`` saves ``[synset.data, synset.targets]`` with the images
in pixel space, clamped to [0, 1] (normalisation happens inside its augmentation).
With ``--factor f > 1`` each stored image is a mosaic of ``f x f`` smaller
training images ("multi-formation"); :func:`decode_multiformation` expands it
the way IDC's evaluation does before training on it.
"""

from __future__ import annotations

import dataclasses
import operator
from pathlib import Path

import torch
import torch.nn.functional as F

from ddaudit.errors import ConfigError, InputError
from ddaudit.io import _messages as msg
from ddaudit.io._convert import make_synthetic_set
from ddaudit.io._files import is_torch_file, load_torch
from ddaudit.io._registry import register_reader, single_set
from ddaudit.io._types import SyntheticSet

MULTIFORMATION_NOTE = (
    "IDC saves factor x factor mosaics when run with --factor > 1; "
    "expand them with ddaudit.io.decode_multiformation(synthetic, factor)"
)


def _is_pair(content: object) -> bool:
    return (
        isinstance(content, (list, tuple))
        and len(content) == 2
        and all(isinstance(item, torch.Tensor) for item in content)
    )


def _is_idc(path: Path) -> bool:
    return is_torch_file(path) and path.name == "data.pt" and _is_pair(load_torch(path))


@register_reader("idc", detect=_is_idc, priority=40)
def read_idc(path: Path, index: int) -> SyntheticSet:
    """IDC/DREAM/DANCE data.pt = [images, targets], pixels in [0, 1] (possibly multi-formation)."""
    single_set(index, path)
    content = load_torch(path)
    if not isinstance(content, (list, tuple)) or len(content) != 2:
        raise InputError(
            msg.WRONG_STRUCTURE.format(
                path=path, format="IDC data.pt", problem="expected a list [images, targets]"
            )
        )
    return make_synthetic_set(
        content[0],
        content[1],
        format="idc",
        path=str(path),
        where=str(path),
        meta={"space_hint": "raw", "multiformation": MULTIFORMATION_NOTE},
    )


def decode_multiformation(synthetic: SyntheticSet, factor: int) -> SyntheticSet:
    """Split every stored image into ``factor x factor`` tiles, each resized to full size.

    The image side is padded with mid-grey (0.5) up to a multiple of ``factor``
    first, as IDC does. The result holds ``factor**2`` times as many images,
    tile-major: all top-left tiles first, with labels repeated to match.
    """
    try:
        factor = operator.index(factor)
    except TypeError:
        raise ConfigError(msg.BAD_FACTOR.format(factor=factor)) from None
    if factor < 1:
        raise ConfigError(msg.BAD_FACTOR.format(factor=factor))
    if factor == 1:
        return synthetic
    images = synthetic.images
    n, c, height, width = images.shape
    pad_h, pad_w = (-height) % factor, (-width) % factor
    padded = F.pad(images, (0, pad_w, 0, pad_h), value=0.5)
    tile_h, tile_w = (height + pad_h) // factor, (width + pad_w) // factor
    tiles = (
        padded.reshape(n, c, factor, tile_h, factor, tile_w)
        .permute(2, 4, 0, 1, 3, 5)
        .reshape(factor * factor * n, c, tile_h, tile_w)
    )
    decoded = F.interpolate(tiles, size=(height, width), mode="bilinear", align_corners=False)
    repeats = factor * factor
    soft = synthetic.soft_labels
    meta = {key: value for key, value in synthetic.meta.items() if key != "multiformation"}
    return dataclasses.replace(
        synthetic,
        images=decoded.contiguous(),
        labels=synthetic.labels.repeat(repeats),
        soft_labels=None if soft is None else soft.repeat(repeats, 1),
        meta={**meta, "multiformation_factor": factor},
    )

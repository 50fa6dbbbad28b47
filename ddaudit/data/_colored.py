"""Coloured grey-scale digits: the recipe behind C-MNIST and C-FMNIST (FG and BG).

Each class c owns colour c of :data:`PALETTE`. In the training set a share
``bias_ratio`` of class c is drawn in its own colour and the rest is spread
evenly over the nine other colours; the test set draws every test image in
every colour, so each (class, colour) cell holds the same number of images.

``fg``: the stroke takes the colour on black, ``pixel = intensity * colour``.
``bg``: the background takes the colour and the stroke is black,
``pixel = (1 - intensity) * colour``. Images are zero-padded 28 -> 32 before
colouring, so a BG border is background colour.

Normalisation uses fixed per-channel constants (as the DC codebases do for
MNIST), derived from the grey-level constants of the source dataset, the padding
and the palette under an equal share of every colour: the same synthetic set
therefore lives in the same space whatever ``bias_ratio`` or subset was built.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ddaudit.data._images import normalize_
from ddaudit.data._sampling import biased_groups
from ddaudit.data._types import GroupTensors, RealData

#: Colour names and RGB values in [0, 1]; class c's majority colour is entry c.
#: The eight distinct corners of the RGB cube minus black, plus orange, purple and
#: grey: any two colours are at least 0.5 apart in RGB.
PALETTE: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("red", (1.0, 0.0, 0.0)),
    ("green", (0.0, 1.0, 0.0)),
    ("blue", (0.0, 0.0, 1.0)),
    ("yellow", (1.0, 1.0, 0.0)),
    ("magenta", (1.0, 0.0, 1.0)),
    ("cyan", (0.0, 1.0, 1.0)),
    ("white", (1.0, 1.0, 1.0)),
    ("orange", (1.0, 0.5, 0.0)),
    ("purple", (0.5, 0.0, 1.0)),
    ("grey", (0.5, 0.5, 0.5)),
)
COLOUR_NAMES = [name for name, _ in PALETTE]
SOURCE_SIZE = 28
IM_SIZE = 32


def palette_tensor() -> torch.Tensor:
    """The palette as a float32 ``(10, 3)`` tensor."""
    return torch.tensor([rgb for _, rgb in PALETTE], dtype=torch.float32)


def colored_stats(grey_mean: float, grey_std: float, mode: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of coloured, padded images from the grey-level mean/std.

    With intensity I (padded) and colour k drawn independently and uniformly from
    the palette: ``E[x] = E[J] E[k]`` and ``E[x^2] = E[J^2] E[k^2]``, where J = I
    (fg) or 1 - I (bg).
    """
    kept = (SOURCE_SIZE / IM_SIZE) ** 2
    first = grey_mean * kept
    second = (grey_std**2 + grey_mean**2) * kept
    if mode == "bg":
        first, second = 1.0 - first, 1.0 - 2.0 * first + second
    colours = np.array([rgb for _, rgb in PALETTE], dtype=np.float64)
    mean = first * colours.mean(axis=0)
    square = second * (colours**2).mean(axis=0)
    std = np.sqrt(square - mean**2)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def render(intensity: torch.Tensor, colours: torch.Tensor, mode: str) -> torch.Tensor:
    """Colour ``(N, 28, 28)`` uint8 digits: float32 ``(N, 3, 32, 32)`` pixels in [0, 1]."""
    pad = (IM_SIZE - intensity.shape[-1]) // 2
    grey = F.pad(intensity.to(torch.float32) / 255.0, (pad, pad, pad, pad)).unsqueeze(1)
    if mode == "bg":
        grey = 1.0 - grey
    return grey * palette_tensor()[colours][:, :, None, None]


def build_colored(
    *,
    name: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    mode: str,
    bias_ratio: float,
    seed: int,
    grey_stats: tuple[float, float],
    class_names: list[str],
    meta: dict,
) -> RealData:
    """The coloured dataset from grey uint8 images ``(N, 28, 28)`` and labels ``(N,)``."""
    num_colours = len(PALETTE)
    rng = np.random.default_rng(seed)
    others = [[g for g in range(num_colours) if g != c] for c in range(num_colours)]
    train_colours = biased_groups(train_labels, list(range(num_colours)), others, bias_ratio, rng)
    mean, std = colored_stats(*grey_stats, mode)

    train_y = torch.as_tensor(train_labels, dtype=torch.int64)
    train_a = torch.as_tensor(train_colours, dtype=torch.int64)
    train_x = normalize_(render(torch.as_tensor(train_images), train_a, mode), mean, std)

    n_test = len(test_labels)
    test_a = torch.arange(num_colours).repeat_interleave(n_test)
    test_digits = torch.arange(n_test).repeat(num_colours)
    test_x = normalize_(render(torch.as_tensor(test_images)[test_digits], test_a, mode), mean, std)
    test_y = torch.as_tensor(test_labels, dtype=torch.int64)[test_digits]

    return RealData.from_splits(
        name, test=GroupTensors(test_x, test_y, test_a), train=GroupTensors(train_x, train_y, train_a),
        class_names=class_names, group_names=COLOUR_NAMES[:num_colours], mean=mean, std=std,
        meta={
            **meta,
            "mode": mode,
            "bias_ratio": bias_ratio,
            "seed": seed,
            "palette": [list(rgb) for _, rgb in PALETTE],
            "bias_aligned_train": train_a == train_y,
            "test_digit": test_digits,
        },
    )


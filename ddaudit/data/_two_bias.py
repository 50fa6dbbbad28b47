"""Digits with two biases at once: stroke colour and background colour (``cmnist-fgbg``).

Two protected attributes, each aligned with the class at its own ratio, so a
distiller made fair for one can be seen collapsing onto the other:

* ``foreground``: five stroke colours; class c's own colour is ``c // 2``. A share
  ``ratios[0]`` of class c wears it, the rest is spread evenly over the other four.
* ``background``: two background colours; class c's own is ``c % 2``, worn by a
  share ``ratios[1]``, the rest wears the other one.

Each attribute alone narrows the class down (to a pair, or to the even or odd
digits); together they name it, like the single colour of ``cmnist-fg``. The
two are drawn independently within each class. The test set draws every test
digit in all ten (foreground, background) combinations, so every (class,
intersection) cell holds the same number of images.

``pixel = intensity * stroke + (1 - intensity) * background`` on digits padded
28 -> 32; normalised with fixed per-channel constants derived, as for the
single-colour presets, from the grey-level statistics under an equal share of
every combination, so a synthetic set lives in one space whatever the ratios.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ddaudit.data._attributes import Attributes, Grouping, select_attributes
from ddaudit.data._images import normalize_
from ddaudit.data._sampling import biased_groups
from ddaudit.data._types import GroupTensors, RealData

#: Stroke colours (any two at least 1 apart in RGB) and background colours; none of the strokes vanishes on either.
FOREGROUND = (("red", (1.0, 0.0, 0.0)), ("green", (0.0, 1.0, 0.0)), ("blue", (0.0, 0.0, 1.0)),
              ("yellow", (1.0, 1.0, 0.0)), ("magenta", (1.0, 0.0, 1.0)))
BACKGROUND = (("black", (0.0, 0.0, 0.0)), ("grey", (0.5, 0.5, 0.5)))
ATTRIBUTES = Attributes.of(("foreground", "background"),
                           ([name for name, _ in FOREGROUND], [name for name, _ in BACKGROUND]))
SOURCE_SIZE, IM_SIZE = 28, 32


def own_values(label: int) -> tuple[int, int]:
    """Class *label*'s own (foreground, background) values."""
    return label // 2, label % 2


def _rgb(colours) -> torch.Tensor:
    return torch.tensor([rgb for _, rgb in colours], dtype=torch.float32)


def two_bias_stats(grey_mean: float, grey_std: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of rendered digits, stroke and background uniform and independent.

    With padded intensity J, stroke f and background b:
    ``E[x] = E[J] E[f] + (1 - E[J]) E[b]`` and
    ``E[x^2] = E[J^2] E[f^2] + 2 (E[J] - E[J^2]) E[f] E[b] + (1 - 2 E[J] + E[J^2]) E[b^2]``.
    """
    kept = (SOURCE_SIZE / IM_SIZE) ** 2
    first, second = grey_mean * kept, (grey_std**2 + grey_mean**2) * kept
    f = np.array([rgb for _, rgb in FOREGROUND], dtype=np.float64)
    b = np.array([rgb for _, rgb in BACKGROUND], dtype=np.float64)
    mean = first * f.mean(0) + (1 - first) * b.mean(0)
    square = (second * (f**2).mean(0) + 2 * (first - second) * f.mean(0) * b.mean(0)
              + (1 - 2 * first + second) * (b**2).mean(0))
    std = np.sqrt(square - mean**2)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def render_two(intensity: torch.Tensor, strokes: torch.Tensor, backgrounds: torch.Tensor) -> torch.Tensor:
    """``(N, 28, 28)`` uint8 digits with per-row stroke and background indices: float32 ``(N, 3, 32, 32)``."""
    pad = (IM_SIZE - intensity.shape[-1]) // 2
    grey = F.pad(intensity.to(torch.float32) / 255.0, (pad, pad, pad, pad)).unsqueeze(1)
    stroke = _rgb(FOREGROUND)[strokes][:, :, None, None]
    background = _rgb(BACKGROUND)[backgrounds][:, :, None, None]
    return grey * stroke + (1.0 - grey) * background


def build_two_bias(*, name: str, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                   ratios: tuple[float, float], seed: int, grey_stats: tuple[float, float], class_names: list[str],
                   sensitive=None, meta: dict) -> RealData:
    """The dataset from grey uint8 digits ``(N, 28, 28)`` and labels; *sensitive* keeps some attributes."""
    columns = select_attributes(ATTRIBUTES.names, sensitive, source=name)
    grouping = Grouping(ATTRIBUTES.pick(columns))
    rng = np.random.default_rng(seed)
    train_images, train_labels = train
    test_images, test_labels = test
    classes = range(len(class_names))
    assigned = []
    for k, size in enumerate(ATTRIBUTES.sizes):
        own = [own_values(c)[k] for c in classes]
        others = [[v for v in range(size) if v != own[c]] for c in classes]
        assigned.append(biased_groups(train_labels, own, others, ratios[k], rng))
    train_table = torch.as_tensor(np.stack(assigned, axis=1), dtype=torch.int64)
    mean, std = two_bias_stats(*grey_stats)
    train_x = normalize_(render_two(torch.as_tensor(train_images), train_table[:, 0], train_table[:, 1]), mean, std)

    combos = torch.cartesian_prod(*[torch.arange(s) for s in ATTRIBUTES.sizes])
    n_test = len(test_labels)
    test_table = combos.repeat_interleave(n_test, dim=0)
    test_digits = torch.arange(n_test).repeat(len(combos))
    test_x = normalize_(render_two(torch.as_tensor(test_images)[test_digits], test_table[:, 0], test_table[:, 1]),
                        mean, std)
    test_y = torch.as_tensor(test_labels, dtype=torch.int64)[test_digits]
    train_y = torch.as_tensor(train_labels, dtype=torch.int64)
    own_table = torch.tensor([own_values(c) for c in classes], dtype=torch.int64)

    def split(x, y, table) -> GroupTensors:
        a, attrs = grouping.groups(table[:, columns])
        return GroupTensors(x, y, a, attrs)

    return RealData.from_splits(
        name, test=split(test_x, test_y, test_table), train=split(train_x, train_y, train_table),
        class_names=class_names, group_names=grouping.group_names(), mean=mean, std=std,
        attributes=grouping.multi,
        meta={
            **meta,
            "mode": "fgbg",
            "ratios": {n: float(ratios[k]) for k, n in enumerate(ATTRIBUTES.names)},
            "seed": seed,
            "sensitive": list(grouping.attributes.names),
            "bias_aligned_train": (train_table[:, columns] == own_table[train_y][:, columns]).all(dim=1),
            "test_digit": test_digits,
        },
    )

"""Bringing a distilled set and a real dataset into one pixel space.

Distillers save images in different spaces: normalised with the dataset's
mean/std (DatasetCondensation), raw [0, 1] pixels, or ZCA-whitened (MTT/DATM).
:func:`align_pixel_space` puts the synthetic images and the real tensors in the
same space, so evaluators trained on one are tested on the other; the pieces
(:func:`resolve_space`, :func:`to_real_space`, :func:`fit_zca`,
:func:`pixel_warning`) are public for notebooks that need only one step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from ddaudit.choices import SPACES
from ddaudit.data._types import GroupTensors, RealData
from ddaudit.errors import ConfigError, InputError


@dataclass
class AlignedData:
    """Synthetic images and real tensors in one pixel space (``space``, resolved)."""

    syn_x: torch.Tensor
    test: GroupTensors
    train: GroupTensors | None
    space: str
    warnings: list[str] = field(default_factory=list)


def check_compatible(syn, real: RealData) -> None:
    """Refuse a synthetic set (a :class:`ddaudit.io.SyntheticSet`) that cannot be
    evaluated on *real*, saying how to fix it."""
    _, c, h, w = syn.images.shape
    if c != real.channel or (h, w) != tuple(real.im_size):
        raise InputError(
            f"synthetic images are {c}x{h}x{w} but {real.name} test images are "
            f"{real.channel}x{real.im_size[0]}x{real.im_size[1]}: distil at the real data's size "
            f"or pick the matching --real dataset (e.g. an im_size option)"
        )
    labels = syn.labels
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= real.num_classes):
        raise InputError(
            f"synthetic labels span {int(labels.min())}..{int(labels.max())} but {real.name} has "
            f"{real.num_classes} classes (0..{real.num_classes - 1})"
        )
    counts = torch.bincount(labels, minlength=real.num_classes)
    empty = [i for i, n in enumerate(counts.tolist()) if n == 0]
    if empty:
        names = ", ".join(str(i) for i in empty[:10])
        raise InputError(
            f"the synthetic set has no images for class(es) {names} of {real.name}; "
            f"every class needs at least one image"
        )
    if syn.soft_labels is not None and syn.soft_labels.shape[1] != real.num_classes:
        raise InputError(
            f"soft labels have {syn.soft_labels.shape[1]} columns but {real.name} has {real.num_classes} classes"
        )


def check_channel_stats(values: Sequence[float] | None, channel: int, flag: str) -> torch.Tensor | None:
    """``--mean``/``--std`` as a ``(1, C, 1, 1)`` tensor (one value is repeated per channel)."""
    if values is None:
        return None
    values = list(values)
    if len(values) == 1:
        values = values * channel
    if len(values) != channel:
        raise ConfigError(f"{flag} needs 1 or {channel} values (one per channel), got {len(values)}")
    if flag == "--std" and any(v <= 0 for v in values):
        raise ConfigError("--std values must be positive")
    return torch.tensor(values, dtype=torch.float32).view(1, channel, 1, 1)


def to_real_space(
    images: torch.Tensor,
    real: RealData,
    space: str,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> tuple[torch.Tensor, str]:
    """Bring synthetic pixels into the space the real tensors are stored in.

    ``normalized``: saved as ``(pixel - mean) / std`` with the real dataset's
    statistics, or with ``--mean/--std`` when given (then re-normalised with the
    real dataset's). ``raw``: pixels in [0, 1], normalised here. ``zca``: left
    as is (the real data are whitened instead, by :func:`fit_zca`).
    """
    c = real.channel
    user_mean = check_channel_stats(mean, c, "--mean")
    user_std = check_channel_stats(std, c, "--std")
    if (user_mean is None) != (user_std is None):
        raise ConfigError("--mean and --std go together: give both or neither")
    if space == "zca":
        return images, space
    if real.mean is None or real.std is None:
        if user_mean is not None:
            images = images * user_std + user_mean
        return images, space
    real_mean = torch.tensor(real.mean, dtype=torch.float32).view(1, c, 1, 1)
    real_std = torch.tensor(real.std, dtype=torch.float32).view(1, c, 1, 1)
    if space == "raw":
        return (images - real_mean) / real_std, space
    if user_mean is not None:
        images = (images * user_std + user_mean - real_mean) / real_std
    return images, space


def check_space(space: str) -> str:
    """*space* if it is one of :data:`ddaudit.choices.SPACES`."""
    if space not in SPACES:
        raise ConfigError(f"unknown --space {space!r}; choose one of {', '.join(SPACES)}")
    return space


def resolve_space(space: str, syn) -> str:
    """``auto`` becomes the space the reader saw in the file (``space_hint``), else ``normalized``."""
    if check_space(space) != "auto":
        return space
    hint = syn.meta.get("space_hint", "normalized")
    return "raw" if hint == "raw" else "normalized"


def fit_zca(train_x: torch.Tensor, eps: float = 0.1) -> Callable[[torch.Tensor], torch.Tensor]:
    """ZCA whitening fitted on real training images (the MTT convention, eps 0.1)."""
    flat = train_x.reshape(train_x.shape[0], -1).double()
    centre = flat.mean(0, keepdim=True)
    cov = (flat - centre).T @ (flat - centre) / flat.shape[0]
    evals, evecs = torch.linalg.eigh(cov)
    transform = (evecs @ torch.diag(1.0 / torch.sqrt(evals.clamp_min(0) + eps)) @ evecs.T).float()
    centre = centre.float()

    def apply(x: torch.Tensor) -> torch.Tensor:
        out = (x.reshape(x.shape[0], -1) - centre) @ transform
        return out.reshape(x.shape)

    return apply


def pixel_warning(syn_x: torch.Tensor, real_x: torch.Tensor) -> str | None:
    """Flag a likely pixel-space mix-up: synthetic statistics far from the real data's."""
    s_mean, r_mean = float(syn_x.mean()), float(real_x.mean())
    s_std, r_std = float(syn_x.std()), float(real_x.std())
    if r_std <= 0:
        return None
    if abs(s_mean - r_mean) > 1.5 * r_std or not (0.2 < s_std / max(r_std, 1e-8) < 5.0):
        return (
            f"synthetic pixels (mean {s_mean:.2f}, std {s_std:.2f}) look unlike the real test pixels "
            f"(mean {r_mean:.2f}, std {r_std:.2f}): check --space / --mean / --std"
        )
    return None


def align_pixel_space(syn, real: RealData, space: str = "auto", mean: Sequence[float] | None = None,
                      std: Sequence[float] | None = None) -> AlignedData:
    """The synthetic images of *syn* and *real*'s tensors in one pixel space.

    ``zca`` whitens the real test and training data with a transform fitted on
    the training data (and needs it); the other spaces convert the synthetic
    pixels. A warning is added when the result still looks mismatched.
    """
    space = resolve_space(space, syn)
    syn_x, space = to_real_space(syn.images, real, space, mean, std)
    test, train = real.test, real.train
    if space == "zca":
        if train is None:
            raise InputError("--space zca needs the real training data to fit the whitening; this --real has none")
        whiten = fit_zca(train.x)
        test, train = test.with_x(whiten(test.x)), train.with_x(whiten(train.x))
    note = pixel_warning(syn_x, test.x)
    return AlignedData(syn_x=syn_x, test=test, train=train, space=space, warnings=[note] if note else [])

"""The in-memory form of a real, group-labelled dataset."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class GroupTensors:
    """Images with class and protected-group labels, all on CPU.

    ``x`` is float32 ``(N, C, H, W)`` in the dataset's *normalised* space
    (``(pixel - mean) / std``, pixels in [0, 1]) unless the preset says
    otherwise (``RealData.space``); ``y`` are class indices and ``a`` group
    indices, both int64 ``(N,)``. With several protected attributes ``attrs``
    holds each row's values, int64 ``(N, K)``, and ``a`` is their intersection
    index (:mod:`ddaudit.data._attributes`); with one, ``attrs`` is ``None``.
    """

    x: torch.Tensor
    y: torch.Tensor
    a: torch.Tensor
    attrs: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: torch.Tensor) -> "GroupTensors":
        attrs = None if self.attrs is None else self.attrs[index]
        return GroupTensors(self.x[index], self.y[index], self.a[index], attrs)

    def with_x(self, x: torch.Tensor) -> "GroupTensors":
        """The same rows with other pixels (e.g. whitened): labels and attributes travel along."""
        return GroupTensors(x, self.y, self.a, self.attrs)


@dataclass
class RealData:
    """A real dataset with groups: what ``--real`` resolves to.

    ``train`` may be ``None`` (a test file alone is enough for the metrics; the
    references and directional bias amplification need it). ``mean``/``std``
    are per-channel statistics of the normalisation already applied to ``x``
    (``None`` when pixels are used as stored). ``space`` is ``"normalized"``
    or ``"stored"``. With several protected attributes, ``attributes`` names
    them and ``attribute_values`` each one's values; the groups are then their
    intersections (``group_names`` read ``Male=1, Young=0``). Both are ``None``
    for one attribute.
    """

    name: str
    test: GroupTensors
    train: GroupTensors | None
    num_classes: int
    num_groups: int
    channel: int
    im_size: tuple[int, int]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    class_names: list[str]
    group_names: list[str]
    space: str = "normalized"
    meta: dict = field(default_factory=dict)
    attributes: list[str] | None = None
    attribute_values: list[list[str]] | None = None

    @property
    def num_attributes(self) -> int:
        return 1 if self.attributes is None else len(self.attributes)

    @classmethod
    def from_splits(cls, name: str, *, test: GroupTensors, train: GroupTensors | None, class_names, group_names,
                    mean=None, std=None, space: str = "normalized", meta: dict | None = None,
                    attributes=None) -> "RealData":
        """A dataset from its splits: sizes come from the names, image shape from the test images.

        An empty training split counts as none. *attributes* (an
        :class:`~ddaudit.data._attributes.Attributes` of two or more) marks the
        groups as their intersections.
        """
        _, channel, height, width = test.x.shape
        return cls(
            name=name, test=test, train=train if train is not None and len(train) else None,
            num_classes=len(class_names), num_groups=len(group_names), channel=int(channel),
            im_size=(int(height), int(width)), mean=mean, std=std, class_names=list(class_names),
            group_names=list(group_names), space=space, meta=dict(meta or {}),
            attributes=None if attributes is None else list(attributes.names),
            attribute_values=None if attributes is None else [list(v) for v in attributes.values],
        )

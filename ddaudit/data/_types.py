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
    indices, both int64 ``(N,)``.
    """

    x: torch.Tensor
    y: torch.Tensor
    a: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: torch.Tensor) -> "GroupTensors":
        return GroupTensors(self.x[index], self.y[index], self.a[index])


@dataclass
class RealData:
    """A real dataset with groups: what ``--real`` resolves to.

    ``train`` may be ``None`` (a test file alone is enough for the metrics; the
    references and directional bias amplification need it). ``mean``/``std``
    are per-channel statistics of the normalisation already applied to ``x``
    (``None`` when pixels are used as stored). ``space`` is ``"normalized"``
    or ``"stored"``.
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

    @classmethod
    def from_splits(cls, name: str, *, test: GroupTensors, train: GroupTensors | None, class_names, group_names,
                    mean=None, std=None, space: str = "normalized", meta: dict | None = None) -> "RealData":
        """A dataset from its splits: sizes come from the names, image shape from the test images.

        An empty training split counts as none.
        """
        _, channel, height, width = test.x.shape
        return cls(
            name=name, test=test, train=train if train is not None and len(train) else None,
            num_classes=len(class_names), num_groups=len(group_names), channel=int(channel),
            im_size=(int(height), int(width)), mean=mean, std=std, class_names=list(class_names),
            group_names=list(group_names), space=space, meta=dict(meta or {}),
        )

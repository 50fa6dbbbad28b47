"""The in-memory form every synthetic-set reader produces."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class SyntheticSet:
    """A distilled set as loaded from disk, before any pixel-space conversion.

    ``images`` is float32 ``(N, C, H, W)`` exactly as stored (normalised, raw
    [0, 1] or ZCA space: the reader does not guess; the audit converts).
    ``labels`` are hard class indices ``(N,)`` (argmax of soft labels when the
    file stores soft labels); ``soft_labels`` keeps the ``(N, K)`` originals.
    ``lr`` is a learned evaluator learning rate when the file carries one (DATM).
    """

    images: torch.Tensor
    labels: torch.Tensor
    format: str
    path: str
    soft_labels: torch.Tensor | None = None
    lr: float | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def classes(self) -> list[int]:
        return sorted(int(c) for c in torch.unique(self.labels).tolist())

    @property
    def ipc(self) -> float:
        """Images per class (a float when classes have unequal counts)."""
        counts = torch.bincount(self.labels)
        counts = counts[counts > 0]
        if counts.numel() == 0:
            return 0.0
        if bool((counts == counts[0]).all()):
            return int(counts[0])
        return float(counts.float().mean())

"""Seed streams and the seeded real subset, shared by the audit, its attack sections and the probe.

Below all three so that none imports another for them; :mod:`ddaudit.auditing`
keeps the names importable.
"""

from __future__ import annotations

import numpy as np
import torch

from ddaudit.data import GroupTensors

#: Seed streams: one user seed gives independent seeds for each use.
EVALUATOR_STREAM, SUBSET_STREAM = 0, 1


def derive_seeds(seed: int, count: int, stream: int = EVALUATOR_STREAM) -> list[int]:
    """Independent seeds from one user seed (stable across versions)."""
    state = np.random.SeedSequence([seed, stream]).generate_state(count, dtype=np.uint32)
    return [int(s) for s in state]


def random_subset(train: GroupTensors, labels: torch.Tensor, num_classes: int, seed: int) -> GroupTensors:
    """Real training rows with the synthetic set's per-class counts (the same IPC)."""
    return train.subset(random_subset_rows(train, labels, num_classes, seed))


def random_subset_rows(train: GroupTensors, labels: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """The training-row indices :func:`random_subset` takes."""
    per_class = torch.bincount(labels, minlength=num_classes).tolist()
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for cls, want in enumerate(per_class):
        rows = torch.nonzero(train.y == cls).flatten()
        if len(rows) == 0:
            continue
        order = rows[torch.randperm(len(rows), generator=generator)]
        picks.append(order[: min(want, len(rows))])
    return torch.cat(picks)

"""Deterministic row selection: stratified subsets and biased group assignment.

Everything takes an explicit ``numpy.random.Generator`` or a fixed order, so a
dataset is a pure function of its options.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def round_half_up(value: float) -> int:
    """Round x.5 up (Python's ``round`` goes to even, which would make 0.5 * 5 = 2)."""
    return int(math.floor(value + 0.5 + 1e-9))


def proportional_allocation(counts: Sequence[int], total: int) -> np.ndarray:
    """Split *total* over classes in proportion to *counts* (largest remainder, ties to lower index)."""
    counts = np.asarray(counts, dtype=np.int64)
    available = int(counts.sum())
    if total >= available:
        return counts.copy()
    exact = counts * total / available
    share = np.floor(exact).astype(np.int64)
    remainder = exact - share
    for index in np.argsort(-remainder, kind="stable")[: total - int(share.sum())]:
        share[index] += 1
    return np.minimum(share, counts)


def stratified_take(labels: np.ndarray, total: int, order: np.ndarray) -> np.ndarray:
    """Indices of *total* rows, class shares kept, taken first-come from *order*.

    *order* is a permutation of ``range(len(labels))``; the result keeps its order,
    so a smaller subset is always a prefix-per-class of a larger one.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    counts = [int((labels == c).sum()) for c in classes]
    quota = dict(zip(classes.tolist(), proportional_allocation(counts, total).tolist()))
    ordered_labels = labels[order]
    keep = np.zeros(len(order), dtype=bool)
    for c, k in quota.items():
        keep[np.flatnonzero(ordered_labels == c)[:k]] = True
    return order[keep]


def fixed_split(labels: np.ndarray, test_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified train/test split of ``range(len(labels))`` from a fixed seed.

    Returns (train, test) index arrays, each a random order of its rows.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    labels = np.asarray(labels)
    test = stratified_take(labels, round_half_up(test_share * len(labels)), order)
    in_test = np.zeros(len(labels), dtype=bool)
    in_test[test] = True
    return order[~in_test[order]], test


def biased_groups(
    labels: np.ndarray,
    majority: Sequence[int],
    others: Sequence[Sequence[int]],
    bias_ratio: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A group per row: in class c a share *bias_ratio* gets ``majority[c]``.

    The remaining rows of class c are spread as evenly as possible over
    ``others[c]``; which of those groups receive one extra row, and which rows get
    which group, are drawn from *rng*.
    """
    labels = np.asarray(labels)
    groups = np.empty(len(labels), dtype=np.int64)
    for c in range(len(majority)):
        rows = np.flatnonzero(labels == c)
        if len(rows) == 0:
            continue
        aligned = round_half_up(bias_ratio * len(rows))
        rest = len(rows) - aligned
        pool = np.asarray(others[c], dtype=np.int64)
        per_group = np.full(len(pool), rest // len(pool), dtype=np.int64)
        per_group[rng.choice(len(pool), size=rest % len(pool), replace=False)] += 1
        assigned = np.concatenate([np.full(aligned, majority[c], dtype=np.int64), np.repeat(pool, per_group)])
        groups[rows[rng.permutation(len(rows))]] = assigned
    return groups

"""Group-disparity metrics computed from the (class x group) count table.

All functions work on the trailing ``(K, G)`` axes and broadcast over any
leading axes (evaluators, bootstrap resamples), so the point estimates and
the bootstrap share one implementation. Empty cells are NaN in ``cell_acc``
and are skipped; a result that no cell can define is NaN.
"""

from __future__ import annotations

import numpy as np


def _scalar(value: np.ndarray):
    return value[()] if isinstance(value, np.ndarray) and value.ndim == 0 else value


def class_gaps(cell_acc) -> np.ndarray:
    """``gap(y) = max_a Acc(a, y) - min_a Acc(a, y)`` over the non-empty cells of class y.

    Shape ``(..., K)``. A class with fewer than 2 non-empty groups has no gap
    (NaN): one group cannot be unequal to itself.
    """
    acc = np.asarray(cell_acc, dtype=np.float64)
    present = ~np.isnan(acc)
    highest = np.where(present, acc, -np.inf).max(axis=-1)
    lowest = np.where(present, acc, np.inf).min(axis=-1)
    return np.where(present.sum(axis=-1) >= 2, highest - lowest, np.nan)


def deo(cell_acc) -> tuple:
    """FairDD's difference of equalized odds: ``(DEO_M, DEO_A)``.

    ``DEO_M = max_y gap(y)`` and ``DEO_A = mean_y gap(y)`` with ``gap`` from
    :func:`class_gaps`. Classes without a gap (fewer than 2 non-empty groups)
    are left out of both; FairDD instead counts empty cells as accuracy 0 (see
    ``cell_accuracy(..., empty_as_zero=True)``). For a binary task these are
    fairlearn's ``equalized_odds_difference(agg="worst_case")`` and
    ``agg="mean"``: gap(1) is the TPR gap and gap(0) the FPR gap.
    """
    gaps = class_gaps(cell_acc)
    defined = ~np.isnan(gaps)
    count = defined.sum(axis=-1)
    deo_max = np.where(count > 0, np.where(defined, gaps, -np.inf).max(axis=-1), np.nan)
    deo_avg = np.where(count > 0, np.where(defined, gaps, 0.0).sum(axis=-1) / np.maximum(count, 1), np.nan)
    return _scalar(deo_max), _scalar(deo_avg)


def worst_group_accuracy(cell_acc):
    """Lowest accuracy over the non-empty (class, group) cells."""
    acc = np.asarray(cell_acc, dtype=np.float64)
    present = ~np.isnan(acc)
    lowest = np.where(present, acc, np.inf).min(axis=(-2, -1))
    return _scalar(np.where(present.any(axis=(-2, -1)), lowest, np.nan))


def group_accuracy(correct, total) -> np.ndarray:
    """Accuracy of each protected group with all classes pooled, shape ``(..., G)``; NaN for absent groups."""
    hits = np.asarray(correct, dtype=np.float64).sum(axis=-2)
    size = np.broadcast_to(np.asarray(total, dtype=np.float64).sum(axis=-2), hits.shape)
    out = np.full(hits.shape, np.nan)
    np.divide(hits, size, out=out, where=size > 0)
    return out


def accuracy_gap(correct, total):
    """``max_a Acc(a) - min_a Acc(a)`` over groups present in the test set, classes pooled.

    NaN when fewer than 2 groups are present.
    """
    acc = group_accuracy(correct, total)
    present = ~np.isnan(acc)
    gap = np.where(present, acc, -np.inf).max(axis=-1) - np.where(present, acc, np.inf).min(axis=-1)
    return _scalar(np.where(present.sum(axis=-1) >= 2, gap, np.nan))


def accuracy(correct, total):
    """Overall accuracy: all correct predictions over all test samples."""
    hits = np.asarray(correct, dtype=np.float64).sum(axis=(-2, -1))
    size = float(np.asarray(total).sum())
    return _scalar(hits / size if size > 0 else np.full(np.shape(hits), np.nan))


def class_accuracy_gap(correct, total):
    """Class-wise unfairness (Rong et al.): ``max_y Acc(y) - min_y Acc(y)``, groups pooled.

    ``Acc(y) = #{yhat = y, Y = y} / #{Y = y}`` over the classes present in the
    test set; NaN when fewer than 2 are present.
    """
    hits = np.asarray(correct, dtype=np.float64).sum(axis=-1)
    size = np.broadcast_to(np.asarray(total, dtype=np.float64).sum(axis=-1), hits.shape)
    acc = np.full(hits.shape, np.nan)
    np.divide(hits, size, out=acc, where=size > 0)
    present = ~np.isnan(acc)
    gap = np.where(present, acc, -np.inf).max(axis=-1) - np.where(present, acc, np.inf).min(axis=-1)
    return _scalar(np.where(present.sum(axis=-1) >= 2, gap, np.nan))


def class_precision_gaps(correct, predicted) -> np.ndarray:
    """Per class, ``max_a Prec(y, a) - min_a Prec(y, a)``, shape ``(..., K)``.

    ``Prec(y, a) = #{yhat = y, Y = y, A = a} / #{yhat = y, A = a}``: of group
    ``a``'s samples predicted as ``y``, the share that truly are ``y``. Groups
    never predicted as ``y`` have no precision and are skipped; a class with
    fewer than 2 such groups has no gap (NaN).
    """
    hits = np.asarray(correct, dtype=np.float64)
    claimed = np.asarray(predicted, dtype=np.float64)
    precision = np.full(hits.shape, np.nan)
    np.divide(hits, claimed, out=precision, where=claimed > 0)
    return class_gaps(precision)


def sufficiency_gap_max(correct, predicted):
    """COBRA's sufficiency gap: the largest per-class precision gap between groups.

    ``max_y (max_a Prec(y, a) - min_a Prec(y, a))`` with :func:`class_precision_gaps`;
    NaN when no class has 2 groups predicted as it.
    """
    gaps = class_precision_gaps(correct, predicted)
    defined = ~np.isnan(gaps)
    return _scalar(np.where(defined.any(axis=-1), np.where(defined, gaps, -np.inf).max(axis=-1), np.nan))

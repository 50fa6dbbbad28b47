"""The (class x group) count table every metric is computed from.

One pass of ``np.bincount`` turns test labels, groups and predictions into
``correct[..., K, G]`` and ``total[K, G]``; the disparity metrics and the
bootstrap read only these tables, so they cannot disagree about a cell.
"""

from __future__ import annotations

import numpy as np

from ._inputs import as_count, as_labels, as_predictions, to_numpy


def cell_ids(y_true: np.ndarray, groups: np.ndarray, num_groups: int) -> np.ndarray:
    """Flat cell index ``class * G + group`` of every sample."""
    return y_true * num_groups + groups


def cell_counts(y_true, groups, y_pred, num_classes: int, num_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Correct predictions and sample counts per (class, group) cell.

    Parameters
    ----------
    y_true, groups : array-like of int, shape (N,)
        True class and protected group of each test sample.
    y_pred : array-like of int, shape (N,) or (E, N)
        Predicted classes, one row per evaluator when stacked.

    Returns
    -------
    correct : int64 array, shape (K, G), or (E, K, G) for stacked predictions
        ``#{yhat = y, Y = y, A = a}``.
    total : int64 array, shape (K, G)
        ``#{Y = y, A = a}``; it does not depend on the predictions, so it is
        not repeated per evaluator (it broadcasts against ``correct``).
    """
    num_classes = as_count(num_classes, "num_classes")
    num_groups = as_count(num_groups, "num_groups")
    y = as_labels(y_true, "y_true", num_classes)
    a = as_labels(groups, "groups", num_groups, length=y.shape[0])
    raw = to_numpy(y_pred)
    pred = as_predictions(raw, num_classes, y.shape[0])
    correct, total = count_table(y, a, pred, num_classes, num_groups)
    return (correct if raw.ndim == 2 else correct[0]), total


def count_table(y: np.ndarray, a: np.ndarray, pred: np.ndarray, num_classes: int, num_groups: int):
    """:func:`cell_counts` on validated arrays; ``pred`` is ``(E, N)``."""
    cells = num_classes * num_groups
    cell = cell_ids(y, a, num_groups)
    total = np.bincount(cell, minlength=cells).reshape(num_classes, num_groups)
    evaluators = pred.shape[0]
    hits = pred == y[None, :]
    flat = (np.arange(evaluators)[:, None] * cells + cell[None, :])[hits]
    correct = np.bincount(flat, minlength=evaluators * cells).reshape(evaluators, num_classes, num_groups)
    return correct.astype(np.int64), total.astype(np.int64)


def predicted_table(a: np.ndarray, pred: np.ndarray, num_classes: int, num_groups: int) -> np.ndarray:
    """``#{yhat = k, A = g}`` per evaluator, shape ``(E, K, G)``: how often each group is predicted as each class."""
    evaluators = pred.shape[0]
    cells = num_classes * num_groups
    flat = np.arange(evaluators)[:, None] * cells + pred * num_groups + a[None, :]
    counts = np.bincount(flat.ravel(), minlength=evaluators * cells)
    return counts.reshape(evaluators, num_classes, num_groups).astype(np.int64)


def cell_accuracy(correct, total, *, empty_as_zero: bool = False) -> np.ndarray:
    """Accuracy ``correct / total`` per cell, NaN where a cell has no samples.

    An empty cell has no accuracy, and treating 0/0 as 0 would invent a gap.
    FairDD's code divides by ``total + 1e-8``, so its empty cells count as
    accuracy 0; ``empty_as_zero=True`` reproduces that convention to compare
    with published FairDD numbers.
    """
    correct = np.asarray(correct, dtype=np.float64)
    total = np.broadcast_to(np.asarray(total, dtype=np.float64), correct.shape)
    filled = 0.0 if empty_as_zero else np.nan
    out = np.full(correct.shape, filled)
    np.divide(correct, total, out=out, where=total > 0)
    return out


def small_cells(total, min_size: int) -> list[tuple[int, int, int]]:
    """``(class, group, count)`` of every cell with fewer than ``min_size`` samples.

    Empty cells are included (count 0). Such cells are reported rather than
    dropped: their accuracy is noisy, but removing them would hide exactly the
    minority groups a fairness audit is about.
    """
    total = np.asarray(total)
    classes, groups = np.nonzero(total < min_size)
    return [(int(k), int(g), int(total[k, g])) for k, g in zip(classes, groups)]

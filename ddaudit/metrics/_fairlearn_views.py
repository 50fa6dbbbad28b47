"""Views of one evaluator's predictions through fairlearn.

fairlearn's rate metrics are binary, so multiclass predictions are viewed one
class against the rest: class ``k`` becomes the task ``(y == k, yhat == k)``.
Two details keep the numbers honest:

* fairlearn (through scikit-learn) reports a rate as 0 when its denominator is
  0, which would invent a gap; a group enters class ``k``'s equalized odds only
  when it has both positives and negatives of ``k``, and a class with fewer
  than 2 such groups is NaN.
* each one-vs-rest task has only ``2 x 2 x G`` distinct rows, so they are passed
  once with their counts as ``sample_weight``: the same rates, far fewer rows
  for fairlearn's per-row Python code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, demographic_parity_difference, equalized_odds_difference
from sklearn.metrics import accuracy_score

from ddaudit.errors import InputError

from . import _messages as msg
from ._inputs import as_count, as_labels, as_predictions, to_numpy


def class_metric_frame(y_true, groups, y_pred) -> MetricFrame:
    """fairlearn ``MetricFrame`` of accuracy by group within each true class.

    Within class ``y`` accuracy is ``P(yhat = y | Y = y, A = a)``, so
    ``.difference()["accuracy"]`` is FairDD's ``gap(y)`` per class (its max is
    DEO_M, its mean DEO_A) and ``.by_group`` holds the cell accuracies. Unlike
    :func:`class_gaps`, fairlearn gives a class with a single group a gap of 0.
    """
    y = pd.Series(to_numpy(y_true), name="class")
    return MetricFrame(
        metrics={"accuracy": accuracy_score},
        y_true=y,
        y_pred=to_numpy(y_pred),
        sensitive_features=pd.Series(to_numpy(groups), name="group"),
        control_features=y,
    )


def _one_vs_rest_table(y: np.ndarray, a: np.ndarray, pred: np.ndarray, k: int, num_groups: int) -> np.ndarray:
    """Counts of ``(group, y == k, yhat == k)``, shape ``(G, 2, 2)``."""
    code = a * 4 + (y == k) * 2 + (pred == k)
    return np.bincount(code, minlength=4 * num_groups).reshape(num_groups, 2, 2)


def _weighted_rows(table: np.ndarray, keep: np.ndarray):
    """The non-zero ``(group, positive, predicted)`` rows of ``table`` for groups in ``keep``, with counts."""
    group, positive, predicted = np.nonzero(table * keep[:, None, None])
    return positive, predicted, group, table[group, positive, predicted]


def _labels(y_true, groups, y_pred, num_classes: int):
    """Validated ``(y, a, yhat, K, G)`` for one evaluator; ``G`` is one more than the largest group."""
    num_classes = as_count(num_classes, "num_classes")
    y = as_labels(y_true, "y_true", num_classes)
    a = as_labels(groups, "groups", np.iinfo(np.int64).max, length=y.shape[0])
    raw = to_numpy(y_pred)
    if raw.ndim != 1:
        raise InputError(msg.ONE_EVALUATOR.format(shape=tuple(raw.shape)))
    pred = as_predictions(raw, num_classes, y.shape[0])[0]
    return y, a, pred, num_classes, int(a.max()) + 1 if a.size else 1


def one_vs_rest_equalized_odds(y_true, groups, y_pred, num_classes: int) -> tuple[float, np.ndarray]:
    """fairlearn ``equalized_odds_difference`` per class, one class against the rest.

    Returns ``(max over classes, per-class values (K,))``. Class ``k``'s value
    is ``max(TPR gap, FPR gap)`` of the task ``(y == k, yhat == k)`` across the
    groups that have both positives and negatives of ``k``; NaN when fewer
    than 2 groups qualify. The maximum skips NaN classes (NaN if all are).
    """
    y, a, pred, num_classes, num_groups = _labels(y_true, groups, y_pred, num_classes)
    per_class = np.full(num_classes, np.nan)
    for k in range(num_classes):
        table = _one_vs_rest_table(y, a, pred, k, num_groups)
        by_truth = table.sum(axis=2)
        qualified = (by_truth[:, 0] > 0) & (by_truth[:, 1] > 0)
        if qualified.sum() < 2:
            continue
        positive, predicted, group, weight = _weighted_rows(table, qualified)
        per_class[k] = equalized_odds_difference(
            positive, predicted, sensitive_features=group, sample_weight=weight, agg="worst_case")
    return _nanmax(per_class), per_class


def one_vs_rest_demographic_parity(y_true, groups, y_pred, num_classes: int) -> tuple[float, np.ndarray]:
    """fairlearn ``demographic_parity_difference`` per class, one class against the rest.

    Returns ``(max over classes, per-class values (K,))``. Class ``k``'s value is
    the largest gap between groups in ``P(yhat = k | A = a)``; NaN when fewer
    than 2 groups are present in the test set.
    """
    y, a, pred, num_classes, num_groups = _labels(y_true, groups, y_pred, num_classes)
    per_class = np.full(num_classes, np.nan)
    present = np.bincount(a, minlength=num_groups) > 0
    if present.sum() < 2:
        return float("nan"), per_class
    for k in range(num_classes):
        table = _one_vs_rest_table(y, a, pred, k, num_groups)
        positive, predicted, group, weight = _weighted_rows(table, present)
        per_class[k] = demographic_parity_difference(
            positive, predicted, sensitive_features=group, sample_weight=weight)
    return _nanmax(per_class), per_class


def _nanmax(values: np.ndarray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.max()) if defined.size else float("nan")

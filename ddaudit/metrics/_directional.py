"""Directional bias amplification A->T (Wang & Russakovsky, ICML 2021).

For every (group a, class t) pair::

    y_at  = 1[P(A=a, T=t) > P(A=a) P(T=t)]           on the REAL training data
    D_at  = P(That=t | A=a) - P(T=t | A=a)            on the test set
    BiasAmp = mean over pairs of  y_at D_at + (1 - y_at)(-D_at)

A positive value means the model predicts the classes a group is correlated
with more often than the test labels do: it amplifies the training bias.
``y_at`` must come from real data; distilled images carry no group labels.
Pairs whose group has no test samples (no ``D_at``), or whose group or class
has no training samples (no correlation to speak of), are left out and counted.

The sum over pairs is linear in the per-sample predictions::

    BiasAmp = (1/M) sum_i (s[a_i, yhat_i] - s[a_i, y_i]) / n_test(a_i),   s = 2 y_at - 1

so each test sample carries one score, and the bootstrap resamples those
scores exactly like it resamples correct predictions.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from ddaudit.errors import InputError

from . import _messages as msg
from ._inputs import as_count, as_labels, as_predictions, to_numpy


class DirectionalBiasAmplification(NamedTuple):
    """``value`` (a float, or ``(E,)`` for stacked predictions), pairs ``skipped`` out of ``pairs``."""

    value: float | np.ndarray
    skipped: int
    pairs: int


def pair_signs(train_y: np.ndarray, train_a: np.ndarray, test_a: np.ndarray,
               num_classes: int, num_groups: int) -> np.ndarray:
    """``s[a, t]``: +1 where group a and class t co-occur above independence in training, -1 otherwise, 0 when left out.

    Compares integer counts (``n_at N > n_a n_t``), so ties are exact.
    """
    joint = np.bincount(train_a * num_classes + train_y, minlength=num_groups * num_classes)
    joint = joint.reshape(num_groups, num_classes).astype(np.int64)
    n_group, n_class, n = joint.sum(axis=1), joint.sum(axis=0), joint.sum()
    correlated = joint * n > n_group[:, None] * n_class[None, :]
    signs = np.where(correlated, 1, -1)
    test_groups = np.bincount(test_a, minlength=num_groups) > 0
    defined = test_groups[:, None] & (n_group > 0)[:, None] & (n_class > 0)[None, :]
    return np.where(defined, signs, 0)


def row_scores(test_y: np.ndarray, test_a: np.ndarray, pred: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Per-sample share of BiasAmp times the number of defined pairs, shape ``(E, N)``."""
    group_size = np.bincount(test_a, minlength=signs.shape[0]).astype(np.float64)
    weight = 1.0 / group_size[test_a]
    return (signs[test_a[None, :], pred] - signs[test_a, test_y][None, :]) * weight[None, :]


def directional_bias_amplification(train_y, train_a, test_y, test_a, test_pred,
                                   num_classes: int, num_groups: int) -> DirectionalBiasAmplification:
    """BiasAmp A->T of predictions ``test_pred`` ((N,) or (E, N)) against the real training bias.

    Returns NaN (and emits a ``UserWarning``) when no training data is given.
    """
    num_classes = as_count(num_classes, "num_classes")
    num_groups = as_count(num_groups, "num_groups")
    pairs = num_classes * num_groups
    y = as_labels(test_y, "test_y", num_classes)
    a = as_labels(test_a, "test_a", num_groups, length=y.shape[0])
    raw = to_numpy(test_pred)
    pred = as_predictions(raw, num_classes, y.shape[0])
    if (train_y is None) != (train_a is None):
        raise InputError(msg.TRAIN_PAIR)
    if train_y is None or to_numpy(train_y).size == 0:
        warnings.warn(msg.NO_TRAINING_DATA, UserWarning, stacklevel=2)
        value = np.full(pred.shape[0], np.nan)
        return DirectionalBiasAmplification(value if raw.ndim == 2 else float("nan"), pairs, pairs)
    ty = as_labels(train_y, "train_y", num_classes)
    ta = as_labels(train_a, "train_a", num_groups)
    if ta.shape[0] != ty.shape[0]:
        raise InputError(msg.TRAIN_LENGTH_MISMATCH.format(labels=ty.shape[0], groups=ta.shape[0]))
    signs = pair_signs(ty, ta, a, num_classes, num_groups)
    defined = int(np.count_nonzero(signs))
    if defined == 0 or y.shape[0] == 0:
        value = np.full(pred.shape[0], np.nan)
    else:
        value = row_scores(y, a, pred, signs).sum(axis=1) / defined
    return DirectionalBiasAmplification(value if raw.ndim == 2 else float(value[0]), pairs - defined, pairs)

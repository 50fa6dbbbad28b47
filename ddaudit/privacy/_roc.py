"""ROC figures of a membership attack: AUC and TPR at a fixed FPR, vectorised over resamples.

Written with ranks (AUC is the Mann-Whitney statistic) and order statistics
rather than through :func:`sklearn.metrics.roc_curve`, because the bootstrap
needs thousands of them at once; ``tests/test_privacy.py`` checks both against
scikit-learn to 1e-9. Higher scores mean "member".
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata


def auc(members: np.ndarray, non_members: np.ndarray) -> np.ndarray:
    """ROC AUC along the last axis: P(member score > non-member score), ties counted half."""
    members, non_members = np.asarray(members, float), np.asarray(non_members, float)
    n1, n0 = members.shape[-1], non_members.shape[-1]
    ranks = rankdata(np.concatenate([members, non_members], axis=-1), axis=-1)
    return (ranks[..., :n1].sum(axis=-1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def false_positives_allowed(fpr: float, n_non_members: int) -> int:
    """The most non-members a threshold may pass at false-positive rate *fpr*."""
    return int(math.floor(fpr * n_non_members + 1e-9))


def needed_non_members(fpr: float) -> int:
    """Non-members needed before one false positive is allowed, i.e. before *fpr* is measurable at all."""
    return int(math.ceil(1.0 / fpr - 1e-9))


def tpr_at_fpr(members: np.ndarray, non_members: np.ndarray, fpr: float) -> np.ndarray:
    """The largest TPR of any threshold whose FPR is at most *fpr*, along the last axis.

    The best such threshold passes every score strictly above the
    (k+1)-th largest non-member score, k = floor(fpr * n0).
    """
    members, non_members = np.asarray(members, float), np.asarray(non_members, float)
    k = false_positives_allowed(fpr, non_members.shape[-1])
    if k >= non_members.shape[-1]:
        return np.ones(members.shape[:-1])
    cut = -np.partition(-non_members, k, axis=-1)[..., k]
    return (members > cut[..., None]).mean(axis=-1)

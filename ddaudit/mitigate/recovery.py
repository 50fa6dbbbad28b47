"""How well label-free mitigation recovers the true groups, when the true groups are known.

KDE weights should be high on bias-conflicting samples and pseudo-groups should
match the protected groups; on a dataset that does carry group labels these
functions say how far that holds, so ``ddaudit check`` can report it.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from ddaudit.errors import InputError

ERR_LENGTH = "{name} has {got} entries but there are {want} samples; files must follow the dataset's order."
ERR_NO_TRUE_GROUPS = "dataset {name!r} has no training split with several groups; recovery needs true group labels."
ERR_NO_SPLIT = "bias_aligned must contain both aligned and conflicting samples to compare weights."


def _as_numpy(values, name: str, length: int | None = None) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    array = array.reshape(-1)
    if length is not None and array.shape[0] != length:
        raise InputError(ERR_LENGTH.format(name=name, got=array.shape[0], want=length))
    return array


def majority_group_mask(labels, groups) -> torch.Tensor:
    """True where a sample's group is the most frequent group of its class (bias-aligned).

    The fallback definition of "bias-aligned" for datasets whose preset does
    not record it; ties go to the smallest group index.
    """
    y = _as_numpy(labels, "labels").astype(np.int64)
    a = _as_numpy(groups, "groups", len(y)).astype(np.int64)
    aligned = np.zeros(len(y), dtype=bool)
    for cls in np.unique(y):
        rows = y == cls
        majority = np.bincount(a[rows]).argmax()
        aligned[rows] = a[rows] == majority
    return torch.from_numpy(aligned)


def weight_recovery(weights, bias_aligned) -> dict[str, float]:
    """Compare weights of bias-conflicting and bias-aligned samples.

    Returns ``mean_conflicting``, ``mean_aligned``, ``ratio`` (conflicting /
    aligned), ``auc`` (probability that a random conflicting sample outweighs a
    random aligned one, ties counted half) and the two counts.
    """
    w = _as_numpy(weights, "weights").astype(np.float64)
    aligned = _as_numpy(bias_aligned, "bias_aligned", len(w)).astype(bool)
    if aligned.all() or not aligned.any():
        raise InputError(ERR_NO_SPLIT)
    mean_conflicting = float(w[~aligned].mean())
    mean_aligned = float(w[aligned].mean())
    return {
        "mean_conflicting": mean_conflicting,
        "mean_aligned": mean_aligned,
        "ratio": mean_conflicting / mean_aligned if mean_aligned > 0 else float("inf"),
        "auc": float(roc_auc_score(~aligned, w)),
        "n_conflicting": int((~aligned).sum()),
        "n_aligned": int(aligned.sum()),
    }


def group_recovery(pseudo_groups, true_groups, labels=None) -> dict:
    """Adjusted Rand index between pseudo-groups and true groups, within each class.

    Pseudo-groups are found per class, so agreement is scored per class and
    averaged with weights proportional to class size (``ari``); ``ari_per_class``
    keeps the per-class values. Without *labels* the whole set is one class.
    """
    pseudo = _as_numpy(pseudo_groups, "pseudo_groups").astype(np.int64)
    true = _as_numpy(true_groups, "true_groups", len(pseudo)).astype(np.int64)
    y = np.zeros(len(pseudo), np.int64) if labels is None else _as_numpy(labels, "labels", len(pseudo))
    per_class: dict[int, float] = {}
    total = 0.0
    for cls in np.unique(y):
        rows = y == cls
        score = float(adjusted_rand_score(true[rows], pseudo[rows]))
        per_class[int(cls)] = score
        total += score * int(rows.sum())
    return {
        "ari": float(total / len(pseudo)) if len(pseudo) else float("nan"),
        "ari_per_class": per_class,
        "num_pseudo_groups": {int(c): int(len(np.unique(pseudo[y == c]))) for c in np.unique(y)},
    }


def recovery_report(real, *, weights=None, groups=None) -> dict:
    """Recovery of the true groups of ``real.train`` by sample *weights* and/or pseudo-*groups*.

    *real* is a :class:`~ddaudit.data.RealData` with group labels; both vectors
    follow its training order. Bias-aligned samples are ``real.meta["bias_aligned_train"]``
    when the preset records them, else the majority group of each class.
    Returns ``{"weights": weight_recovery(...), "pseudo_groups": group_recovery(...)}``
    for the vectors given ("weights" is left out when no sample is bias-conflicting).
    """
    train = real.train
    if train is None or real.num_groups < 2:
        raise InputError(ERR_NO_TRUE_GROUPS.format(name=real.name))
    report: dict = {}
    if weights is not None:
        aligned = real.meta.get("bias_aligned_train")
        if aligned is None:
            aligned = majority_group_mask(train.y, train.a)
        _as_numpy(weights, "weights", len(train))
        share = float(_as_numpy(aligned, "bias_aligned", len(train)).mean())
        if 0.0 < share < 1.0:
            report["weights"] = weight_recovery(weights, aligned)
    if groups is not None:
        _as_numpy(groups, "pseudo_groups", len(train))
        report["pseudo_groups"] = group_recovery(groups, train.a, train.y)
    return report

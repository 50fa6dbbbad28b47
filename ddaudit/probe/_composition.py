"""What a distilled set is made of: per-class shares of predicted protected groups.

Pure functions of counts and features, so they can be checked against scipy by
hand. Shares are fractions of a class's synthetic images; the real training
distribution of the same class and a uniform one are reported beside them, so a
reader sees at once whether a class collapsed onto its majority group (majority
share near 1, normalised entropy near 0) or kept the groups the real data holds.

Counting images misses what matching distillers change: FairDD's synchronized
DM keeps each image close to its (mostly majority-group) starting point while it
moves the class's *mean* embedding to the average of the group means. The
mixture weights read that: the class's mean synthetic feature written as a
convex combination of the real groups' mean features (least squares on the
simplex). Weight 1 on the majority group means the class's matched statistic
is the majority group's; uniform weights mean every group is represented.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.optimize import nnls
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

#: Keys of the per-class entries and summaries, in the order views show them.
SUMMARY_KEYS = (
    "mean_majority_share",
    "max_majority_share",
    "mean_majority_weight",
    "max_majority_weight",
    "mean_groups_covered",
    "mean_normalized_entropy",
    "mean_js_real",
    "mean_js_uniform",
)


def distribution(counts: Sequence[float]) -> np.ndarray:
    """Counts as shares summing to 1 (all zeros stay zeros)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


def majority_share(shares: np.ndarray) -> float:
    """The largest share: 1.0 when every image falls in one group."""
    return float(np.max(shares)) if shares.size else math.nan


def groups_covered(counts: np.ndarray) -> int:
    """How many groups hold at least one image."""
    return int(np.count_nonzero(np.asarray(counts) > 0))


def normalized_entropy(shares: np.ndarray) -> float:
    """Shannon entropy divided by log(number of groups): 0 for one group, 1 for uniform."""
    shares = np.asarray(shares, dtype=np.float64)
    if shares.size < 2 or shares.sum() <= 0:
        return math.nan
    return float(entropy(shares) / math.log(shares.size))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0 identical, 1 disjoint supports).

    scipy returns the JS *distance* (the square root of the divergence).
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return math.nan
    return float(jensenshannon(p, q, base=2) ** 2)


def mixture_weights(target: np.ndarray, group_means: np.ndarray) -> np.ndarray:
    """Convex weights ``w`` (``w >= 0``, ``sum w = 1``) minimising ``||target - group_means.T @ w||``.

    *group_means* is ``(G, D)``, one real group's mean feature per row; *target*
    the ``(D,)`` mean synthetic feature. Solved exactly as non-negative least
    squares with the sum-to-one constraint appended as a heavily weighted row
    (scaled to the features, so the constraint holds to about 1e-6).
    """
    means = np.asarray(group_means, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if means.ndim != 2 or means.shape[0] == 0:
        raise ValueError("mixture_weights needs at least one group mean")
    scale = 1e3 * max(1.0, float(np.abs(means).max()), float(np.abs(target).max()))
    system = np.vstack([means.T, np.full((1, means.shape[0]), scale)])
    rhs = np.concatenate([target, [scale]])
    weights, _ = nnls(system, rhs, maxiter=50 * system.shape[1])
    total = weights.sum()
    return weights / total if total > 0 else np.full(means.shape[0], 1.0 / means.shape[0])


def class_mixture(syn_features: np.ndarray, group_means: np.ndarray, present: np.ndarray) -> np.ndarray:
    """One class's mixture weights over all groups (0 for groups absent from its real data)."""
    weights = np.zeros(len(present))
    if len(syn_features) and present.any():
        weights[present] = mixture_weights(np.asarray(syn_features, dtype=np.float64).mean(axis=0), group_means[present])
    return weights


def class_composition(counts: np.ndarray, real_counts: np.ndarray | None) -> dict:
    """One class: predicted shares and their summaries beside the real and uniform ones."""
    counts = np.asarray(counts, dtype=np.float64)
    shares = distribution(counts)
    uniform = np.full(counts.size, 1.0 / counts.size)
    entry = {
        "images": int(counts.sum()),
        "counts": [int(c) for c in counts],
        "shares": shares.tolist(),
        "majority_group": int(np.argmax(shares)),
        "majority_share": majority_share(shares),
        "groups_covered": groups_covered(counts),
        "normalized_entropy": normalized_entropy(shares),
        "js_uniform": js_divergence(shares, uniform),
        "uniform_share": float(uniform[0]),
    }
    if real_counts is not None and np.asarray(real_counts).sum() > 0:
        real = distribution(real_counts)
        entry.update({
            "real_shares": real.tolist(),
            "real_majority_group": int(np.argmax(real)),
            "real_majority_share": majority_share(real),
            "real_groups_covered": groups_covered(np.asarray(real_counts)),
            "real_normalized_entropy": normalized_entropy(real),
            "js_real": js_divergence(shares, real),
        })
    else:
        entry.update({"real_shares": None, "real_majority_group": None, "real_majority_share": None,
                      "real_groups_covered": None, "real_normalized_entropy": None, "js_real": None})
    return entry


def composition(
    syn_labels: np.ndarray,
    syn_groups: np.ndarray,
    *,
    num_classes: int,
    num_groups: int,
    real_labels: np.ndarray | None = None,
    real_groups: np.ndarray | None = None,
    syn_proba: np.ndarray | None = None,
    syn_features: np.ndarray | None = None,
    real_group_means: np.ndarray | None = None,
) -> dict:
    """Per-class composition of a synthetic set and its summaries.

    *syn_groups* are the (predicted) protected groups of the synthetic images
    (shares count them: "classify and count"); *syn_proba*, when given, their
    ``(N, G)`` group probabilities, whose per-class mean gives ``soft_shares``
    ("probabilistic classify and count": an image the classifier splits between
    groups counts for each in proportion); *syn_features* ``(N, D)`` and
    *real_group_means* ``(C, G, D)`` (NaN rows for empty real cells), when given,
    the features the mixture weights are read in;
    *real_labels*/*real_groups* the real training data's classes and groups
    (``None`` when the real data has no training split). Classes without
    synthetic images are left out of the summaries.
    """
    syn_labels, syn_groups = np.asarray(syn_labels, dtype=np.int64), np.asarray(syn_groups, dtype=np.int64)
    syn_counts = np.zeros((num_classes, num_groups), dtype=np.int64)
    np.add.at(syn_counts, (syn_labels, syn_groups), 1)
    real_counts = None
    if real_labels is not None and real_groups is not None:
        real_counts = np.zeros((num_classes, num_groups), dtype=np.int64)
        np.add.at(real_counts, (np.asarray(real_labels, dtype=np.int64), np.asarray(real_groups, dtype=np.int64)), 1)
    classes = []
    for cls in range(num_classes):
        entry = {"class": cls, **class_composition(syn_counts[cls], None if real_counts is None else real_counts[cls])}
        if syn_proba is not None:
            rows = np.asarray(syn_proba, dtype=np.float64)[syn_labels == cls]
            soft = rows.mean(axis=0) if len(rows) else np.zeros(num_groups)
            entry["soft_shares"] = soft.tolist()
            entry["soft_majority_share"] = majority_share(soft) if len(rows) else math.nan
        if syn_features is not None and real_group_means is not None:
            means = np.asarray(real_group_means[cls], dtype=np.float64)
            present = ~np.isnan(means).any(axis=1)
            weights = class_mixture(np.asarray(syn_features)[syn_labels == cls], means, present)
            entry["mixture_weights"] = weights.tolist()
            reference = entry.get("real_majority_group")
            reference = int(np.argmax(weights)) if reference is None else reference
            entry["majority_weight"] = float(weights[reference]) if entry["images"] and present.any() else math.nan
        classes.append(entry)
    present = [c for c in classes if c["images"] > 0]

    def mean(key: str) -> float | None:
        values = [c[key] for c in present if c[key] is not None and not math.isnan(c[key])]
        return float(np.mean(values)) if values else None

    summary = {
        "mean_majority_share": mean("majority_share"),
        "max_majority_share": max((c["majority_share"] for c in present), default=None),
        "mean_groups_covered": mean("groups_covered"),
        "mean_normalized_entropy": mean("normalized_entropy"),
        "mean_js_real": mean("js_real"),
        "mean_js_uniform": mean("js_uniform"),
        "real_mean_majority_share": mean("real_majority_share"),
    }
    if syn_proba is not None:
        summary["mean_soft_majority_share"] = mean("soft_majority_share")
    if syn_features is not None and real_group_means is not None:
        summary["mean_majority_weight"] = mean("majority_weight")
        weights = [c["majority_weight"] for c in present if not math.isnan(c["majority_weight"])]
        summary["max_majority_weight"] = max(weights, default=None)
    return {**summary, "classes": classes}

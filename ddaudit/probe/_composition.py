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
is the majority group's; uniform weights mean every group is represented. The
weight is only read where the features determine it: a class with one real
group, or whose majority group's mean is (nearly) a mixture of the others', is
reported as such and left out of the gated mean; and the residual distance of
the class mean from the groups' hull says how far the mixture describes it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.optimize import nnls
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy


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


#: Relative distance (to the other groups' affine hull, over the groups' spread) below which a
#: group's weight is not identified: a target error of e moves the weight by about e / (d * spread).
MIN_IDENTIFIABILITY = 0.05

#: A small ridge on the weights (in units of the groups' spread): it makes the least-squares
#: problem strictly convex, so the weights are unique (and independent of group order) even
#: when group means coincide, at a bias of order 1e-8 on well-separated means.
RIDGE = 1e-8


def group_spread(group_means: np.ndarray) -> float:
    """Root-mean-square distance of the group means from their centroid (0 for one group)."""
    means = np.asarray(group_means, dtype=np.float64)
    return float(np.sqrt(np.mean(np.sum((means - means.mean(axis=0)) ** 2, axis=1))))


def _affine_distance(point: np.ndarray, others: np.ndarray) -> float:
    """Euclidean distance of *point* from the affine hull of the rows of *others*."""
    offset = point - others[0]
    directions = others[1:] - others[0]
    if len(directions):
        u, s, _ = np.linalg.svd(directions.T, full_matrices=False)
        basis = u[:, s > 1e-10 * max(1.0, float(s.max(initial=0.0)))]
        offset = offset - basis @ (basis.T @ offset)
    return float(np.linalg.norm(offset))


def identifiability(group_means: np.ndarray, index: int) -> float:
    """How well group *index*'s weight is determined: its mean's distance from the affine hull of
    the other groups' means, over :func:`group_spread` (scale-free; 0 when it is a mixture of them).

    On the simplex, every point of the hull has one weight for a group whose mean lies off the
    others' affine hull, and a target error ``e`` moves it by ``e / distance``; on that hull
    (identical or collinear means) the weight is not determined by the features at all.
    """
    means = np.asarray(group_means, dtype=np.float64)
    spread = group_spread(means)
    if len(means) < 2 or not spread > 0:
        return 0.0
    others = np.delete(means, index, axis=0)
    return _affine_distance(means[index], others) / spread


def mixture_fit(target: np.ndarray, group_means: np.ndarray) -> tuple[np.ndarray, float]:
    """Convex weights ``w`` minimising ``||target - group_means.T @ w||`` and the residual distance
    to the hull over :func:`group_spread` (``nan`` for a single group or identical means).

    Solved in centred, spread-scaled coordinates (so the answer does not depend on the features'
    offset or scale) as non-negative least squares with a tiny ridge (:data:`RIDGE`, which makes
    the minimiser unique, so permuting the groups permutes the weights) and the sum-to-one
    constraint appended as a heavily weighted row (it holds to about 1e-6 before renormalising).
    """
    means = np.asarray(group_means, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if means.ndim != 2 or means.shape[0] == 0:
        raise ValueError("mixture_weights needs at least one group mean")
    count = means.shape[0]
    if count == 1:
        return np.ones(1), math.nan
    centre, spread = means.mean(axis=0), group_spread(means)
    if not spread > 0:
        return np.full(count, 1.0 / count), math.nan
    scaled, point = (means - centre) / spread, (target - centre) / spread
    heavy = 1e3 * max(1.0, float(np.abs(scaled).max()), float(np.abs(point).max()))
    system = np.vstack([scaled.T, math.sqrt(RIDGE) * np.eye(count), np.full((1, count), heavy)])
    rhs = np.concatenate([point, np.zeros(count), [heavy]])
    weights, _ = nnls(system, rhs, maxiter=50 * system.shape[1])
    total = weights.sum()
    weights = weights / total if total > 0 else np.full(count, 1.0 / count)
    return weights, float(np.linalg.norm(point - scaled.T @ weights))


def mixture_weights(target: np.ndarray, group_means: np.ndarray) -> np.ndarray:
    """Convex weights ``w`` (``w >= 0``, ``sum w = 1``) minimising ``||target - group_means.T @ w||``.

    *group_means* is ``(G, D)``, one real group's mean feature per row; *target*
    the ``(D,)`` mean synthetic feature. See :func:`mixture_fit`.
    """
    return mixture_fit(target, group_means)[0]


def class_mixture(syn_features: np.ndarray, group_means: np.ndarray, present: np.ndarray) -> np.ndarray:
    """One class's mixture weights over all groups (0 for groups absent from its real data)."""
    return class_weight(syn_features, group_means, present)["weights"]


def class_weight(syn_features: np.ndarray, group_means: np.ndarray, present: np.ndarray,
                 reference: int | None = None) -> dict:
    """One class's mixture: weights over all groups, the hull residual, and whether the weight of
    group *reference* (default: the heaviest) is identified by the real group means.

    ``weight_status`` says why a class is left out of the gated mean: ``no_images``,
    ``one_group`` (a single real group: its weight is 1 by construction, not by evidence) or
    ``unidentifiable`` (:func:`identifiability` below :data:`MIN_IDENTIFIABILITY`).
    """
    present = np.asarray(present, dtype=bool)
    weights = np.zeros(len(present))
    out = {"weights": weights, "hull_residual": math.nan, "identifiability": None, "weight_status": "no_images"}
    if not len(syn_features) or not present.any():
        return out
    means = np.asarray(group_means, dtype=np.float64)[present]
    fitted, residual = mixture_fit(np.asarray(syn_features, dtype=np.float64).mean(axis=0), means)
    weights[present] = fitted
    reference = int(np.argmax(weights)) if reference is None else int(reference)
    out.update(hull_residual=residual, reference=reference)
    if present.sum() < 2:
        out["weight_status"] = "one_group"
        return out
    if not present[reference]:
        out["weight_status"] = "unidentifiable"
        return out
    score = identifiability(means, int(np.flatnonzero(present).tolist().index(reference)))
    out["identifiability"] = score
    out["weight_status"] = "identified" if score >= MIN_IDENTIFIABILITY else "unidentifiable"
    return out


def class_composition(counts: np.ndarray, real_counts: np.ndarray | None) -> dict:
    """One class: predicted shares and their summaries beside the real and uniform ones.

    *counts* are the class's known images per predicted group; with none, the share
    summaries are ``nan`` and the majority group ``None``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    shares = distribution(counts)
    uniform = np.full(counts.size, 1.0 / counts.size)
    known = counts.sum() > 0
    entry = {
        "images": int(counts.sum()),
        "counts": [int(c) for c in counts],
        "shares": shares.tolist(),
        "majority_group": int(np.argmax(shares)) if known else None,
        "majority_share": majority_share(shares) if known else math.nan,
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
    syn_known: np.ndarray | None = None,
) -> dict:
    """Per-class composition of a synthetic set and its summaries.

    *syn_groups* are the (predicted) protected groups of the synthetic images
    (shares count them: "classify and count"); *syn_known*, when given, marks the
    images that resemble some real group (:mod:`._unknown`): shares count only
    those, and each class reports its ``unknown`` count beside them. *syn_proba*,
    when given, are the ``(N, G)`` group probabilities, whose per-class mean over
    known images gives ``soft_shares``; *syn_features* ``(N, D)`` and
    *real_group_means* ``(C, G, D)`` (NaN rows for empty real cells), when given,
    the features the mixture weights are read in (every image counts there: the
    class mean is what a matching distiller moves);
    *real_labels*/*real_groups* the real training data's classes and groups
    (``None`` when the real data has no training split). Classes without
    synthetic images are left out of the summaries; classes whose majority weight
    is not identified (:func:`class_weight`) are left out of the weight summaries.
    """
    syn_labels, syn_groups = np.asarray(syn_labels, dtype=np.int64), np.asarray(syn_groups, dtype=np.int64)
    known = np.ones(len(syn_labels), dtype=bool) if syn_known is None else np.asarray(syn_known, dtype=bool)
    syn_counts = np.zeros((num_classes, num_groups), dtype=np.int64)
    np.add.at(syn_counts, (syn_labels[known], syn_groups[known]), 1)
    totals = np.bincount(syn_labels, minlength=num_classes)
    real_counts = None
    if real_labels is not None and real_groups is not None:
        real_counts = np.zeros((num_classes, num_groups), dtype=np.int64)
        np.add.at(real_counts, (np.asarray(real_labels, dtype=np.int64), np.asarray(real_groups, dtype=np.int64)), 1)
    classes = []
    for cls in range(num_classes):
        entry = {"class": cls, **class_composition(syn_counts[cls], None if real_counts is None else real_counts[cls])}
        entry["images"] = int(totals[cls])
        entry["known"] = int(syn_counts[cls].sum())
        entry["unknown"] = entry["images"] - entry["known"]
        if syn_proba is not None:
            rows = np.asarray(syn_proba, dtype=np.float64)[(syn_labels == cls) & known]
            soft = rows.mean(axis=0) if len(rows) else np.zeros(num_groups)
            entry["soft_shares"] = soft.tolist()
            entry["soft_majority_share"] = majority_share(soft) if len(rows) else math.nan
        if syn_features is not None and real_group_means is not None:
            means = np.asarray(real_group_means[cls], dtype=np.float64)
            present = ~np.isnan(means).any(axis=1)
            fit = class_weight(np.asarray(syn_features)[syn_labels == cls], means, present,
                               reference=entry.get("real_majority_group"))
            weights = fit["weights"]
            entry["mixture_weights"] = weights.tolist()
            reference = fit.get("reference")
            entry["majority_weight"] = float(weights[reference]) if reference is not None else math.nan
            entry["weight_group"] = reference
            entry["weight_status"] = fit["weight_status"]
            entry["weight_identified"] = fit["weight_status"] == "identified"
            entry["identifiability"] = fit["identifiability"]
            entry["hull_residual"] = fit["hull_residual"]
        classes.append(entry)
    present = [c for c in classes if c["images"] > 0]

    def mean(key: str, entries=present) -> float | None:
        values = [c[key] for c in entries if c[key] is not None and not math.isnan(c[key])]
        return float(np.mean(values)) if values else None

    shares = [c["majority_share"] for c in present if not math.isnan(c["majority_share"])]
    summary = {
        "mean_majority_share": mean("majority_share"),
        "max_majority_share": max(shares, default=None),
        "mean_groups_covered": mean("groups_covered"),
        "mean_normalized_entropy": mean("normalized_entropy"),
        "mean_js_real": mean("js_real"),
        "mean_js_uniform": mean("js_uniform"),
        "real_mean_majority_share": mean("real_majority_share"),
        "unknown_images": int(sum(c["unknown"] for c in classes)),
    }
    if syn_proba is not None:
        summary["mean_soft_majority_share"] = mean("soft_majority_share")
    if syn_features is not None and real_group_means is not None:
        gated = [c for c in present if c["weight_identified"]]
        summary["mean_majority_weight"] = mean("majority_weight", gated)
        summary["max_majority_weight"] = max((c["majority_weight"] for c in gated), default=None)
        summary["weight_classes"] = [c["class"] for c in gated]
        summary["weight_excluded"] = [{"class": c["class"], "status": c["weight_status"]}
                                     for c in present if not c["weight_identified"]]
        summary["max_hull_residual"] = max((c["hull_residual"] for c in present if not math.isnan(c["hull_residual"])),
                                           default=None)
    return {**summary, "classes": classes}

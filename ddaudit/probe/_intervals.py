"""Gating intervals for the probe's two gated numbers: mean majority share and mean majority weight.

The uncertainty is the synthetic set's: its IPC images per class are a small
sample of what the distiller produces, and the real (class, group) means the
weight is read against are themselves means of finitely many real rows (a
minority cell of a biased class may hold a handful). Both are resampled in one
stratified bootstrap: per replicate, each class's synthetic images are drawn
with replacement (its size is fixed by the IPC, so classes are strata), and for
the weight each real cell's rows as well; the share is recounted over the
replicate's known images and the mixture re-fitted on the replicate's means.
The interval is the percentile interval of the mean over the classes the point
value averages (``level`` 0.95: 2.5 % and 97.5 % quantiles).

Why this construction: it needs no model of how images are distributed, it
respects the [0, 1] range of shares and weights, and it costs milliseconds
(resampling is done as multinomial counts times features). What it does not
promise: with ten images per class the bootstrap is an approximation (it
underestimates the spread by about ``sqrt((n - 1) / n)`` and a maximum share is
biased upwards near ties), and it holds the group classifier and the
unknown-image threshold fixed. The interval method is named ``bootstrap_percentile``
in the report.
"""

from __future__ import annotations

import numpy as np

from ddaudit.probe._classifier import CellFeatures
from ddaudit.probe._composition import mixture_fit

INTERVAL_METHOD = "bootstrap_percentile"
DEFAULT_N_BOOT = 200
DEFAULT_LEVEL = 0.95


def _resample_counts(rng: np.random.Generator, size: int, n_boot: int) -> np.ndarray:
    """``(n_boot, size)`` bootstrap multiplicities: how often each row is drawn."""
    return rng.multinomial(size, np.full(size, 1.0 / size), size=n_boot).astype(np.float64)


def _percentiles(values: np.ndarray, level: float) -> list[float] | None:
    values = values[~np.isnan(values)]
    if not len(values):
        return None
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return [float(low), float(high)]


def _class_mean(replicates: list[np.ndarray], n_boot: int) -> np.ndarray:
    """Per replicate, the mean over the classes that have a value in it (nan when none has)."""
    if not replicates:
        return np.full(n_boot, np.nan)
    stacked = np.stack(replicates)
    counted = (~np.isnan(stacked)).sum(axis=0)
    sums = np.nansum(stacked, axis=0)
    return np.where(counted > 0, sums / np.maximum(counted, 1), np.nan)


def share_replicates(syn_labels, syn_groups, syn_known, classes: list[int], num_groups: int,
                     rng: np.random.Generator, n_boot: int) -> dict[int, np.ndarray]:
    """Each class's majority share among known images, per replicate (nan when none is known)."""
    out = {}
    for cls in classes:
        rows = np.flatnonzero(syn_labels == cls)
        onehot = np.zeros((len(rows), num_groups))
        known = syn_known[rows]
        onehot[np.flatnonzero(known), syn_groups[rows][known]] = 1.0
        counts = _resample_counts(rng, len(rows), n_boot) @ onehot
        total = counts.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[cls] = np.where(total > 0, counts.max(axis=1) / total, np.nan)
    return out


def weight_replicates(syn_labels, syn_features, cells: CellFeatures, references: dict[int, int],
                      rng: np.random.Generator, n_boot: int) -> dict[int, np.ndarray]:
    """Each class's weight of its reference group, re-fitted per replicate on resampled synthetic
    images and resampled real cell rows."""
    out = {}
    for cls, reference in references.items():
        syn = syn_features[syn_labels == cls]
        targets = _resample_counts(rng, len(syn), n_boot) @ syn / len(syn)
        groups = [g for g in range(cells.num_groups) if ((cells.labels == cls) & (cells.groups == g)).any()]
        means = []
        for g in groups:
            rows = cells.features[(cells.labels == cls) & (cells.groups == g)]
            means.append(_resample_counts(rng, len(rows), n_boot) @ rows / len(rows))
        means = np.stack(means, axis=1)  # (n_boot, G present, D)
        column = groups.index(reference)
        out[cls] = np.array([mixture_fit(targets[b], means[b])[0][column] for b in range(n_boot)])
    return out


def probe_intervals(comp: dict, syn_labels: np.ndarray, syn_groups: np.ndarray, syn_known: np.ndarray,
                    syn_features: np.ndarray | None, cells: CellFeatures | None, *, n_boot: int = DEFAULT_N_BOOT,
                    level: float = DEFAULT_LEVEL, seed: int = 0) -> dict:
    """Interval keys for the composition section (and per-class intervals added to its classes).

    *comp* is :func:`._composition.composition`'s result for the same images: its
    classes say which enter each mean and which group each weight is read for.
    """
    rng = np.random.default_rng([seed, 23])
    syn_labels, syn_groups = np.asarray(syn_labels), np.asarray(syn_groups)
    syn_known = np.asarray(syn_known, dtype=bool)
    entries = {entry["class"]: entry for entry in comp["classes"]}
    share_classes = [c for c, e in entries.items() if e["images"] > 0]
    num_groups = len(comp["classes"][0]["counts"]) if comp["classes"] else 0
    shares = share_replicates(syn_labels, syn_groups, syn_known, share_classes, num_groups, rng, n_boot)
    for cls, values in shares.items():
        entries[cls]["majority_share_interval"] = _percentiles(values, level)
    out = {
        "mean_majority_share_interval": _percentiles(_class_mean(list(shares.values()), n_boot), level),
        "interval_method": INTERVAL_METHOD,
        "interval_level": level,
        "n_boot": n_boot,
    }
    if syn_features is not None and cells is not None and "weight_classes" in comp:
        references = {c: entries[c]["weight_group"] for c in comp["weight_classes"]}
        weights = weight_replicates(syn_labels, np.asarray(syn_features, dtype=np.float64), cells, references, rng, n_boot)
        for cls, values in weights.items():
            entries[cls]["majority_weight_interval"] = _percentiles(values, level)
        out["mean_majority_weight_interval"] = _percentiles(_class_mean(list(weights.values()), n_boot), level)
    return out


def check_n_boot(n_boot: int) -> int:
    from ddaudit.errors import ConfigError

    if not isinstance(n_boot, int) or n_boot < 20:
        raise ConfigError(f"--n-boot must be an integer of at least 20, got {n_boot!r}")
    return n_boot




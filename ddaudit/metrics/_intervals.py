"""Gating intervals: exact per-cell binomial bounds carried through each metric, plus evaluator spread.

Why not the bootstrap? Resampling an 8/8 cell always gives 8/8, so a bootstrap
interval of a metric built on small, extreme cells has no width and misses the
truth; and the max/min inside DEO makes a Bayesian posterior of the metric sit
above the truth when several classes are close. A gate needs an interval that
holds for every configuration, small cells included, so this module builds one
from exact Clopper-Pearson bounds (``scipy.stats.beta``) of each cell's
accuracy and combines them conservatively.

For a max-type metric such as ``DEO_M = max_y (max_a p_ya - min_a p_ya)``:

* the *upper* bound ``max_y (max_a U_ya - min_a L_ya)`` is wrong only if the
  bounds of the two cells that hold the true maximum are wrong, so each cell
  bound has one-sided level ``alpha/4``;
* the *lower* bound inverts a test of "every class's gap is at most t": each
  class gives a p-value from its highest and lowest cell (Bonferroni over its
  cells, so valid whichever cells the data pick), and the classes, which hold
  disjoint test images, are combined by Fisher's method *or* by their smallest
  p-value (Bonferroni over classes), each at ``alpha/4``. Fisher's method lets
  ten classes that each show 8/8 against 0/8 add up to a certain violation,
  which no single class of 8 images can show; the smallest p-value keeps the
  power when only one class is unfair.

Bounds that cannot exploit such structure use Bonferroni over the ``m`` cells
they read, at one-sided level ``alpha / (4 m)`` per cell (``alpha / (2 m)`` for
one-sided families).

Each bound therefore errs with probability at most ``alpha/2``, whatever the
cell sizes or accuracies; small cells simply give wide bounds. The other
metrics follow the same rule (see :data:`LEVELS`). Bounds are computed per
evaluator and averaged: the test-set part of the interval of the evaluators'
mean. Evaluator seeds add their own noise, so each side is then widened in
quadrature by the t-interval margin of the per-evaluator values
(``t_{E-1} * sd / sqrt(E)``; none for one evaluator).

``benchmarks/interval_coverage.py`` measures the coverage of this interval and
of the bootstrap and posterior alternatives on simulated test sets.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from ._counts import cell_accuracy
from ._disparity import class_gaps

#: Recorded as ``interval_method`` next to every interval this module computes.
METHOD = "clopper-pearson-bound+evaluator-t"
#: ``interval_method`` when a single evaluator leaves no seed spread to measure.
METHOD_ONE_EVALUATOR = "clopper-pearson-bound"
#: Metrics this module gives an interval, in report order.
INTERVAL_METRICS = ("accuracy", "worst_group_accuracy", "deo_max", "deo_avg", "accuracy_gap")
#: How each bound spends its error ``alpha/2``: on one cell side ("one"), on the two
#: cells of one contrast ("pair"), on one contrast per class ("per_class"), or on every
#: cell it reads ("all").
LEVELS = {
    "accuracy": ("one", "one"),
    "worst_group_accuracy": ("one", "all"),
    "deo_max": ("all", "pair"),
    "deo_avg": ("all", "per_class"),
    "accuracy_gap": ("all", "pair"),
}


def clopper_pearson(correct, total, tail: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact one-sided bounds ``(L, U)`` of a binomial proportion, each wrong with probability <= ``tail``.

    ``L = Beta(tail; k, n - k + 1)`` and ``U = Beta(1 - tail; k + 1, n - k)``,
    with ``L = 0`` at ``k = 0`` and ``U = 1`` at ``k = n``; NaN where ``n = 0``.
    Broadcasts over arrays of counts; ``tail`` may be an array too.
    """
    k = np.asarray(correct, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)
    k, n, tail = np.broadcast_arrays(k, n, np.asarray(tail, dtype=np.float64))
    low = np.full(k.shape, np.nan)
    high = np.full(k.shape, np.nan)
    filled = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        low[filled] = np.where(k[filled] > 0,
                               stats.beta.ppf(tail[filled], np.maximum(k[filled], 1e-300), n[filled] - k[filled] + 1),
                               0.0)
        high[filled] = np.where(k[filled] < n[filled],
                                stats.beta.ppf(1 - tail[filled], k[filled] + 1, np.maximum(n[filled] - k[filled], 1e-300)),
                                1.0)
    return low, high


def _cell_bounds(correct, total, tail, empty_as_zero):
    low, high = clopper_pearson(correct, total, tail)
    if empty_as_zero:
        empty = np.broadcast_to(np.asarray(total) == 0, low.shape)
        low, high = np.where(empty, 0.0, low), np.where(empty, 0.0, high)
    return low, high


def _unknown_where_empty(bounds, total, empty_as_zero):
    """Bounds ``[0, 1]`` for cells without test images: their accuracy could be anything.

    Point estimates skip empty cells, but a gate must not pass on a cell nobody
    measured; only the side of an interval that such a cell could move is widened.
    (With ``empty_as_zero`` an empty cell is a certain 0, FairDD's convention.)
    """
    low, high = bounds
    if empty_as_zero:
        return low, high
    empty = np.broadcast_to(np.asarray(total) == 0, low.shape)
    return np.where(empty, 0.0, low), np.where(empty, 1.0, high)


def _spread_bounds(low, high, axis, floor_at_zero: bool):
    """``(max L - min U, max U - min L)`` over *axis*, ignoring NaN cells; NaN with fewer than 2."""
    present = ~np.isnan(low)
    count = present.sum(axis=axis)
    top_low = np.where(present, low, -np.inf).max(axis=axis)
    top_high = np.where(present, high, -np.inf).max(axis=axis)
    bottom_low = np.where(present, low, np.inf).min(axis=axis)
    bottom_high = np.where(present, high, np.inf).min(axis=axis)
    lower = top_low - bottom_high
    if floor_at_zero:
        lower = np.maximum(lower, 0.0)
    upper = top_high - bottom_low
    return np.where(count >= 2, lower, np.nan), np.where(count >= 2, upper, np.nan)


def _nan_reduce(values, axis, how):
    defined = ~np.isnan(values)
    count = defined.sum(axis=axis)
    if how == "max":
        out = np.where(defined, values, -np.inf).max(axis=axis)
    elif how == "min":
        out = np.where(defined, values, np.inf).min(axis=axis)
    else:
        out = np.where(defined, values, 0.0).sum(axis=axis) / np.maximum(count, 1)
    return np.where(count > 0, out, np.nan)


def _per_evaluator(correct, total, alpha, empty_as_zero):
    """Point values and test-set bounds ``(value, low, high)`` of every metric, per evaluator ``(..., E)``."""
    correct = np.asarray(correct, dtype=np.float64)
    total = np.broadcast_to(np.asarray(total, dtype=np.float64), correct.shape)
    acc = cell_accuracy(correct, total, empty_as_zero=empty_as_zero)
    filled = total > 0
    counted = filled | empty_as_zero
    gaps = class_gaps(acc)                                          # (..., E, K)
    gap_classes = ~np.isnan(gaps)
    # Cells each family of bounds reads: every counted cell, or those of classes with a gap.
    all_cells = np.maximum(filled.sum(axis=(-2, -1)), 1)[..., None, None]
    gap_cells = np.maximum((filled & gap_classes[..., None]).sum(axis=(-2, -1)), 1)[..., None, None]
    classes = correct.shape[-2]
    out = {}

    hits, size = correct.sum(axis=(-2, -1)), total.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(size > 0, hits / size, np.nan)
    low, high = clopper_pearson(hits, size, alpha / 2)
    out["accuracy"] = (value, low, high)

    worst = _nan_reduce(np.where(counted, acc, np.nan), (-2, -1), "min")
    low = _nan_reduce(_unknown_where_empty(_cell_bounds(correct, total, alpha / 2, empty_as_zero), total,
                                           empty_as_zero)[0], (-2, -1), "min")
    high = _nan_reduce(_cell_bounds(correct, total, alpha / (2 * all_cells), empty_as_zero)[1], (-2, -1), "min")
    out["worst_group_accuracy"] = (worst, low, high)

    wide = _cell_bounds(correct, total, alpha / (4 * gap_cells), empty_as_zero)
    class_low, _ = _spread_bounds(*wide, axis=-1, floor_at_zero=True)
    _, pair_high = _spread_bounds(*_unknown_where_empty(_cell_bounds(correct, total, alpha / 4, empty_as_zero),
                                                        total, empty_as_zero), axis=-1, floor_at_zero=True)
    _, class_high = _spread_bounds(*_unknown_where_empty(_cell_bounds(correct, total, alpha / (4 * classes),
                                                                      empty_as_zero), total, empty_as_zero),
                                   axis=-1, floor_at_zero=True)
    out["deo_max"] = (_nan_reduce(gaps, -1, "max"), deo_max_lower(correct, total, alpha, empty_as_zero),
                      _nan_reduce(pair_high, -1, "max"))
    out["deo_avg"] = (_nan_reduce(gaps, -1, "mean"), _nan_reduce(class_low, -1, "mean"),
                      _nan_reduce(class_high, -1, "mean"))

    group_hits, group_size = correct.sum(axis=-2), total.sum(axis=-2)   # (..., E, G)
    present = group_size > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        group_acc = np.where(present, group_hits / np.where(present, group_size, 1), np.nan)
    groups = np.maximum(present.sum(axis=-1), 1)[..., None]
    spread_value = _nan_reduce(group_acc, -1, "max") - _nan_reduce(group_acc, -1, "min")
    spread_value = np.where(present.sum(axis=-1) >= 2, spread_value, np.nan)
    gap_low, _ = _spread_bounds(*clopper_pearson(group_hits, group_size, alpha / (4 * groups)), axis=-1,
                                floor_at_zero=True)
    _, gap_high = _spread_bounds(*_unknown_where_empty(clopper_pearson(group_hits, group_size, alpha / 4), group_size,
                                                       False), axis=-1, floor_at_zero=True)
    out["accuracy_gap"] = (spread_value, gap_low, gap_high)
    return out


def _upper_tail(hits, size, p):
    """``P(X >= hits)`` for ``X ~ Binomial(size, p)``; 1 at ``hits = 0``."""
    with np.errstate(invalid="ignore"):
        return np.where(hits > 0, special.betainc(np.maximum(hits, 1e-300), size - hits + 1, np.clip(p, 0, 1)), 1.0)


def _lower_tail(hits, size, p):
    """``P(X <= hits)`` for ``X ~ Binomial(size, p)``; 1 at ``hits = size``."""
    with np.errstate(invalid="ignore"):
        return np.where(hits < size,
                        special.betainc(np.maximum(size - hits, 1e-300), hits + 1, np.clip(1 - p, 0, 1)), 1.0)


def _extreme_cells(acc, total, highest: bool):
    """Index of each class's highest (or lowest) accuracy cell, ties to the largest cell."""
    present = ~np.isnan(acc)
    fill = -np.inf if highest else np.inf
    keyed = np.where(present, acc, fill)
    best = keyed.max(axis=-1, keepdims=True) if highest else keyed.min(axis=-1, keepdims=True)
    ties = present & (np.abs(keyed - best) <= 1e-12)
    return np.where(ties, total, -1).argmax(axis=-1)[..., None]


def class_gap_pvalues(hits_high, size_high, hits_low, size_low, groups, t, iterations: int = 26):
    """p-value of "this class's gap is at most t" from its highest and lowest cell.

    The smallest ``beta`` with ``L_high(beta) - U_low(beta) > t`` (one-sided
    Clopper-Pearson bounds), found as the crossing of the two binomial tails,
    times ``2 * groups``: under the null some cell's bound must be wrong, and
    each of the ``2 * groups`` one-sided bounds errs with probability ``beta``.
    """
    t = np.broadcast_to(t, np.broadcast(hits_high, t).shape)
    low, high = t.copy(), np.ones_like(t)
    for _ in range(iterations):
        middle = (low + high) / 2
        rising = _upper_tail(hits_high, size_high, middle) >= _lower_tail(hits_low, size_low, middle - t)
        high = np.where(rising, middle, high)
        low = np.where(rising, low, middle)
    beta = np.maximum(_upper_tail(hits_high, size_high, high), _lower_tail(hits_low, size_low, high - t))
    return np.minimum(1.0, 2 * groups * beta)


def deo_max_lower(correct, total, alpha: float, empty_as_zero: bool = False, iterations: int = 16) -> np.ndarray:
    """Lower confidence bound of DEO_M per evaluator ``(..., E)``, wrong with probability <= ``alpha/2``.

    The largest ``t`` (to ``2**-iterations``) at which "every class's gap is at
    most t" is rejected by Fisher's combination of the class p-values of
    :func:`class_gap_pvalues` or by their minimum times the number of classes,
    each at level ``alpha/4``. Classes with fewer than two non-empty groups take
    no part. With ``empty_as_zero``, an empty cell is a certain accuracy of 0.
    """
    correct = np.asarray(correct, dtype=np.float64)
    total = np.broadcast_to(np.asarray(total, dtype=np.float64), correct.shape)
    if empty_as_zero:
        total = np.where(total > 0, total, 1e9)     # a huge 0-of-n cell: accuracy 0, bounds [0, ~0]
    acc = cell_accuracy(correct, total)
    present = ~np.isnan(acc)
    groups = present.sum(axis=-1)
    defined = groups >= 2
    top, bottom = _extreme_cells(acc, total, True), _extreme_cells(acc, total, False)
    hits_high = np.take_along_axis(correct, top, -1)[..., 0]
    size_high = np.take_along_axis(total, top, -1)[..., 0]
    hits_low = np.take_along_axis(correct, bottom, -1)[..., 0]
    size_low = np.take_along_axis(total, bottom, -1)[..., 0]
    classes = defined.sum(axis=-1)
    fisher_limit = stats.chi2.isf(alpha / 4, 2 * np.maximum(classes, 1))

    def rejected(t):
        p = class_gap_pvalues(hits_high, size_high, hits_low, size_low, groups, t[..., None])
        p = np.where(defined, p, 1.0)
        fisher = -2 * np.log(np.maximum(p, 1e-300)).sum(axis=-1)
        smallest = p.min(axis=-1) * np.maximum(classes, 1)
        return (classes > 0) & ((fisher > fisher_limit) | (smallest <= alpha / 4))

    low = np.zeros(correct.shape[:-2])
    high = np.ones(correct.shape[:-2])
    for _ in range(iterations):
        middle = (low + high) / 2
        hit = rejected(middle)
        low = np.where(hit, middle, low)
        high = np.where(hit, high, middle)
    return np.where(classes > 0, low, np.nan)


def interval_table(correct, total, confidence: float = 0.95, *, empty_as_zero: bool = False) -> dict[str, dict]:
    """Estimate and gating interval of each metric in :data:`INTERVAL_METRICS`.

    Parameters
    ----------
    correct : array, shape (..., E, K, G)
        Correct predictions per evaluator and (class, group) cell; leading axes
        (e.g. simulated test sets) are kept.
    total : array, broadcastable to ``correct``
        Test samples per cell.
    confidence : float
        Coverage of each two-sided interval; each side errs with at most half the rest.

    Returns
    -------
    ``{metric: {"estimate", "low", "high", "test_low", "test_high", "margin"}}``,
    arrays of shape ``(...)``: the evaluators' mean, the interval, its test-set
    part (per-evaluator bounds averaged) and the evaluator margin added in quadrature.
    NaN where the metric is undefined.
    """
    alpha = 1.0 - float(confidence)
    correct = np.asarray(correct, dtype=np.float64)
    evaluators = correct.shape[-3]
    table = {}
    for name, (value, low, high) in _per_evaluator(correct, total, alpha, empty_as_zero).items():
        estimate = value.mean(axis=-1)
        test_low, test_high = low.mean(axis=-1), high.mean(axis=-1)
        if evaluators > 1:
            spread = value.std(axis=-1, ddof=1) / np.sqrt(evaluators)
            margin = stats.t.ppf(1 - alpha / 2, evaluators - 1) * spread
        else:
            margin = np.zeros_like(estimate)
        table[name] = {
            "estimate": estimate,
            "low": np.clip(estimate - np.hypot(estimate - test_low, margin), 0.0, 1.0),
            "high": np.clip(estimate + np.hypot(test_high - estimate, margin), 0.0, 1.0),
            "test_low": test_low,
            "test_high": test_high,
            "margin": margin,
        }
    return table


def metric_intervals(correct, total, confidence: float = 0.95, *, empty_as_zero: bool = False) -> dict[str, dict]:
    """Report fields of one audit: ``{metric: {"interval", "interval_method", "interval_test", "interval_margin"}}``.

    *correct* is ``(E, K, G)``. ``interval`` is what gates decide on;
    ``interval_test`` its test-set part and ``interval_margin`` the evaluator
    t-margin, so a reader can tell which source dominates.
    """
    correct = np.asarray(correct)
    method = METHOD if correct.shape[0] > 1 else METHOD_ONE_EVALUATOR
    fields = {}
    for name, row in interval_table(correct, total, confidence, empty_as_zero=empty_as_zero).items():
        fields[name] = {
            "interval": [float(row["low"]), float(row["high"])],
            "interval_method": method,
            "interval_test": [float(row["test_low"]), float(row["test_high"])],
            "interval_margin": float(row["margin"]),
        }
    return fields

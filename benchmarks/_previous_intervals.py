"""The previous gating-interval construction, kept unchanged so the benchmark can compare against it.

Not used by ddaudit. Its docstring below is as it was; its guarantee is overstated: per-evaluator
bounds are averaged (valid at E x alpha/2 by the union bound, not alpha/2) and widened in quadrature
(a normal approximation). See ``ddaudit/metrics/_intervals.py`` for what replaced it.

Gating intervals: exact per-cell binomial bounds carried through each metric, plus evaluator spread.

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

Each end of every interval therefore errs with probability at most
``alpha/2``, whatever the cell sizes or accuracies; small cells simply give
wide bounds. The cells' one-sided levels, metric by metric:

=========================  ============================  ==============================
metric                     lower end                     upper end
=========================  ============================  ==============================
accuracy (pooled)          ``alpha/2``                   ``alpha/2``
worst-group accuracy       ``alpha/2`` (true min cell)   ``alpha/(2m)``, all m cells
DEO_M                      class test (above)            ``alpha/4`` (true max pair)
DEO_A                      ``alpha/(4m)``, all m cells   ``alpha/(4K)`` per class pair
accuracy gap (pooled)      ``alpha/(4G)``, all groups    ``alpha/4`` (true max pair)
equalized odds (1-vs-rest) class test (TPR and FPR)      ``alpha/4`` (true max pair)
=========================  ============================  ==============================


Bounds are computed per evaluator and averaged: the test-set part of the
interval of the evaluators' mean. Evaluator seeds add their own noise, so each
side is then widened in quadrature by the t-interval margin of the
per-evaluator values (``t_{E-1} * sd / sqrt(E)``; none for one evaluator).

``benchmarks/interval_coverage.py`` measures the coverage of this interval and
of the bootstrap and posterior alternatives on simulated test sets.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from ddaudit.metrics._counts import cell_accuracy
from ddaudit.metrics._disparity import class_gaps

#: Recorded as ``interval_method`` next to every interval this module computes.
METHOD = "clopper-pearson-bound+evaluator-t"
#: ``interval_method`` when a single evaluator leaves no seed spread to measure.
METHOD_ONE_EVALUATOR = "clopper-pearson-bound"
#: Metrics this module gives an interval, in report order (equalized odds needs prediction counts).
INTERVAL_METRICS = ("accuracy", "worst_group_accuracy", "deo_max", "deo_avg", "accuracy_gap",
                    "equalized_odds_difference")


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

    With ``empty_as_zero``, an empty cell is a certain accuracy of 0 (a huge 0-of-n cell).
    """
    correct = np.asarray(correct, dtype=np.float64)
    total = np.broadcast_to(np.asarray(total, dtype=np.float64), correct.shape)
    if empty_as_zero:
        total = np.where(total > 0, total, 1e9)
    return max_gap_lower([(correct, total)], alpha, iterations=iterations)


def max_gap_lower(families, alpha: float, *, independent: int | None = None, iterations: int = 16) -> np.ndarray:
    """Lower confidence bound of ``max_y max_f (max_a r_fya - min_a r_fya)`` over rates ``r = hits / size``.

    *families* lists ``(hits, size)`` arrays ``(..., E, K, G)``, one per kind of
    rate (accuracy for DEO_M; true and false positive rates for equalized odds);
    cells with ``size = 0`` take no part. Returns the largest ``t`` (to
    ``2**-iterations``) at which "every class's gap is at most t" is rejected.
    A class's p-value is the smallest of its families' :func:`class_gap_pvalues`
    times the number of families; the null is rejected when the smallest class
    p-value times the number of classes is at most ``alpha/4``, or when Fisher's
    method rejects at ``alpha/4``. Fisher's method needs classes with disjoint
    test images, so it reads only the first *independent* families (default:
    all; accuracies within each true class are disjoint, false positive rates
    share images across classes); with none, the minimum alone spends ``alpha/2``.
    A class with no family of 2 or more groups takes no part.
    """
    independent = len(families) if independent is None else independent
    pairs, usable = [], []
    for hits, size in families:
        hits = np.asarray(hits, dtype=np.float64)
        size = np.broadcast_to(np.asarray(size, dtype=np.float64), hits.shape)
        rate = cell_accuracy(hits, size)
        groups = (~np.isnan(rate)).sum(axis=-1)
        top, bottom = _extreme_cells(rate, size, True), _extreme_cells(rate, size, False)
        pairs.append((np.take_along_axis(hits, top, -1)[..., 0], np.take_along_axis(size, top, -1)[..., 0],
                      np.take_along_axis(hits, bottom, -1)[..., 0], np.take_along_axis(size, bottom, -1)[..., 0],
                      groups))
        usable.append(groups >= 2)
    defined = np.any(usable, axis=0)
    classes = defined.sum(axis=-1)
    fisher_defined = np.any(usable[:independent], axis=0) if independent else np.zeros_like(defined)
    fisher_classes = fisher_defined.sum(axis=-1)
    fisher_limit = stats.chi2.isf(alpha / 4, 2 * np.maximum(fisher_classes, 1))
    min_level = alpha / 4 if independent else alpha / 2

    def rejected(t):
        per_family = [np.where(ok, class_gap_pvalues(*pair[:4], pair[4], t[..., None]), 1.0)
                      for pair, ok in zip(pairs, usable)]
        p = np.where(defined, np.minimum(1.0, np.min(per_family, axis=0) * len(per_family)), 1.0)
        hit = (classes > 0) & (p.min(axis=-1) * np.maximum(classes, 1) <= min_level)
        if independent:
            q = np.where(fisher_defined, np.minimum(1.0, np.min(per_family[:independent], axis=0) * independent), 1.0)
            fisher = -2 * np.log(np.maximum(q, 1e-300)).sum(axis=-1)
            hit |= (fisher_classes > 0) & (fisher > fisher_limit)
        return hit

    low = np.zeros(defined.shape[:-1])
    high = np.ones(defined.shape[:-1])
    for _ in range(iterations):
        middle = (low + high) / 2
        hit = rejected(middle)
        low = np.where(hit, middle, low)
        high = np.where(hit, high, middle)
    return np.where(classes > 0, low, np.nan)


def prediction_counts(groups, predictions, num_classes: int, num_groups: int) -> np.ndarray:
    """``#{yhat = k, A = a}`` per evaluator, shape ``(E, K, G)``: with the correct counts, the false positives."""
    predictions = np.atleast_2d(np.asarray(predictions))
    evaluators = predictions.shape[0]
    code = (np.arange(evaluators)[:, None] * num_classes + predictions) * num_groups + np.asarray(groups)[None, :]
    return np.bincount(code.ravel(), minlength=evaluators * num_classes * num_groups).reshape(
        evaluators, num_classes, num_groups)


def _equalized_odds(correct, total, predicted, alpha):
    """One-vs-rest equalized odds ``(value, low, high)`` per evaluator, from counts.

    Class k's value is ``max(TPR gap, FPR gap)`` over the groups that have both
    positives and negatives of k (fairlearn's ``agg="worst_case"``, as the
    report computes it); the metric is the largest over classes. The upper bound
    reads the two cells of the true largest gap (level ``alpha/4`` each), with
    groups lacking positives or negatives counted as unknown ``[0, 1]``; the
    lower bound is :func:`max_gap_lower` over the two families of rates (Fisher's
    method reads the true positive rates only: false positives of different
    classes share images).
    """
    correct = np.asarray(correct, dtype=np.float64)
    total = np.broadcast_to(np.asarray(total, dtype=np.float64), correct.shape)
    predicted = np.asarray(predicted, dtype=np.float64)
    negatives = total.sum(axis=-2, keepdims=True) - total
    false_positives = predicted - correct
    qualified = (total > 0) & (negatives > 0)
    positives = np.where(qualified, total, 0.0)
    negatives = np.where(qualified, negatives, 0.0)
    tpr = cell_accuracy(correct, positives)
    fpr = cell_accuracy(false_positives, negatives)
    per_class = np.fmax(class_gaps(tpr), class_gaps(fpr))
    value = _nan_reduce(per_class, -1, "max")
    low = max_gap_lower([(correct, positives), (false_positives, negatives)], alpha, independent=1)
    uppers = []
    for hits, size in ((correct, positives), (false_positives, negatives)):
        bounds = clopper_pearson(hits, size, alpha / 4)
        unknown = np.broadcast_to(~qualified, bounds[0].shape)
        _, upper = _spread_bounds(np.where(unknown, 0.0, bounds[0]), np.where(unknown, 1.0, bounds[1]), axis=-1,
                                  floor_at_zero=True)
        uppers.append(upper)
    high = _nan_reduce(np.fmax(*uppers), -1, "max")
    return value, low, high


def interval_table(correct, total, confidence: float = 0.95, *, empty_as_zero: bool = False,
                   predicted=None) -> dict[str, dict]:
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
    predicted : array, shape (..., E, K, G), optional
        ``#{yhat = k, A = a}`` per evaluator (:func:`prediction_counts`); adds
        ``equalized_odds_difference``.

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
    rows = _per_evaluator(correct, total, alpha, empty_as_zero)
    if predicted is not None:
        rows["equalized_odds_difference"] = _equalized_odds(correct, total, predicted, alpha)
    for name, (value, low, high) in rows.items():
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


def metric_intervals(correct, total, confidence: float = 0.95, *, empty_as_zero: bool = False,
                     predicted=None) -> dict[str, dict]:
    """Report fields of one audit: ``{metric: {"interval", "interval_method", "interval_test", "interval_margin"}}``.

    *correct* is ``(E, K, G)``. ``interval`` is what gates decide on;
    ``interval_test`` its test-set part and ``interval_margin`` the evaluator
    t-margin, so a reader can tell which source dominates.
    """
    correct = np.asarray(correct)
    method = METHOD if correct.shape[0] > 1 else METHOD_ONE_EVALUATOR
    fields = {}
    for name, row in interval_table(correct, total, confidence, empty_as_zero=empty_as_zero,
                                    predicted=predicted).items():
        fields[name] = {
            "interval": [float(row["low"]), float(row["high"])],
            "interval_method": method,
            "interval_test": [float(row["test_low"]), float(row["test_high"])],
            "interval_margin": float(row["margin"]),
        }
    return fields

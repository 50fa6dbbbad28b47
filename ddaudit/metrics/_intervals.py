"""Gating intervals of every gated metric, with test-set noise and evaluator spread.

What an interval is for. A gate decides on an interval of the evaluators'
mean of a metric, and the truth it should contain is that mean's expectation
over test sets and evaluator seeds (``benchmarks/interval_coverage.py`` draws
both). Why not the bootstrap? Resampling an 8/8 cell always gives 8/8, so a
bootstrap interval of a metric built on small, extreme cells has no width and
misses the truth; and the max/min inside DEO makes it sit above the truth.

The construction, for level ``alpha`` (each end should err at most ``alpha/2``):

* **Cells read as one sample averaged over evaluators.** The evaluators are
  scored on the same test images, so a cell's evidence is the mean over
  evaluators of its correct predictions: the mean of per-image scores in
  ``[0, 1]`` whose variance is at most ``mu (1 - mu)``, the binomial one. A
  max or range over cells of the averaged accuracies is at most the mean over
  evaluators of the same max or range (Jensen: both are convex), so a lower
  bound for the former is one for the metric. The lower ends of DEO_M, DEO_A,
  the accuracy gap, the class accuracy gap, equalized odds and demographic
  parity, the accuracy and the upper end of worst-group accuracy are built
  this way.
* **Differences of two proportions, not two one-sample bounds.** A gap is
  bounded by Newcombe's hybrid bound on ``p_a - p_b`` (:mod:`._bounds`), built
  from exact Clopper-Pearson bounds of the two cells, whose errors add in
  quadrature. Every ordered pair of groups in a class is read (Bonferroni over
  the pairs). The lower end of DEO_M is the largest of three bounds at
  ``alpha/6`` each: the largest pair bound over all classes (one unfair class
  suffices); the lower bound of DEO_A (``DEO_M >= DEO_A``: one pair per class,
  whose mean's error shrinks as ``1/sqrt(K)`` when many classes are moderately
  unfair); and a band test that reads every cell at once (a chi-square of each
  class's rates against the narrowest band of width ``t``: many groups that
  differ). Equalized odds takes the first two with true and false positive
  rates (the mean reads the true positive rates, whose classes hold disjoint
  images); demographic parity the first, over selection rates.
* **Evaluator spread in the same quadrature.** Each pair's variance gains
  ``c * var_e(d_e) / E``, the spread over evaluators of their own differences
  (seed noise plus the test-set noise they do not share), with
  ``c = (t_{E-1} / z)**2`` at the end's level (:func:`seed_inflation`) so that
  a spread read from a handful of evaluators is not taken as exact.
* **Ends that need each evaluator.** A mean over evaluators of a max is *not*
  bounded above by the max of the means (evaluators unfair on different
  classes), so upper ends of disparities, the lower end of worst-group
  accuracy and both ends of the sufficiency gap are bounded per evaluator,
  each at ``alpha/(2E)`` (union bound over evaluators), averaged, and widened
  in quadrature by the t-margin of the per-evaluator values.
* **Single bounds split their level.** The accuracy and the upper end of
  worst-group accuracy rest on one bound, with no Bonferroni slack: with
  several evaluators the test-set bound takes ``alpha/4`` and the t-margin of
  the per-evaluator values ``alpha/4``, added (union bound).
* **Directional bias amplification** is linear in per-image scores in
  ``[-1, 1]``: a normal interval from the stratified variance bound
  ``sum_c w_c^2 n_c (1 - m_c^2)``, its level split with the t-margin likewise.

What is promised and what is not. The union bounds (over pairs, classes,
evaluators, and the two halves of an end) are exact bookkeeping of error
probabilities, and each cell's Clopper-Pearson bound is exact. Two steps are
approximations: Newcombe's quadrature of the two cells' errors (a normal
approximation, close to nominal and mostly conservative in published
studies), and the evaluator spread (it treats the mean of a handful of seeds
as normal). So each end errs with *about* ``alpha/2`` at most, not provably;
``benchmarks/interval_coverage.py`` measures how often on the configurations
recorded in ``benchmarks/RESULTS.md``, and ``tests/test_intervals.py`` checks
coverage and width. With one evaluator, or evaluators that agree, only the
first approximation remains. A metric without a rule here has no gating
interval, and ``--gate-on ci`` refuses to gate it.
"""

from __future__ import annotations

import numpy as np

from ._bounds import (band_gap_lower, max_gap_lower, max_pair_bounds, mean_gap_lower, normal_quantile, pair_extra,
                      proportion_bounds)
from ._counts import cell_accuracy
from ._disparity import class_gaps, class_precision_gaps

#: Recorded as ``interval_method`` next to every interval this module computes.
METHOD = ("newcombe-hybrid of clopper-pearson bounds (approximate) "
          "+ evaluator spread (normal approximation)")
#: ``interval_method`` when a single evaluator leaves no seed spread to measure.
METHOD_ONE_EVALUATOR = "newcombe-hybrid of clopper-pearson bounds (approximate)"
#: A stand-in size for an empty cell under FairDD's convention (a certain accuracy of 0).
EMPTY_AS_ZERO_SIZE = 1e9


# ---------------------------------------------------------------- helpers


def _counts(tables):
    correct = np.asarray(tables.correct, dtype=np.float64)
    total = np.broadcast_to(np.asarray(tables.total, dtype=np.float64), correct.shape)
    if tables.empty_as_zero:
        total = np.where(total > 0, total, EMPTY_AS_ZERO_SIZE)
    return correct, total


def _rates(hits, size):
    return cell_accuracy(hits, size)


def _nan_reduce(values, axis, how):
    values = np.asarray(values, dtype=np.float64)
    defined = ~np.isnan(values)
    count = defined.sum(axis=axis)
    if how == "max":
        out = np.where(defined, values, -np.inf).max(axis=axis)
    elif how == "min":
        out = np.where(defined, values, np.inf).min(axis=axis)
    else:
        out = np.where(defined, values, 0.0).sum(axis=axis) / np.maximum(count, 1)
    return np.where(count > 0, out, np.nan)


def seed_margin(values, level: float) -> np.ndarray:
    """``t_{E-1}(1 - level) * sd / sqrt(E)`` of per-evaluator *values* ``(..., E)``; 0 for one evaluator."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    evaluators = values.shape[-1]
    if evaluators < 2:
        return np.zeros(values.shape[:-1])
    return stats.t.ppf(1 - level, evaluators - 1) * values.std(axis=-1, ddof=1) / np.sqrt(evaluators)


def _widen(estimate, end, margin, sign):
    """``estimate + sign * hypot(|end - estimate|, margin)``: a test-set end and the seed margin in quadrature."""
    return estimate + sign * np.hypot(np.abs(end - estimate), margin)


def _per_evaluator_end(values, bounds, level, seeds, sign):
    """The evaluators' mean of per-evaluator *bounds* ``(..., E)``, widened by the seed margin when *seeds*."""
    estimate = values.mean(axis=-1)
    end = bounds.mean(axis=-1)
    if not seeds:
        return end
    return _widen(estimate, end, seed_margin(values, level), sign)


def _proportion(hits, size, level, extra):
    """Clopper-Pearson bounds of ``hits / size`` at one-sided *level*, with *extra* variance in quadrature."""
    z = normal_quantile(level)
    low, high = proportion_bounds(hits, size, z)
    p = np.where(size > 0, hits / np.where(size > 0, size, 1.0), np.nan)
    spread = z * z * np.nan_to_num(extra)
    return p - np.sqrt((p - low) ** 2 + spread), p + np.sqrt((high - p) ** 2 + spread)


def seed_inflation(evaluators: int, level: float) -> float:
    """``(t_{E-1}(1 - level) / z(1 - level))**2``: a seed variance estimated from E values, read on the normal scale.

    A variance from a handful of evaluators is itself uncertain; scaling it by
    the squared ratio of the t to the normal quantile at the end's level makes
    a normal bound behave like the t-interval for that evaluator spread alone.
    """
    from scipy import stats

    if evaluators < 2:
        return 0.0
    return float((stats.t.ppf(1 - level, evaluators - 1) / stats.norm.ppf(1 - level)) ** 2)


def _unshared(disagreement, size):
    """Variance per cell of one evaluator's rate that the others do not share: ``sum_i var_e / n**2``."""
    if disagreement is None:
        return None
    size = np.asarray(size, dtype=np.float64)
    return np.where(size > 0, np.asarray(disagreement, dtype=np.float64) / np.where(size > 0, size, 1.0) ** 2, 0.0)


def _seed_variance(values, unshared=None):
    """``max(var_e(values) - unshared, 0) / E`` over the evaluator axis ``-1`` (``ddof=1``)."""
    evaluators = values.shape[-1]
    if evaluators < 2:
        return np.zeros(values.shape[:-1])
    with np.errstate(invalid="ignore"):
        spread = np.var(values, axis=-1, ddof=1)
    if unshared is not None:
        spread = np.maximum(spread - unshared, 0.0)
    return np.nan_to_num(spread / evaluators)


def _cell_seed_variance(rates, seeds, level, unshared=None):
    """Inflated seed variance of the evaluators' mean rate per cell ``(..., K, G)``, or None."""
    evaluators = rates.shape[-3]
    if not seeds or evaluators < 2:
        return None
    return _seed_variance(np.moveaxis(rates, -3, -1), unshared) * seed_inflation(evaluators, level)


def _pair_extra(rates, seeds, level, unshared=None):
    """Inflated :func:`~._bounds.pair_extra`, or None."""
    evaluators = rates.shape[-3]
    if not seeds or evaluators < 2:
        return None
    return pair_extra(rates, unshared) * seed_inflation(evaluators, level)


def _max_gap_upper(families, level, evaluators):
    """Per evaluator, the largest upper pair bound over classes and families ``(..., E, K)``, at ``level / E`` each."""
    z = normal_quantile(level / evaluators)
    uppers = [max_pair_bounds(hits, size, z)[1] for hits, size in families]
    return np.fmax.reduce(uppers) if len(uppers) > 1 else uppers[0]


# ---------------------------------------------------------------- one rule per metric
# Each takes the audit's CountTables, the one-sided level of each end and
# whether to include the evaluator spread, and returns
# ``(per-evaluator values (..., E), low (...), high (...))`` or None.


def accuracy_interval(tables, level, seeds):
    """Pooled accuracy: Clopper-Pearson bounds on the evaluators' mean count (a mean: nothing is lost).

    One bound has no Bonferroni slack to absorb an evaluator spread read from a
    few seeds, so with several evaluators the level is split: the test-set bound
    at ``level/2`` and the t-margin of the per-evaluator accuracies at
    ``level/2``, added (union bound; the margin also counts their unshared
    test-set noise, so it errs on the wide side).
    """
    correct, total = _counts(tables)
    hits, size = correct.sum(axis=(-2, -1)), total.sum(axis=(-2, -1))
    values = hits / size
    if not seeds or values.shape[-1] < 2:
        low, high = _proportion(hits.mean(axis=-1), size[..., 0], level, 0.0)
        return values, low, high
    low, high = _proportion(hits.mean(axis=-1), size[..., 0], level / 2, 0.0)
    margin = seed_margin(values, level / 2)
    return values, low - margin, high + margin


def worst_group_accuracy_interval(tables, level, seeds):
    """Lowest cell accuracy: the upper end reads the true lowest cell (one bound, averaged counts);
    the lower end needs every cell of every evaluator (``level / (E m)``)."""
    correct, total = _counts(tables)
    evaluators = correct.shape[-3]
    rates = _rates(correct, total)
    values = _nan_reduce(rates, (-2, -1), "min")
    filled = total[..., 0, :, :] > 0
    if seeds and evaluators > 1:  # one bound, as for the accuracy: the level is split with the t-margin
        _, high = _proportion(correct.mean(axis=-3), total[..., 0, :, :], level / 2, 0.0)
        high = high + seed_margin(np.moveaxis(rates, -3, -1), level / 2)
    else:
        _, high = _proportion(correct.mean(axis=-3), total[..., 0, :, :], level, 0.0)
    high = _nan_reduce(np.where(filled, high, np.nan), (-2, -1), "min")
    cells = np.maximum(filled.sum(axis=(-2, -1)), 1)[..., None, None, None]
    low, _ = proportion_bounds(correct, total, normal_quantile(level / (evaluators * cells)))
    low = np.where(total > 0, low, 0.0).min(axis=(-2, -1))
    return values, _per_evaluator_end(values, low, level, seeds, -1), high


def deo_max_interval(tables, level, seeds):
    """DEO_M: the class test on averaged counts (lower end); per-evaluator pair bounds (upper end)."""
    correct, total = _counts(tables)
    rates = _rates(correct, total)
    values = _nan_reduce(class_gaps(rates), -1, "max")
    mean, size = correct.mean(axis=-3), total[..., 0, :, :]
    extra = _pair_extra(rates, seeds, level, _unshared(tables.disagreement, size))
    cell_extra = _cell_seed_variance(rates, seeds, level, _unshared(tables.disagreement, size))
    low = np.fmax.reduce(np.stack([max_gap_lower([(mean, size, extra)], level / 3),
                                   mean_gap_lower(mean, size, level / 3, extra),
                                   band_gap_lower(mean, size, level / 3, cell_extra)]), axis=0)
    upper = _nan_reduce(_max_gap_upper([(correct, total)], level, correct.shape[-3]), -1, "max")
    return values, low, _per_evaluator_end(values, upper, level, seeds, 1)


def deo_avg_interval(tables, level, seeds):
    """DEO_A: per class, the largest lower pair bound (every pair of every class at once) and the
    per-evaluator largest upper pair bound (``level / (E K)``), averaged over the classes with a gap."""
    correct, total = _counts(tables)
    evaluators = correct.shape[-3]
    rates = _rates(correct, total)
    gaps = class_gaps(rates)
    values = _nan_reduce(gaps, -1, "mean")
    size = total[..., 0, :, :]
    defined = (size > 0).sum(axis=-1) >= 2
    low = mean_gap_lower(correct.mean(axis=-3), size, level,
                         _pair_extra(rates, seeds, level, _unshared(tables.disagreement, size)))
    classes = np.maximum(defined.sum(axis=-1), 1)[..., None, None]  # against (..., E, K)
    upper = max_pair_bounds(correct, total, normal_quantile(level / (evaluators * classes)))[1]
    upper = _nan_reduce(np.where(defined[..., None, :], upper, np.nan), -1, "mean")
    return values, low, _per_evaluator_end(values, upper, level, seeds, 1)


def _range_interval(hits, size, level, seeds, disagreement=None):
    """``max_c r_c - min_c r_c`` over one row of cells ``(..., E, 1, C)``: lower end on averaged counts
    (every ordered pair, Bonferroni), upper end per evaluator (the true largest pair, ``level / E``)."""
    evaluators = hits.shape[-3]
    rates = _rates(hits, size)
    values = class_gaps(rates)[..., 0]
    row = size[..., 0, :, :]
    pairs = max_pair_bounds(hits.mean(axis=-3), row, 0.0)[2]
    lower = max_pair_bounds(hits.mean(axis=-3), row, normal_quantile(level / np.maximum(pairs, 1)),
                            _pair_extra(rates, seeds, level, _unshared(disagreement, row)))[0][..., 0]
    upper = max_pair_bounds(hits, size, normal_quantile(level / evaluators))[1][..., 0]
    defined = ~np.isnan(values).any(axis=-1)
    low = np.where(defined, lower, np.nan)
    return values, low, np.where(defined, _per_evaluator_end(values, upper, level, seeds, 1), np.nan)


def accuracy_gap_interval(tables, level, seeds):
    """Group accuracy gap, classes pooled: a range over the groups."""
    correct, total = _counts(tables)
    pooled = None if tables.disagreement is None else np.asarray(tables.disagreement).sum(axis=-2)[..., None, :]
    return _range_interval(correct.sum(axis=-2)[..., None, :], total.sum(axis=-2)[..., None, :], level, seeds,
                           pooled)


def class_accuracy_gap_interval(tables, level, seeds):
    """Class accuracy gap, groups pooled: a range over the classes."""
    correct, total = _counts(tables)
    pooled = None if tables.disagreement is None else np.asarray(tables.disagreement).sum(axis=-1)[..., None, :]
    return _range_interval(correct.sum(axis=-1)[..., None, :], total.sum(axis=-1)[..., None, :], level, seeds,
                           pooled)


def equalized_odds_interval(tables, level, seeds):
    """One-vs-rest equalized odds: true and false positive rates as two families of the class test
    (Fisher's method reads the true positive rates only: false positives of different classes share images)."""
    if tables.predicted is None:
        return None
    correct, total = _counts(tables)
    predicted = np.asarray(tables.predicted, dtype=np.float64)
    negatives = total.sum(axis=-2, keepdims=True) - total
    false_positives = predicted - correct
    qualified = (total > 0) & (negatives > 0)
    positives = np.where(qualified, total, 0.0)
    negatives = np.where(qualified, negatives, 0.0)
    tpr, fpr = _rates(correct, positives), _rates(false_positives, negatives)
    values = _nan_reduce(np.fmax(class_gaps(tpr), class_gaps(fpr)), -1, "max")
    unshared = None if tables.disagreement is None else _unshared(
        np.where(qualified[..., 0, :, :], tables.disagreement, 0.0), positives[..., 0, :, :])
    true_family = (correct.mean(axis=-3), positives[..., 0, :, :], _pair_extra(tpr, seeds, level, unshared))
    false_family = (false_positives.mean(axis=-3), negatives[..., 0, :, :], _pair_extra(fpr, seeds, level))
    low = np.fmax(max_gap_lower([true_family, false_family], level / 2), mean_gap_lower(*true_family[:2], level / 2,
                                                                                       true_family[2]))
    upper = _max_gap_upper([(correct, positives), (false_positives, negatives)], level, correct.shape[-3])
    upper = _nan_reduce(upper, -1, "max")
    return values, low, _per_evaluator_end(values, upper, level, seeds, 1)


def demographic_parity_interval(tables, level, seeds):
    """One-vs-rest demographic parity: selection rates ``#{yhat = k, A = a} / #{A = a}``; every class
    reads the same images, so only the smallest p-value combines the classes."""
    if tables.predicted is None:
        return None
    correct, total = _counts(tables)
    predicted = np.asarray(tables.predicted, dtype=np.float64)
    size = np.broadcast_to(np.asarray(tables.total, dtype=np.float64).sum(axis=-2, keepdims=True), predicted.shape)
    rates = _rates(predicted, size)
    values = _nan_reduce(class_gaps(rates), -1, "max")
    low = max_gap_lower([(predicted.mean(axis=-3), size[..., 0, :, :], _pair_extra(rates, seeds, level))], level)
    upper = _nan_reduce(_max_gap_upper([(predicted, size)], level, predicted.shape[-3]), -1, "max")
    return values, low, _per_evaluator_end(values, upper, level, seeds, 1)


def sufficiency_gap_interval(tables, level, seeds):
    """COBRA's sufficiency gap: precisions have each evaluator's own denominators, so both ends are
    bounded per evaluator (``level / E``) and averaged."""
    if tables.predicted is None:
        return None
    correct = np.asarray(tables.correct, dtype=np.float64)
    predicted = np.asarray(tables.predicted, dtype=np.float64)
    evaluators = correct.shape[-3]
    values = _nan_reduce(class_precision_gaps(correct, predicted), -1, "max")
    low = max_gap_lower([(correct, predicted, None)], level / evaluators)
    upper = _nan_reduce(_max_gap_upper([(correct, predicted)], level, evaluators), -1, "max")
    return (values, _per_evaluator_end(values, low, level, seeds, -1),
            _per_evaluator_end(values, upper, level, seeds, 1))


def bias_amplification_interval(tables, level, seeds):
    """Directional bias amplification: a sum of per-image scores, normal with a stratified variance bound."""
    cells = tables.bias_amplification_cells
    if cells is None or tables.bias_amplification is None:
        return None
    sums, weight = (np.asarray(v, dtype=np.float64) for v in cells)
    values = np.asarray(tables.bias_amplification, dtype=np.float64)
    size = np.broadcast_to(np.asarray(tables.total, dtype=np.float64), sums.shape)[..., 0, :, :]
    mean = np.where(size > 0, sums.mean(axis=-3) / np.where(size > 0, size, 1.0), 0.0)
    variance = (weight ** 2 * size * np.clip(1 - mean ** 2, 0.0, 1.0)).sum(axis=(-2, -1))
    estimate = values.mean(axis=-1)
    if not seeds or values.shape[-1] < 2:
        half = normal_quantile(level) * np.sqrt(variance)
    else:  # the level split between the test set and the t-margin, as for the accuracy
        half = normal_quantile(level / 2) * np.sqrt(variance) + seed_margin(values, level / 2)
    return values, estimate - half, estimate + half


def disagreement(right, cells, num_cells: int) -> np.ndarray | None:
    """Per cell, ``sum_i var_e(right[e, i])`` (``ddof=1``) of per-image correctness ``right`` ``(E, N)``.

    None for one evaluator. *cells* is each image's flat (class, group) cell.
    """
    right = np.asarray(right, dtype=np.float64)
    if right.shape[0] < 2:
        return None
    return np.bincount(cells, weights=right.var(axis=0, ddof=1), minlength=num_cells)

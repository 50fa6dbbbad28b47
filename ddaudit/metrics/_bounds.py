"""Bounds for a proportion and for a difference of two proportions, and the gap bounds built on them.

* :func:`proportion_bounds`: exact one-sided Clopper-Pearson bounds of one
  proportion, which also accept a fractional count (the mean over evaluators
  of a cell's correct predictions, see :mod:`._intervals`).
* :func:`difference_bounds`: Newcombe's hybrid bounds on ``p1 - p2``
  (Newcombe 1998, "Interval estimation for the difference between independent
  proportions", method 10): ``d -/+ sqrt((p1 - l1)**2 + (u2 - p2)**2)`` from
  the two one-sample bounds, here Clopper-Pearson rather than Wilson ones (the
  construction takes any; the exact ones stay conservative at 0 % and 100 %,
  where a score bound is too short). The two cells' errors add in quadrature
  rather than linearly, so the bound is up to ``sqrt(2)`` times closer than the
  difference of two one-sample bounds; the quadrature is a normal
  approximation, so the result is approximate, not exact. An ``extra``
  variance (evaluator spread) adds in the same quadrature.
* :func:`max_pair_bounds`: per class, the largest lower and upper pair bound.
* :func:`max_gap_lower` and :func:`mean_gap_lower`: lower confidence bounds on
  the largest and on the mean class gap ``max_a p_ya - min_a p_ya`` that read
  every group of every class.

Only numpy is imported at load time; scipy loads on first use.
"""

from __future__ import annotations

import numpy as np

def normal_quantile(level):
    """``z`` with ``P(Z > z) = level`` for a standard normal ``Z``."""
    from scipy.special import ndtri

    return -ndtri(np.asarray(level, dtype=np.float64))


def normal_tail(z):
    """``P(Z > z)``."""
    from scipy.special import ndtr

    return ndtr(-np.asarray(z, dtype=np.float64))


def proportion_bounds(hits, size, z) -> tuple[np.ndarray, np.ndarray]:
    """One-sided Clopper-Pearson bounds ``(L, U)`` of ``hits / size``, each wrong with probability ``P(Z > z)``.

    ``L = Beta(tail; k, n - k + 1)`` and ``U = Beta(1 - tail; k + 1, n - k)``,
    the exact binomial bounds; ``hits`` may be fractional (the mean over
    evaluators of a cell's correct predictions), where the same beta quantiles
    are the continuous extension. ``L = 0`` when ``hits = 0`` and ``U = 1`` when
    ``hits = size``; a cell with ``size = 0`` is unknown: ``(0, 1)``.
    """
    from scipy.special import betaincinv

    k, n, z = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (hits, size, z)))
    tail = normal_tail(z)
    filled = n > 0
    inside_low = filled & (k > 0)
    inside_high = filled & (k < n)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = betaincinv(np.where(inside_low, k, 1.0), np.where(inside_low, n - k + 1, 1.0), tail)
        high = betaincinv(np.where(inside_high, k + 1, 1.0), np.where(inside_high, n - k, 1.0), 1 - tail)
    low = np.where(inside_low, low, 0.0)
    high = np.where(inside_high, high, 1.0)
    return np.where(filled, low, 0.0), np.where(filled, high, 1.0)


def difference_bounds(hits1, size1, hits2, size2, z, extra=0.0) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid bounds ``(L, U)`` on ``p1 - p2``, each one-sided at normal quantile *z*.

    ``extra`` is a further variance of the difference (the evaluator spread),
    added in quadrature as ``z**2 * extra``. A cell without samples is unknown:
    the bounds become ``l1 - u2`` and ``u1 - l2`` with ``[0, 1]`` for it.
    """
    k1, n1, k2, n2 = (np.asarray(v, dtype=np.float64) for v in (hits1, size1, hits2, size2))
    z = np.asarray(z, dtype=np.float64)
    l1, u1 = proportion_bounds(k1, n1, z)
    l2, u2 = proportion_bounds(k2, n2, z)
    known = (n1 > 0) & (n2 > 0)
    p1 = np.where(n1 > 0, k1 / np.where(n1 > 0, n1, 1.0), 0.0)
    p2 = np.where(n2 > 0, k2 / np.where(n2 > 0, n2, 1.0), 0.0)
    spread = z * z * np.nan_to_num(np.asarray(extra, dtype=np.float64))
    d = p1 - p2
    low = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2 + spread)
    high = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2 + spread)
    low = np.where(known, low, l1 - u2)
    high = np.where(known, high, u1 - l2)
    return np.clip(low, -1.0, 1.0), np.clip(high, -1.0, 1.0)


def ordered_pairs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(values[..., a, None], values[..., None, b])`` broadcast to ``(..., G, G)``: row ``a`` against column ``b``."""
    values = np.asarray(values, dtype=np.float64)
    return values[..., :, None], values[..., None, :]


def _off_diagonal(groups: int) -> np.ndarray:
    return ~np.eye(groups, dtype=bool)


def pair_extra(rates: np.ndarray, unshared=None) -> np.ndarray:
    """Seed variance of the evaluators' mean difference ``r_a - r_b`` per ordered pair, ``(..., K, G, G)``.

    *rates* is ``(..., E, K, G)`` per evaluator (NaN where undefined). The
    spread over evaluators of their own differences, ``var_e(r_ea - r_eb)``
    (``ddof=1``), holds the seed noise plus the test-set noise the evaluators do
    not share; *unshared* ``(..., K, G)``, that part's variance per cell (when
    per-image predictions are known), is taken out, floored at 0, and the rest
    divided by ``E``; 0 for one evaluator.
    """
    rates = np.asarray(rates, dtype=np.float64)
    evaluators = rates.shape[-3]
    if evaluators < 2:
        return np.zeros((*rates.shape[:-3], *rates.shape[-2:], rates.shape[-1]))
    first, second = ordered_pairs(rates)
    with np.errstate(invalid="ignore"):
        spread = np.var(first - second, axis=-4, ddof=1)
    if unshared is not None:
        own, other = ordered_pairs(np.nan_to_num(np.asarray(unshared, dtype=np.float64)))
        spread = np.maximum(spread - own - other, 0.0)
    return np.nan_to_num(spread / evaluators)


def max_pair_bounds(hits, size, z, extra=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class ``(max over ordered pairs of the lower bound, of the upper bound, pairs with samples)``, ``(..., K)``.

    *z* broadcasts against ``(..., K)``. The upper end is right whenever the
    bound of the pair that holds the true largest gap is right (one bound); the
    lower end needs every pair's bound. An empty cell is unknown (``[0, 1]``) in
    the upper end, so a class with one measured group can still be unfair; the
    lower end reads pairs of measured cells only.
    """
    hits = np.asarray(hits, dtype=np.float64)
    size = np.broadcast_to(np.asarray(size, dtype=np.float64), hits.shape)
    k1, k2 = ordered_pairs(hits)
    n1, n2 = ordered_pairs(size)
    off = _off_diagonal(hits.shape[-1])
    z = np.asarray(z, dtype=np.float64)[..., None, None]
    low, high = difference_bounds(k1, n1, k2, n2, z, 0.0 if extra is None else extra)
    known = (n1 > 0) & (n2 > 0) & off
    pairs = known.sum(axis=(-2, -1))
    lower = np.where(known, low, -np.inf).max(axis=(-2, -1))
    upper = np.where(off, high, -np.inf).max(axis=(-2, -1))
    measured = (size > 0).any(axis=-1) & (hits.shape[-1] >= 2)
    lower = np.where(pairs > 0, np.maximum(lower, 0.0), np.nan)
    return lower, np.where(measured, np.maximum(upper, 0.0), np.nan), pairs


def max_gap_lower(families, level: float) -> np.ndarray:
    """Lower confidence bound of ``max_y max_f (max_a r_fya - min_a r_fya)``, wrong with probability about <= *level*.

    *families* lists ``(hits, size, extra)``, arrays ``(..., K, G)`` (``extra``
    ``(..., K, G, G)`` or ``None``), one per kind of rate (accuracy for DEO_M;
    true and false positive rates for equalized odds). It is the largest lower
    pair bound over every class, family and ordered pair of groups, class
    ``y``'s pairs each at ``level / (pairs_y * F * K)`` (Bonferroni: whichever
    pair the data pick, the chance that any bound is wrong is at most *level*).
    This keeps the power when one class is unfair; :func:`mean_gap_lower` adds
    up evidence spread over many classes.
    """
    prepared = []
    for hits, size, extra in families:
        hits = np.asarray(hits, dtype=np.float64)
        size = np.broadcast_to(np.asarray(size, dtype=np.float64), hits.shape)
        prepared.append((hits, size, extra, max_pair_bounds(hits, size, 0.0)[2]))
    defined = np.any([pairs > 0 for *_, pairs in prepared], axis=0)
    classes = np.maximum(defined.sum(axis=-1), 1)[..., None]
    best = None
    for hits, size, extra, pairs in prepared:
        z = normal_quantile(level / (np.maximum(pairs, 1) * len(prepared) * classes))
        lower = max_pair_bounds(hits, size, z, extra)[0]
        best = lower if best is None else np.fmax(best, lower)
    top = np.where(np.isnan(best), -np.inf, best).max(axis=-1)
    return np.where(defined.any(axis=-1), np.maximum(top, 0.0), np.nan)


def mean_gap_lower(hits, size, level: float, extra=None) -> np.ndarray:
    """Lower confidence bound of ``mean_y (max_a p_ya - min_a p_ya)`` over the classes with a measured pair.

    Each class's gap is at least the difference of any one ordered pair, so
    the mean gap is at least the mean of one chosen pair per class (here the
    pair with the largest observed difference). Classes hold disjoint test
    images, so that mean's errors add in quadrature: the bound is
    ``(sum_y d_y - sqrt(sum_y [(p1 - l1)**2 + (u2 - p2)**2 + z**2 extra]))/K``
    with Clopper-Pearson bounds at one quantile ``z``. The choice of pairs depends on the
    data, so ``z`` is taken at ``level / prod_y pairs_y`` (Bonferroni over every
    possible choice): far fewer standard errors than a bound per class, because
    the mean's standard error is ``sqrt(K)`` times smaller.
    """
    hits = np.asarray(hits, dtype=np.float64)
    size = np.broadcast_to(np.asarray(size, dtype=np.float64), hits.shape)
    k1, k2 = ordered_pairs(hits)
    n1, n2 = ordered_pairs(size)
    known = (n1 > 0) & (n2 > 0) & _off_diagonal(hits.shape[-1])
    pairs = known.sum(axis=(-2, -1))
    defined = pairs > 0
    classes = defined.sum(axis=-1)
    choices = np.where(defined, np.log(np.maximum(pairs, 1)), 0.0).sum(axis=-1)
    z = normal_quantile(np.exp(np.maximum(np.log(level) - choices, -700.0)))[..., None, None, None]
    p1 = np.where(n1 > 0, k1 / np.where(n1 > 0, n1, 1.0), 0.0)
    p2 = np.where(n2 > 0, k2 / np.where(n2 > 0, n2, 1.0), 0.0)
    l1, _ = proportion_bounds(k1, n1, z)
    _, u2 = proportion_bounds(k2, n2, z)
    spread = z * z * (0.0 if extra is None else np.nan_to_num(np.asarray(extra, dtype=np.float64)))
    piece = np.broadcast_to((p1 - l1) ** 2 + (u2 - p2) ** 2 + spread, known.shape)
    difference = np.where(known, p1 - p2, -np.inf)
    flat = difference.reshape(*difference.shape[:-2], -1)
    chosen = flat.argmax(axis=-1)[..., None]
    d = np.take_along_axis(flat, chosen, -1)[..., 0]
    variance = np.take_along_axis(piece.reshape(flat.shape), chosen, -1)[..., 0]
    total = np.where(defined, d, 0.0).sum(axis=-1)
    half = np.sqrt(np.where(defined, variance, 0.0).sum(axis=-1))
    low = (total - half) / np.maximum(classes, 1)
    return np.where(classes > 0, np.maximum(low, 0.0), np.nan)


def _band_statistic(rates, weights, t, iterations: int = 40) -> np.ndarray:
    """Per class ``min_c sum_a w_a dist(r_a, [c, c + t])**2`` over ``(..., K, G)`` (NaN rates take no part).

    The function of ``c`` is convex with a non-decreasing derivative, so its
    minimum is found by bisection on the derivative's sign.
    """
    present = ~np.isnan(rates)
    r = np.where(present, rates, 0.0)
    w = np.where(present, weights, 0.0)
    t = np.asarray(t, dtype=np.float64)[..., None]

    def excess(c):
        return np.where(r < c, r - c, np.where(r > c + t, r - c - t, 0.0))

    low = np.full(rates.shape[:-1], -1.0)
    high = np.full(rates.shape[:-1], 1.0)
    for _ in range(iterations):
        middle = (low + high) / 2
        rising = (w * excess(middle[..., None])).sum(axis=-1) <= 0   # the derivative -2 sum w e is >= 0
        high = np.where(rising, middle, high)
        low = np.where(rising, low, middle)
    return (w * excess(high[..., None]) ** 2).sum(axis=-1)


def band_gap_lower(hits, size, level: float, extra=None, iterations: int = 16) -> np.ndarray:
    """Lower confidence bound of ``max_y (max_a p_ya - min_a p_ya)`` from a test that reads every cell at once.

    "Every class's gap is at most t" means each class's rates fit in a band
    ``[c_y, c_y + t]``. For the true bands, each observed rate lies no farther
    from its band than from its own truth, so ``T(t) = sum_y min_c sum_a
    dist(r_ya, [c, c + t])**2 / v_ya`` is at most ``sum (r - p)**2 / v``, about
    chi-square with one degree of freedom per cell when ``v`` is the rate's
    variance (here the Agresti-Coull ``p~(1 - p~)/n`` plus any ``extra``
    evaluator variance). The null is rejected when ``T(t)`` exceeds that
    chi-square's ``1 - level`` quantile; the bound is the largest rejected ``t``.
    A homogeneity test in effect: it adds up many moderate gaps spread over many
    groups, where one chosen pair per class would pay for every possible choice.
    """
    from scipy import stats

    hits = np.asarray(hits, dtype=np.float64)
    size = np.broadcast_to(np.asarray(size, dtype=np.float64), hits.shape)
    filled = size > 0
    rates = np.where(filled, hits / np.where(filled, size, 1.0), np.nan)
    adjusted = (hits + 2) / (size + 4)
    variance = adjusted * (1 - adjusted) / np.where(filled, size, 1.0)
    if extra is not None:
        variance = variance + np.nan_to_num(np.asarray(extra, dtype=np.float64))
    weights = np.where(filled, 1.0 / variance, 0.0)
    usable = filled & (filled.sum(axis=-1, keepdims=True) >= 2)
    rates = np.where(usable, rates, np.nan)
    cells = usable.sum(axis=(-2, -1))
    limit = stats.chi2.isf(level, np.maximum(cells, 1))
    low = np.zeros(hits.shape[:-2])
    high = np.ones(hits.shape[:-2])
    for _ in range(iterations):
        middle = (low + high) / 2
        statistic = _band_statistic(rates, weights, np.broadcast_to(middle[..., None], rates.shape[:-1])).sum(axis=-1)
        hit = statistic > limit
        low = np.where(hit, middle, low)
        high = np.where(hit, high, middle)
    rejected_at_zero = _band_statistic(rates, weights, np.zeros(rates.shape[:-1])).sum(axis=-1) > limit
    return np.where(cells > 0, np.where(rejected_at_zero, low, 0.0), np.nan)

"""Confidence intervals: a stratified, paired test-set bootstrap and a t-interval over evaluators.

An audit has two sources of noise: which test samples were drawn, and which
evaluator seeds were trained. The bootstrap covers the first. Each resample
redraws the test set *within every (class, group) cell* (so a small cell keeps
its size and never vanishes, unlike fairlearn's plain row bootstrap) and uses
the *same* redrawn rows for every evaluator (paired), so the evaluators'
average is resampled as one statistic.

Resampling within a cell only changes per-cell sums of per-sample values
(a correct-prediction indicator, a bias-amplification score), so a resample is
a matrix of draw counts per cell times the sample values: one small matrix
product per cell instead of gathering ``n_boot x E x N`` predictions.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import stats

#: Upper bound on numbers held per chunk of resamples (draws of one cell, or per-cell sums).
CHUNK_BUDGET = 4_000_000


def stratified_resample_sums(values: np.ndarray, cells: np.ndarray, num_cells: int,
                             n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Per-cell sums of ``values`` ``(V, N)`` over stratified resamples, in chunks ``(b, V, C)``.

    Every cell keeps its sample count; resample ``r`` draws that many rows of
    the cell with replacement, the same rows for all ``V`` value rows. The
    chunks together hold ``n_boot`` resamples, drawn from
    ``numpy.random.default_rng(seed)`` in a fixed order. The products use
    ``einsum`` rather than BLAS: these matrices are small, and a threaded BLAS
    on a busy machine spends far longer synchronising than computing.
    """
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(cells, kind="stable")
    ordered = values[:, order]
    sizes = np.bincount(cells, minlength=num_cells)
    starts = np.concatenate(([0], np.cumsum(sizes)))
    filled = np.nonzero(sizes)[0]
    largest = int(sizes.max()) if sizes.size else 1
    chunk = int(max(1, min(n_boot, CHUNK_BUDGET // max(1, values.shape[0] * num_cells),
                           CHUNK_BUDGET // max(1, largest))))
    rng = np.random.default_rng(seed)
    for first in range(0, n_boot, chunk):
        size = min(chunk, n_boot - first)
        sums = np.zeros((size, values.shape[0], num_cells))
        for cell in filled:
            n = int(sizes[cell])
            draws = rng.integers(0, n, size=(size, n))
            draws += np.arange(size)[:, None] * n
            counts = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n)
            sums[:, :, cell] = np.einsum("bn,vn->bv", counts.astype(np.float64),
                                         ordered[:, starts[cell]:starts[cell + 1]])
        yield sums


def percentile_interval(samples, confidence: float) -> list[float]:
    """Equal-tailed percentile interval ``[q_lo, q_hi]`` of bootstrap ``samples``; NaN if any sample is NaN."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size == 0 or np.isnan(samples).any():
        return [float("nan"), float("nan")]
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return [float(low), float(high)]


def basic_interval(samples, estimate: float, confidence: float,
                   bounds: tuple[float, float] = (-np.inf, np.inf)) -> list[float]:
    """Basic (reverse-percentile) bootstrap interval ``[2 est - q_hi, 2 est - q_lo]``, clipped to ``bounds``.

    It reads the bootstrap as "how far resampled estimates fall from the
    estimate" and moves the estimate back by that much, which corrects the
    first-order bias of max/min statistics: the largest of several noisy cell
    accuracies overstates the largest true one, and resampling overstates it
    again, so the plain percentile interval lies above the estimate and far
    above the true gap.
    """
    low, high = percentile_interval(samples, confidence)
    if np.isnan(low) or np.isnan(estimate):
        return [float("nan"), float("nan")]
    return [float(np.clip(2 * estimate - high, *bounds)), float(np.clip(2 * estimate - low, *bounds))]


def t_interval(values, confidence: float,
               bounds: tuple[float, float] = (-np.inf, np.inf)) -> list[float] | None:
    """Student-t interval for the mean over evaluators (``ddof=1``), clipped to ``bounds``; ``None`` below 2 values.

    It treats the evaluators as a sample of training seeds and ignores test-set
    noise, which the bootstrap covers.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return None
    mean = float(values.mean())
    if np.isnan(mean):
        return [float("nan"), float("nan")]
    scale = float(values.std(ddof=1)) / np.sqrt(values.size)
    if scale == 0.0:
        return [mean, mean]
    low, high = stats.t.interval(confidence, values.size - 1, loc=mean, scale=scale)
    return [float(np.clip(low, *bounds)), float(np.clip(high, *bounds))]

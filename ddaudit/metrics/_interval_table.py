"""Gating intervals of every metric with a rule, as tables and as report fields.

Apart from the rules (:mod:`._intervals`) because it reads the metric table,
whose catalogue imports the rules: imports go one way.
"""

from __future__ import annotations

import numpy as np

from . import _catalogue  # noqa: F401 - registers every metric in the table
from ._intervals import METHOD, METHOD_ONE_EVALUATOR, seed_margin
from ._registry import METRICS, CountTables


def interval_metrics() -> tuple[str, ...]:
    """The metrics with a gating interval, in report order: those registered with an ``interval`` rule."""
    return tuple(name for name, metric in METRICS.items() if metric.interval is not None)


def _tables(correct, total, empty_as_zero, predicted, bias_amplification=None, bias_amplification_cells=None,
            disagreement=None):
    return CountTables(np.asarray(correct, dtype=np.float64), np.asarray(total), predicted=predicted,
                       empty_as_zero=empty_as_zero, bias_amplification=bias_amplification,
                       bias_amplification_cells=bias_amplification_cells, disagreement=disagreement)


def interval_table(correct, total, confidence: float = 0.95, *, empty_as_zero: bool = False, predicted=None,
                   bias_amplification=None, bias_amplification_cells=None, disagreement=None,
                   names=None) -> dict[str, dict]:
    """Estimate and gating interval of each metric with an interval rule.

    Parameters
    ----------
    correct : array, shape (..., E, K, G)
        Correct predictions per evaluator and (class, group) cell; leading axes
        (e.g. simulated test sets) are kept.
    total : array, broadcastable to ``correct``
        Test samples per cell.
    confidence : float
        Coverage of each two-sided interval; each end errs with about half the rest.
    predicted : array, shape (..., E, K, G), optional
        ``#{yhat = k, A = a}`` per evaluator (``predicted_table`` of :mod:`._counts`); adds
        equalized odds, demographic parity and the sufficiency gap.
    bias_amplification, bias_amplification_cells : optional
        Per-evaluator values ``(..., E)`` and ``(per-cell score sums (..., E, K, G), cell weights (K, G))``.
    disagreement : array, shape (..., K, G), optional
        Per cell, the sum over test images of the variance over evaluators of
        being correct (``ddof=1``; :func:`disagreement`): without it the
        evaluator spread also counts the test-set noise the evaluators do not
        share, which the bounds already hold (conservative).

    Returns
    -------
    ``{metric: {"estimate", "low", "high", "test_low", "test_high", "margin"}}``,
    arrays of shape ``(...)``: the evaluators' mean (of the count-based value),
    the interval, its test-set part alone (no evaluator spread) and the
    t-margin of the per-evaluator values (for reading which source dominates).
    NaN where the metric is undefined.
    """
    alpha = 1.0 - float(confidence)
    tables = _tables(correct, total, empty_as_zero, predicted, bias_amplification, bias_amplification_cells,
                     disagreement)
    table = {}
    for name in names or interval_metrics():
        metric = METRICS[name]
        rows = metric.interval(tables, alpha / 2, True)
        if rows is None:
            continue
        values, low, high = rows
        _, test_low, test_high = metric.interval(tables, alpha / 2, False)
        bounds = metric.bounds
        table[name] = {
            "estimate": values.mean(axis=-1),
            "low": np.clip(low, *bounds),
            "high": np.clip(high, *bounds),
            "test_low": np.clip(test_low, *bounds),
            "test_high": np.clip(test_high, *bounds),
            "margin": seed_margin(values, alpha / 2),
        }
    return table


def metric_intervals(correct, total, confidence: float = 0.95, *, empty_as_zero: bool = False,
                     predicted=None, bias_amplification=None, bias_amplification_cells=None,
                     disagreement=None) -> dict[str, dict]:
    """Report fields of one audit: ``{metric: {"interval", "interval_method", "interval_test", "interval_margin"}}``.

    *correct* is ``(E, K, G)``. ``interval`` is what gates decide on;
    ``interval_test`` its test-set part and ``interval_margin`` the evaluator
    t-margin, so a reader can tell which source dominates. Disparities also get
    ``interval_strict``, the same rule at twice the confidence in each tail
    (``1 - alpha/2``): two of them, the distilled set's and the reference's,
    combine into the amplification intervals by the union bound.
    """
    correct = np.asarray(correct)
    method = METHOD if correct.shape[0] > 1 else METHOD_ONE_EVALUATOR
    kwargs = dict(empty_as_zero=empty_as_zero, predicted=predicted, bias_amplification=bias_amplification,
                  bias_amplification_cells=bias_amplification_cells, disagreement=disagreement)
    main = interval_table(correct, total, confidence, **kwargs)
    strict = interval_table(correct, total, 1 - (1 - confidence) / 2,
                            names=[name for name in main if METRICS[name].disparity], **kwargs)
    fields = {}
    for name, row in main.items():
        fields[name] = {
            "interval": [float(row["low"]), float(row["high"])],
            "interval_method": method,
            "interval_test": [float(row["test_low"]), float(row["test_high"])],
            "interval_margin": float(row["margin"]),
        }
        if name in strict:
            fields[name]["interval_strict"] = [float(strict[name]["low"]), float(strict[name]["high"])]
    return fields

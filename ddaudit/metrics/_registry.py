"""The metric table: every audit metric, its properties and its function, in one place.

A metric is one :class:`Metric` entry made by :func:`register_metric`. Everything
else reads this table: :func:`~ddaudit.metrics.compute_metrics` (which metrics
exist, their bounds, which get a bootstrap interval), the amplification factor
(which are disparities), the report rows (label, direction) and the gates and
CLI flags (the threshold each metric offers). Adding a metric is one decorated
function in :mod:`._catalogue`; no other module changes.

Only numpy is needed here, so ``ddaudit gate`` can read the table without
loading torch or fairlearn.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

from ._counts import cell_accuracy

#: "lower is better" (disparities) and "higher is better" (accuracies).
LOWER, HIGHER = "lower", "higher"


@dataclass
class CountTables:
    """What every metric is computed from: count tables of one audit.

    Leading axes ``...`` are evaluators ``(E,)`` for the point estimates and
    ``(B, E)`` inside the bootstrap (``B`` resamples).

    ``correct[..., K, G]``
        ``#{yhat = y, Y = y, A = a}`` per (class, group) cell.
    ``total[K, G]``
        ``#{Y = y, A = a}`` (the same for every evaluator and resample).
    ``predicted[..., K, G]`` (``None`` inside the bootstrap)
        ``#{yhat = k, A = a}``: how often group ``a`` is predicted as class ``k``
        (the denominator of a precision).
    ``eod_by_class``, ``dpd_by_class`` ``(E, K)`` (``None`` inside the bootstrap)
        fairlearn's one-vs-rest equalized-odds and demographic-parity
        differences per class.
    ``bias_amplification`` ``(...,)`` or ``None`` when no training data define it.
    ``bias_amplification_cells`` (``None`` inside the bootstrap)
        ``(sums (..., K, G), weights (K, G))``: per cell, the sum of
        ``y_at``-signs of the predicted classes, and the weight that turns it
        into bias amplification (its gating interval reads them).
    ``disagreement[..., K, G]`` (``None`` without per-image predictions)
        Per cell, the sum over its test images of the variance over evaluators
        (``ddof=1``) of being correct: the test-set noise the evaluators do not
        share, which the gating intervals take out of their evaluator spread.
    ``empty_as_zero``
        FairDD's convention that an empty cell has accuracy 0 (see :func:`cell_accuracy`).
    """

    correct: np.ndarray
    total: np.ndarray
    predicted: np.ndarray | None = None
    eod_by_class: np.ndarray | None = None
    dpd_by_class: np.ndarray | None = None
    bias_amplification: np.ndarray | None = None
    empty_as_zero: bool = False
    bias_amplification_cells: tuple | None = None
    disagreement: np.ndarray | None = None

    @cached_property
    def cell_accuracy(self) -> np.ndarray:
        """Accuracy per (class, group) cell ``(..., K, G)``; NaN for empty cells unless ``empty_as_zero``."""
        return cell_accuracy(self.correct, self.total, empty_as_zero=self.empty_as_zero)


#: A metric's function: the count tables in, one value per leading index out
#: (``(E,)`` or ``(B, E)``), or ``None`` when the tables cannot define it at all.
MetricFunction = Callable[[CountTables], "np.ndarray | None"]
#: A metric's gating interval: ``(tables, one-sided level of each end, include the evaluator spread)``
#: in, ``(per-evaluator values, low, high)`` out, or ``None`` when the tables cannot define it.
IntervalFunction = Callable[[CountTables, float, bool], "tuple | None"]


@dataclass(frozen=True)
class Metric:
    """One row of the metric table.

    name
        The key in ``report["metrics"]`` (never renamed: saved reports use it).
    label
        How tables and Markdown name it.
    direction
        :data:`LOWER` (a disparity: lower is fairer) or :data:`HIGHER`.
    bounds
        The range the value can take; intervals are clipped to it.
    needs_cells
        It is built from per-(class, group) accuracies, so an undersized test
        cell makes it untrustworthy (a gate on it is then inconclusive).
    function
        :data:`MetricFunction`.
    description
        One sentence for help texts: what the number measures.
    bootstrap
        Its function works on bootstrap resamples of ``correct`` (it needs no
        ``predicted`` or fairlearn table), so its ``ci`` is the stratified
        test-set bootstrap; otherwise the t-interval over evaluators.
    disparity
        Compared against the real reference in the amplification factor.
    gate
        The threshold it offers (``max_deo_max``: a ``--max-deo-max`` flag and a
        configuration key), or ``None`` for no gate.
    interval
        :data:`IntervalFunction`, the rule of its gating interval
        (:mod:`._intervals`), or ``None``: a gate on it then refuses
        ``--gate-on ci`` and decides only with ``--gate-on mean``.
    """

    name: str
    label: str
    direction: str
    bounds: tuple[float, float]
    needs_cells: bool
    function: MetricFunction
    description: str
    bootstrap: bool = True
    disparity: bool = False
    gate: str | None = None
    interval: IntervalFunction | None = None

    @property
    def lower_is_better(self) -> bool:
        return self.direction == LOWER


#: Every registered metric by name, in report order (the order of registration).
METRICS: dict[str, Metric] = {}


def register_metric(name: str, *, label: str, direction: str, description: str, needs_cells: bool,
                    bounds: tuple[float, float] = (0.0, 1.0), bootstrap: bool = True,
                    disparity: bool | None = None, gate: str | bool | None = True,
                    interval: IntervalFunction | None = None):
    """Decorator that adds ``function`` to :data:`METRICS` under *name*.

    ``disparity`` defaults to "lower is better". ``gate=True`` names the
    threshold after the metric (``max_<name>`` for a disparity, ``min_<name>``
    otherwise); a string names it explicitly; ``None`` offers no gate.
    ``interval`` is the rule of its gating interval; a gated metric without one
    can be gated on its point value only (``--gate-on mean``).
    """
    if direction not in (LOWER, HIGHER):
        raise ValueError(f"direction must be {LOWER!r} or {HIGHER!r}, got {direction!r}")

    def add(function: MetricFunction) -> MetricFunction:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice")
        threshold = gate
        if threshold is True:
            threshold = f"{'max' if direction == LOWER else 'min'}_{name}"
        METRICS[name] = Metric(
            name=name, label=label, direction=direction, bounds=tuple(bounds), needs_cells=needs_cells,
            function=function, description=description, bootstrap=bootstrap,
            disparity=direction == LOWER if disparity is None else disparity, gate=threshold or None,
            interval=interval,
        )
        return function

    return add


def metric_names() -> tuple[str, ...]:
    """Every metric name, in report order."""
    return tuple(METRICS)


def disparity_names() -> tuple[str, ...]:
    """The metrics the amplification factor compares with a reference."""
    return tuple(name for name, metric in METRICS.items() if metric.disparity)


def interval_names() -> tuple[str, ...]:
    """The metrics with a gating interval (registered with an ``interval`` rule), in report order."""
    return tuple(name for name, metric in METRICS.items() if metric.interval is not None)


def bootstrapped_names() -> tuple[str, ...]:
    """The metrics whose interval comes from the test-set bootstrap."""
    return tuple(name for name, metric in METRICS.items() if metric.bootstrap)

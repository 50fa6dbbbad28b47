"""Fairness metrics of evaluators on a real, group-labelled test set.

Pure functions over one (class x group) count table, fairlearn views for the
one-vs-rest rates, directional bias amplification against the real training
bias, a bootstrap, gating intervals (bounds that read every cell, see
:mod:`._intervals`), and one builder, :func:`compute_metrics`, that composes
them into a :class:`MetricsResult`.

:data:`METRICS` is the metric table (name, label, direction, bounds, cell
dependence, function; see :func:`register_metric`): the report, the gates, the
amplification factor and the CLI read it. It needs only numpy; the names that
need fairlearn or scipy load on first use, so ``ddaudit gate`` stays fast.
"""

from __future__ import annotations


from ddaudit._lazy import lazy_getattr

from . import _catalogue  # noqa: F401 - registers every metric in the table
from ._amplification import DISPARITY_METRICS, RATIO_MIN_REFERENCE, amplification
from ._counts import cell_accuracy, cell_counts, small_cells
from ._disparity import (
    accuracy,
    accuracy_gap,
    class_accuracy_gap,
    class_gaps,
    class_precision_gaps,
    deo,
    group_accuracy,
    sufficiency_gap_max,
    worst_group_accuracy,
)
from ._registry import (
    HIGHER,
    LOWER,
    METRICS,
    CountTables,
    Metric,
    bootstrapped_names,
    disparity_names,
    interval_names,
    metric_names,
    register_metric,
)

METRIC_NAMES = metric_names()
#: Metrics with a gating interval: those registered with an ``interval`` rule.
INTERVAL_METRICS = interval_names()

_LAZY = {
    "._attributes": ("VIEW_METRICS", "attribute_metrics"),
    "._directional": ("DirectionalBiasAmplification", "directional_bias_amplification"),
    "._fairlearn_views": ("class_metric_frame", "one_vs_rest_demographic_parity", "one_vs_rest_equalized_odds"),
    "._interval_table": ("interval_table", "metric_intervals"),
    "._result": ("MetricsResult", "bootstrap_metric_means", "compute_metrics"),
    "._uncertainty": ("basic_interval", "percentile_interval", "t_interval"),
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "DISPARITY_METRICS",
    "INTERVAL_METRICS",
    "HIGHER",
    "LOWER",
    "METRICS",
    "METRIC_NAMES",
    "RATIO_MIN_REFERENCE",
    "VIEW_METRICS",
    "CountTables",
    "DirectionalBiasAmplification",
    "Metric",
    "MetricsResult",
    "accuracy",
    "accuracy_gap",
    "amplification",
    "attribute_metrics",
    "basic_interval",
    "bootstrap_metric_means",
    "bootstrapped_names",
    "cell_accuracy",
    "cell_counts",
    "class_accuracy_gap",
    "class_gaps",
    "class_metric_frame",
    "class_precision_gaps",
    "compute_metrics",
    "deo",
    "directional_bias_amplification",
    "disparity_names",
    "group_accuracy",
    "interval_names",
    "interval_table",
    "metric_intervals",
    "metric_names",
    "one_vs_rest_demographic_parity",
    "one_vs_rest_equalized_odds",
    "percentile_interval",
    "register_metric",
    "small_cells",
    "sufficiency_gap_max",
    "t_interval",
    "worst_group_accuracy",
]

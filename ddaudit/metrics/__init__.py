"""Fairness metrics of evaluators on a real, group-labelled test set.

Pure functions over one (class x group) count table, fairlearn views for the
one-vs-rest rates, directional bias amplification against the real training
bias, bootstrap intervals, exact gating intervals, and one builder, :func:`compute_metrics`, that
composes them into a :class:`MetricsResult`.
"""

from ._amplification import DISPARITY_METRICS, RATIO_MIN_REFERENCE, amplification
from ._counts import cell_accuracy, cell_counts, small_cells
from ._directional import DirectionalBiasAmplification, directional_bias_amplification
from ._disparity import accuracy, accuracy_gap, class_gaps, deo, group_accuracy, worst_group_accuracy
from ._intervals import INTERVAL_METRICS, clopper_pearson, interval_table, metric_intervals
from ._fairlearn_views import class_metric_frame, one_vs_rest_demographic_parity, one_vs_rest_equalized_odds
from ._result import METRIC_NAMES, MetricsResult, bootstrap_metric_means, compute_metrics
from ._uncertainty import basic_interval, percentile_interval, t_interval

__all__ = [
    "DISPARITY_METRICS",
    "INTERVAL_METRICS",
    "METRIC_NAMES",
    "RATIO_MIN_REFERENCE",
    "DirectionalBiasAmplification",
    "MetricsResult",
    "accuracy",
    "accuracy_gap",
    "amplification",
    "basic_interval",
    "bootstrap_metric_means",
    "cell_accuracy",
    "cell_counts",
    "class_gaps",
    "class_metric_frame",
    "clopper_pearson",
    "compute_metrics",
    "deo",
    "directional_bias_amplification",
    "group_accuracy",
    "interval_table",
    "metric_intervals",
    "one_vs_rest_demographic_parity",
    "one_vs_rest_equalized_odds",
    "percentile_interval",
    "small_cells",
    "t_interval",
    "worst_group_accuracy",
]

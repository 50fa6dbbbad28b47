"""Every metric an audit reports, registered in report order.

Each entry is a function of the audit's :class:`~._registry.CountTables`
(see :func:`~._registry.register_metric` for the properties). To add a metric,
add one decorated function here (and its test): the report, the Markdown and
rich tables, the amplification factor, the gates and the CLI flags pick it up.
"""

from __future__ import annotations

import numpy as np

from ._disparity import accuracy as _accuracy
from ._disparity import accuracy_gap as _accuracy_gap
from ._disparity import class_accuracy_gap as _class_accuracy_gap
from ._disparity import deo, sufficiency_gap_max as _sufficiency_gap_max
from ._disparity import worst_group_accuracy as _worst_group_accuracy
from . import _intervals as rules
from ._registry import HIGHER, LOWER, CountTables, register_metric


def _nanmax_rows(values: np.ndarray) -> np.ndarray:
    """Row-wise maximum over the defined (non-NaN) entries; NaN for a row with none."""
    defined = ~np.isnan(values)
    return np.where(defined.any(axis=1), np.where(defined, values, -np.inf).max(axis=1), np.nan)


@register_metric("accuracy", label="Accuracy", direction=HIGHER, needs_cells=False,
                 interval=rules.accuracy_interval,
                 description="top-1 accuracy on the real test set")
def accuracy(t: CountTables):
    return _accuracy(t.correct, t.total)


@register_metric("worst_group_accuracy", label="Worst-group accuracy", direction=HIGHER, needs_cells=True,
                 interval=rules.worst_group_accuracy_interval,
                 description="lowest accuracy over the (class, group) test cells")
def worst_group_accuracy(t: CountTables):
    return _worst_group_accuracy(t.cell_accuracy)


@register_metric("deo_max", label="DEO_M", direction=LOWER, needs_cells=True, interval=rules.deo_max_interval,
                 description="largest per-class accuracy gap between groups")
def deo_max(t: CountTables):
    return deo(t.cell_accuracy)[0]


@register_metric("deo_avg", label="DEO_A", direction=LOWER, needs_cells=True, interval=rules.deo_avg_interval,
                 description="mean per-class accuracy gap between groups")
def deo_avg(t: CountTables):
    return deo(t.cell_accuracy)[1]


@register_metric("accuracy_gap", label="Group accuracy gap", direction=LOWER, needs_cells=True,
                 interval=rules.accuracy_gap_interval,
                 description="best minus worst group accuracy, classes pooled")
def accuracy_gap(t: CountTables):
    return _accuracy_gap(t.correct, t.total)


@register_metric("equalized_odds_difference", label="Equalized-odds diff. (OvR, max)", direction=LOWER,
                 needs_cells=True, bootstrap=False, gate="max_equalized_odds", interval=rules.equalized_odds_interval,
                 description="fairlearn's equalized-odds difference, one class against the rest, worst class")
def equalized_odds_difference(t: CountTables):
    return _nanmax_rows(t.eod_by_class)


@register_metric("demographic_parity_difference", label="Demographic-parity diff. (OvR, max)", direction=LOWER,
                 needs_cells=True, bootstrap=False, interval=rules.demographic_parity_interval,
                 description="fairlearn's demographic-parity difference, one class against the rest, worst class")
def demographic_parity_difference(t: CountTables):
    return _nanmax_rows(t.dpd_by_class)


@register_metric("bias_amplification", label="Bias amplification A->T", direction=LOWER, needs_cells=True,
                 bounds=(-1.0, 1.0), interval=rules.bias_amplification_interval,
                 description="Wang & Russakovsky's directional bias amplification A->T against the real training bias")
def bias_amplification(t: CountTables):
    return t.bias_amplification


@register_metric("class_accuracy_gap", label="Class accuracy gap", direction=LOWER, needs_cells=False,
                 interval=rules.class_accuracy_gap_interval,
                 description="best minus worst per-class accuracy (Rong et al.'s class-wise unfairness)")
def class_accuracy_gap(t: CountTables):
    return _class_accuracy_gap(t.correct, t.total)


@register_metric("sufficiency_gap_max", label="Sufficiency gap (max)", direction=LOWER, needs_cells=True,
                 bootstrap=False, gate="max_sufficiency_gap", interval=rules.sufficiency_gap_interval,
                 description="COBRA's sufficiency gap: per class, max minus min precision over groups, max over classes")
def sufficiency_gap_max(t: CountTables):
    return _sufficiency_gap_max(t.correct, t.predicted)

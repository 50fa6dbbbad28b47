"""Fairness over several protected attributes: each attribute's marginal view and their intersection.

A model fair to each attribute alone can still fail at an intersection, and a
model fair at the intersections reports nothing about which attribute drives a
gap; the audit reports both. Every view is the single-attribute audit
(:func:`~._result.compute_metrics`) run with another group column: attribute k's
values for its marginal view, the intersection index
(:func:`ddaudit.data.intersection_index`) for the intersectional one. So every
figure has the interval, the small/empty-cell accounting and the definitions
(FairDD's DEO_M/DEO_A over (class, group) cells, fairlearn's one-vs-rest
disparities) that the single-attribute metrics have.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ddaudit.data import intersection_index, intersection_names
from ddaudit.errors import InputError

from ._inputs import to_numpy
from ._result import MetricsResult, compute_metrics

#: The figures each view keeps (the rest of the metric table stays in the headline metrics).
VIEW_METRICS = ("accuracy", "worst_group_accuracy", "deo_max", "deo_avg", "accuracy_gap",
                "equalized_odds_difference", "demographic_parity_difference", "bias_amplification")

BAD_TABLE = "attribute values must be an integer table (N, {k}) with one row per test sample, got shape {shape}"
VALUE_RANGE = "attribute {name!r} has value {value}, but only {count} value names are given"


def _table(values, k: int, n: int | None) -> np.ndarray:
    table = to_numpy(values)
    if table.ndim != 2 or table.shape[1] != k or (n is not None and table.shape[0] != n):
        raise InputError(BAD_TABLE.format(k=k, shape=tuple(table.shape)))
    return table.astype(np.int64)


def _view(result: MetricsResult, attributes: list[str]) -> dict:
    """The JSON view of one grouping: its metrics (with intervals), groups, cells and what is small or empty."""
    small = [list(cell) for cell in result.small_cells if cell[2] > 0]
    empty = [list(cell) for cell in result.small_cells if cell[2] == 0]
    return {
        "attributes": attributes,
        "metrics": {name: result.metrics[name] for name in VIEW_METRICS if name in result.metrics},
        "per_group": result.per_group,
        "cells": result.cells,
        "small_cells": small,
        "empty_cells": empty,
        "warnings": result.warnings,
    }


def attribute_metrics(y_true, attrs, predictions, *, num_classes: int, attributes: Sequence[str],
                      values: Sequence[Sequence[str]], train_y=None, train_attrs=None, n_boot: int = 1000,
                      confidence: float = 0.95, seed: int = 0, min_group_size: int = 20, class_names=None,
                      empty_as_zero: bool = False, interval: str = "basic",
                      intersection: MetricsResult | None = None) -> dict:
    """``{"attributes", "per_attribute": {name: view}, "intersection": view}`` for an ``(N, K)`` table *attrs*.

    *values* names each attribute's values (its length is the attribute's
    number of values); the intersection has one group per combination, empty
    ones included and listed under ``empty_cells``. With the real training
    labels and attributes, each view also has its directional bias amplification.
    *intersection*: the intersection's metrics when already computed (an audit whose
    groups are the intersections has them), so they are not computed twice.
    """
    names = [str(a) for a in attributes]
    sizes = [len(v) for v in values]
    y = to_numpy(y_true)
    table = _table(attrs, len(names), y.shape[0] if y.ndim == 1 else None)
    train = None if train_attrs is None else _table(train_attrs, len(names), None)
    for k, name in enumerate(names):
        for part in (table, train):
            if part is not None and part.size and (part[:, k].min() < 0 or part[:, k].max() >= sizes[k]):
                raise InputError(VALUE_RANGE.format(name=name, value=int(part[:, k].max()), count=sizes[k]))
    common = dict(predictions=predictions, num_classes=num_classes, n_boot=n_boot, confidence=confidence, seed=seed,
                  min_group_size=min_group_size, class_names=class_names, empty_as_zero=empty_as_zero,
                  interval=interval)
    per_attribute = {}
    for k, name in enumerate(names):
        result = compute_metrics(y, table[:, k], num_groups=sizes[k], group_names=list(values[k]),
                                 train_y=train_y if train is not None else None,
                                 train_a=None if train is None else train[:, k], **common)
        per_attribute[name] = _view(result, [name])
    joint = intersection_index(table, sizes)
    result = intersection if intersection is not None else compute_metrics(y, joint, num_groups=int(np.prod(sizes)), group_names=intersection_names(names, values),
                             train_y=train_y if train is not None else None,
                             train_a=None if train is None else intersection_index(train, sizes), **common)
    return {"attributes": names, "values": [list(v) for v in values], "per_attribute": per_attribute,
            "intersection": _view(result, names)}

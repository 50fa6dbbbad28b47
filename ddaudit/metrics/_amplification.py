"""Bias-amplification factor: a distilled set's disparity against a reference's.

The reference is a model trained on real data: a random real subset with the
same images per class (separates the small-sample effect from distillation)
or the full real training set. Both the ratio and the difference are given;
the difference is the one to gate on, because the ratio explodes when the
reference disparity is near zero.
"""

from __future__ import annotations

import math

from ddaudit.errors import InputError

from . import _catalogue  # noqa: F401 - registers every metric in the table
from . import _messages as msg
from ._registry import disparity_names

#: Metrics compared by default: the disparities of the metric table (lower is fairer).
DISPARITY_METRICS = disparity_names()
#: A reference value smaller than this in magnitude gives no ratio.
RATIO_MIN_REFERENCE = 1e-3


def _value(metrics: dict, name: str, side: str) -> float:
    if name not in metrics:
        raise InputError(msg.MISSING_METRIC.format(name=name, side=side))
    entry = metrics[name]
    value = entry["mean"] if isinstance(entry, dict) else entry
    return float("nan") if value is None else float(value)


def amplification(syn_metrics: dict, ref_metrics: dict, names=DISPARITY_METRICS, *,
                  reference: str | None = None) -> dict[str, dict]:
    """``{name: {"ratio", "difference"}}`` of distilled versus reference metrics.

    ``syn_metrics`` and ``ref_metrics`` map a metric name to a number or to a
    summary with a ``"mean"`` (as in :attr:`MetricsResult.metrics`).
    ``difference = syn - ref``; ``ratio = syn / ref``, or ``None`` when
    ``|ref| < RATIO_MIN_REFERENCE`` (unstable) or either side is NaN (then the
    difference is ``None`` too). ``reference`` (e.g. ``"random_subset"``) is
    copied into every entry when given.
    """
    out = {}
    for name in names:
        syn, ref = _value(syn_metrics, name, "distilled"), _value(ref_metrics, name, "reference")
        defined = not (math.isnan(syn) or math.isnan(ref))
        entry = {
            "ratio": syn / ref if defined and abs(ref) >= RATIO_MIN_REFERENCE else None,
            "difference": syn - ref if defined else None,
        }
        if reference is not None:
            entry["reference"] = reference
        out[name] = entry
    return out

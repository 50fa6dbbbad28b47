"""Bias-amplification factor: a distilled set's disparity against a reference's.

The reference is a model trained on real data: a random real subset with the
same images per class (separates the small-sample effect from distillation)
or the full real training set. Both the ratio and the difference are given;
the difference is the one to gate on, because the ratio explodes when the
reference disparity is near zero.

Both carry a gating interval when both sides carry ``interval_strict`` (each
side's interval at confidence ``1 - alpha/2``): the reference was measured on
the same real test set, so its test-set noise counts too. With the distilled
``[Ls, Us]`` and the reference ``[Lr, Ur]``, the difference lies in
``[Ls - Ur, Us - Lr]`` and a non-negative ratio in ``[Ls / Ur, Us / Lr]``
unless one of the four ends is wrong: each end of each side errs with about
``alpha/4``, so each end of the result with about ``alpha/2`` (union bound; the
two sides need not be independent). A reference lower end below
:data:`RATIO_MIN_REFERENCE` leaves the ratio unbounded above (``None``).
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
#: ``interval_method`` of the amplification intervals.
AMPLIFICATION_INTERVAL_METHOD = "union of the distilled and reference intervals at confidence 1 - alpha/2"


def _strict(metrics: dict, name: str) -> tuple[float, float] | None:
    entry = metrics.get(name)
    bounds = entry.get("interval_strict") if isinstance(entry, dict) else None
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return None
    try:
        low, high = float(bounds[0]), float(bounds[1])
    except (TypeError, ValueError):
        return None
    return None if math.isnan(low) or math.isnan(high) else (low, high)


def amplification_intervals(syn: tuple[float, float], ref: tuple[float, float]) -> dict:
    """``difference_interval`` and ``ratio_interval`` from the two sides' strict intervals (see the module)."""
    (syn_low, syn_high), (ref_low, ref_high) = syn, ref
    out = {"difference_interval": [syn_low - ref_high, syn_high - ref_low]}
    if syn_low >= 0 and ref_low >= 0:
        low = syn_low / ref_high if ref_high >= RATIO_MIN_REFERENCE else 0.0
        high = syn_high / ref_low if ref_low >= RATIO_MIN_REFERENCE else None
        out["ratio_interval"] = [low, high]
    else:
        out["ratio_interval"] = None
    out["interval_method"] = AMPLIFICATION_INTERVAL_METHOD
    return out


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
    copied into every entry when given. When both sides carry
    ``interval_strict``, the entry adds ``difference_interval``,
    ``ratio_interval`` and ``interval_method`` (:func:`amplification_intervals`).
    """
    out = {}
    for name in names:
        syn, ref = _value(syn_metrics, name, "distilled"), _value(ref_metrics, name, "reference")
        defined = not (math.isnan(syn) or math.isnan(ref))
        entry = {
            "ratio": syn / ref if defined and abs(ref) >= RATIO_MIN_REFERENCE else None,
            "difference": syn - ref if defined else None,
        }
        syn_bounds, ref_bounds = _strict(syn_metrics, name), _strict(ref_metrics, name)
        if defined and syn_bounds is not None and ref_bounds is not None:
            entry.update(amplification_intervals(syn_bounds, ref_bounds))
        if reference is not None:
            entry["reference"] = reference
        out[name] = entry
    return out

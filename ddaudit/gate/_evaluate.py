"""Deciding each gate on a saved report: pass, fail, or inconclusive with a reason.

With ``gate_on="ci"`` (the default) a metric that carries a gating
``interval`` follows one rule (:mod:`._rule`): pass when the whole interval
meets the threshold, fail when the whole interval violates it, inconclusive
only when the threshold lies inside it, with a hint of what data would settle
it. Small (class, group) cells are named as a warning: they already widen the
interval. ``gate_on="mean"`` decides on the point estimate alone.

Point-valued entries (the amplification ratio and difference, the probe's
shares and weights) follow the same rule on ``entry["<value_key>_interval"]``
(method in ``entry["<value_key>_interval_method"]`` or ``entry["interval_method"]``);
without one, ``gate_on="ci"`` is inconclusive and says that ``--gate-on mean``
gates the point value. A metric registered without an interval rule cannot be
gated with ``gate_on="ci"`` at all: the gate refuses (a configuration error).

Reports written before gating intervals existed gate as they did when their
interval was a test-set bootstrap (``ci``); a metric whose saved ``ci`` covers
only the evaluator spread (``ci_method`` ``t``) is inconclusive and says why.
Under ``gate_on="mean"`` an undersized cell behind a disparity makes such a
gate inconclusive. A missing value or a NaN is inconclusive in every case; the
exit code says so (3) unless the user decides otherwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

from ddaudit.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_OK, NOT_GATED, ConfigError
from ddaudit.gate._rule import FAIL, INCONCLUSIVE, PASS, decide, meets, settle_hint
from ddaudit.gate._settings import GateSettings
from ddaudit.gate._thresholds import AT_MOST, THRESHOLDS, Threshold


MISSING_VALUE_REASON = "the report has no {metric}"
UNDEFINED_VALUE_REASON = "{metric} is undefined (NaN or empty) in the report"
MISSING_REFERENCE_REASON = "the report has no real reference for {metric}; run check with --reference"
UNDEFINED_RATIO_REASON = "{metric} is undefined (the reference DEO_M is 0); gate on --max-amplification-diff instead"
MISSING_INTERVAL_REASON = "the report has no confidence interval for {metric}; use --gate-on mean or more evaluators"
NO_GATING_INTERVAL_REASON = (
    "the report has no gating interval for {metric} (saved before it had one); gate its point value "
    "with --gate-on mean, or run check again"
)
EVALUATOR_ONLY_REASON = (
    "the report's interval for {metric} covers the evaluator spread only, not test-set noise (saved before "
    "gating intervals); gate its point value with --gate-on mean, or run check again"
)
NO_INTERVAL_RULE_MESSAGE = (
    "{flag}: {metric} has no gating interval, so it cannot be gated with --gate-on ci; use --gate-on mean"
)
STRADDLE_REASON = "interval [{low:.4g}, {high:.4g}] straddles the threshold {threshold:g}"
NO_CELLS_REASON = "the report has no (class, group) cell counts to check group sizes"
SMALL_CELLS_REASON = "{count} (class, group) cell(s) below min_group_size {size}: {cells}"
POINT_VALUE_NOTE = "no interval for {metric}; compared its point value"
INSIDE_REASON = "the {interval} contains the threshold {threshold:g}"
BELOW_REASON = "the whole {interval} lies at or below {threshold:g}"
ABOVE_REASON = "the whole {interval} lies at or above {threshold:g}"
INTERVAL_TEXT = "{confidence}interval [{low:.4g}, {high:.4g}] ({method})"
MEAN_NOTE = "decided on the point estimate (--gate-on mean); the {interval} is not used"
SMALL_CELLS_NOTE = "warning: {count} (class, group) cell(s) below min_group_size {size} widen the interval"
SMALL_CELLS_MEAN_NOTE = "warning: {count} (class, group) cell(s) below min_group_size {size}; the estimate is noisy"
MAX_LISTED_CELLS = 5


@dataclass(frozen=True)
class GateResult:
    """One threshold decided on one report. ``value`` is what was compared
    (``basis`` says which: ``mean``, ``ci_low``, ``ci_high`` or ``value``)."""

    name: str
    metric: str
    operator: str
    threshold: float
    value: float | None
    passed: bool
    inconclusive: bool
    reason: str
    basis: str
    estimate: float | None = None
    interval: tuple[float, float] | None = None
    interval_method: str | None = None
    settle: str = ""
    #: The protected attribute whose marginal groups were gated (several attributes); None: the report's groups.
    attribute: str | None = None

    @property
    def key(self) -> str:
        """The threshold's name, with the attribute it was decided on: ``max_deo_max[gender]``."""
        return self.name if self.attribute is None else f"{self.name}[{self.attribute}]"

    @property
    def outcome(self) -> str:
        return INCONCLUSIVE if self.inconclusive else (PASS if self.passed else FAIL)

    @property
    def flag(self) -> str:
        return THRESHOLDS[self.name].flag

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.attribute is None:
            del out["attribute"]  # one-attribute reports keep their gate records as they were
        out["interval"] = None if self.interval is None else [
            end if math.isfinite(end) else None for end in self.interval]
        return out

    def shown_value(self) -> str:
        """The estimate with its interval when there is one, else the compared value."""
        if self.interval is not None and self.estimate is not None:
            return f"{self.estimate:.4g} [{self.interval[0]:.4g}, {self.interval[1]:.4g}]"
        return "n/a" if self.value is None else f"{self.value:.4g}"

    def sentence(self) -> str:
        """One line a CI log or annotation can show on its own."""
        verdict = {PASS: "passed", FAIL: "FAILED", INCONCLUSIVE: "inconclusive"}[self.outcome]
        if self.interval is not None and self.basis.startswith("interval"):
            text = f"{self.flag} {verdict}: {self.metric} = {self.shown_value()}, required {self.operator} {self.threshold:g}"
        else:
            shown = "n/a" if self.value is None else f"{self.value:.4g}"
            text = f"{self.flag} {verdict}: {self.metric} ({self.basis}) = {shown}, required {self.operator} {self.threshold:g}"
        return f"{text}; {self.reason}" if self.reason else text


@dataclass(frozen=True)
class GateOutcome:
    """Every gate decided on one report, and what that means for the exit code."""

    results: tuple[GateResult, ...]
    settings: GateSettings

    @property
    def status(self) -> str:
        if not self.results:
            return NOT_GATED
        outcomes = {result.outcome for result in self.results}
        if FAIL in outcomes:
            return FAIL
        return INCONCLUSIVE if INCONCLUSIVE in outcomes else PASS

    def count(self, outcome: str) -> int:
        return sum(result.outcome == outcome for result in self.results)

    def to_dict(self) -> dict:
        """What a written report records of its gates: ``status``, ``gates`` and ``gate_settings``.

        ``{**report_json, **outcome.to_dict()}`` is a gated report's JSON; the
        report itself is never changed.
        """
        return {
            "status": self.status,
            "gates": [result.to_dict() for result in self.results],
            "gate_settings": self.settings.describe(),
        }

    @property
    def exit_code(self) -> int:
        """0 pass, 1 fail, 3 inconclusive (or 0/1 as ``inconclusive`` decides); 0 with ``exit_zero``."""
        if self.settings.exit_zero:
            return EXIT_OK
        status = self.status
        if status == FAIL:
            return EXIT_GATE_FAILED
        if status == INCONCLUSIVE:
            return {"error": EXIT_INCONCLUSIVE, "pass": EXIT_OK, "fail": EXIT_GATE_FAILED}[self.settings.inconclusive]
        return EXIT_OK


def evaluate_gates(report, settings: GateSettings) -> GateOutcome:
    """Decide every threshold in *settings* on *report*, which is left unchanged.

    *report* is an :class:`~ddaudit.report.AuditReport` or a ``ddaudit.report/1``
    dict (a saved report). The outcome goes beside the report: write both with
    ``AuditReport.to_dict(gates=outcome)``.
    """
    if not isinstance(report, dict):
        report = report.to_dict()
    small = _small_cells(report, settings.min_group_size)
    results = [
        _decide(THRESHOLDS[name], threshold, report, settings, small)
        for name, threshold in settings.thresholds.items()
    ]
    for attribute, view in _attribute_views(report):
        view_small = _small_cells(view, settings.min_group_size)
        for name, threshold in settings.thresholds.items():
            entry = THRESHOLDS[name].entry
            # Group disparities only: accuracy is the same on every grouping, and a metric the view lacks is not gated.
            if entry[0] == "metrics" and THRESHOLDS[name].needs_cells and entry[1] in view["metrics"]:
                result = _decide(THRESHOLDS[name], threshold, view, settings, view_small)
                results.append(replace(result, attribute=attribute,
                                       metric=f"attributes.{attribute}.{result.metric}"))
    return GateOutcome(results=tuple(results), settings=settings)


def _attribute_views(report: dict) -> list[tuple[str, dict]]:
    """Each protected attribute's marginal view, shaped like a report, when the report has several.

    The report's own metrics are the intersection's; a group-metric gate holds only when it
    also holds on every attribute's marginal groups, where cells are larger and the
    evidence can settle what the small intersections leave open.
    """
    section = report.get("attributes")
    views = section.get("per_attribute") if isinstance(section, dict) else None
    if not isinstance(views, dict):
        return []
    out = []
    for attribute, view in views.items():
        if not isinstance(view, dict) or not isinstance(view.get("metrics"), dict):
            continue
        groups = [row.get("group_name") for row in view.get("per_group") or [] if isinstance(row, dict)]
        real = {**(report.get("real") if isinstance(report.get("real"), dict) else {}), "group_names": groups}
        out.append((str(attribute), {**report, "metrics": view["metrics"], "cells": view.get("cells"), "real": real}))
    return out


def combined_exit_code(outcomes: list[GateOutcome]) -> int:
    """Several reports in one run: any failure fails; otherwise any inconclusive is 3."""
    codes = {outcome.exit_code for outcome in outcomes}
    for code in (EXIT_GATE_FAILED, EXIT_INCONCLUSIVE):
        if code in codes:
            return code
    return EXIT_OK


class _Decision(NamedTuple):
    value: float | None
    passed: bool
    inconclusive: bool
    reason: str
    basis: str


def _decide(threshold: Threshold, limit: float, report: dict, settings: GateSettings, small: str | None) -> GateResult:
    if settings.gate_on == "ci" and not threshold.interval_rule:
        raise ConfigError(NO_INTERVAL_RULE_MESSAGE.format(flag=threshold.flag, metric=threshold.metric))
    entry = _lookup(report, threshold.entry)
    if entry is None:
        template = MISSING_VALUE_REASON if threshold.has_interval else MISSING_REFERENCE_REASON
        decision = _Decision(None, False, True, template.format(metric=threshold.metric), "value")
    elif threshold.has_interval and _gating_interval(entry) is not None:
        return _decide_with_interval(threshold, limit, entry, report, settings)
    elif threshold.has_interval and settings.gate_on == "ci":
        if entry.get("ci_method") == "t":
            decision = _Decision(None, False, True, EVALUATOR_ONLY_REASON.format(metric=threshold.metric), "ci_high"
                                 if threshold.operator == AT_MOST else "ci_low")
        else:
            decision = _decide_on_interval(threshold, limit, entry)
    elif not threshold.has_interval and settings.gate_on == "ci":
        if _value_interval(threshold, entry) is not None and _number(entry.get(threshold.value_key)) is not None:
            return _decide_with_interval(threshold, limit, entry, report, settings)
        decision = _decide_on_point(threshold, limit, entry, settings.gate_on)
        if not decision.inconclusive:
            decision = _Decision(None, False, True, NO_GATING_INTERVAL_REASON.format(metric=threshold.metric),
                                 "value")
    else:
        decision = _decide_on_point(threshold, limit, entry, settings.gate_on)
    if not decision.inconclusive and threshold.needs_cells and small is not None:
        decision = decision._replace(passed=False, inconclusive=True, reason=small)
    return GateResult(threshold.name, threshold.metric, threshold.operator, limit, *decision)


def _value_interval(threshold: Threshold, entry: dict) -> tuple[float, float] | None:
    """A point-valued entry's gating interval ``entry[<value_key>_interval]``; a ``None`` end is unbounded."""
    bounds = entry.get(threshold.interval_key)
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return None
    low = -math.inf if bounds[0] is None else _number(bounds[0])
    high = math.inf if bounds[1] is None else _number(bounds[1])
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return None
    return tuple(sorted((low, high)))


def _decide_with_interval(threshold: Threshold, limit: float, entry: dict, report: dict,
                          settings: GateSettings) -> GateResult:
    """The evidence rule on a gating interval (or the point value with ``gate_on="mean"``).

    A metric's is ``entry["interval"]`` around ``entry["mean"]``; a point-valued
    entry's is ``entry["<value_key>_interval"]`` around ``entry[value_key]``.
    """
    if threshold.has_interval:
        low, high = _gating_interval(entry)
        estimate = _number(entry.get("mean"))
        method = entry.get("interval_method")
    else:
        low, high = _value_interval(threshold, entry)
        estimate = _number(entry.get(threshold.value_key))
        method = entry.get(f"{threshold.value_key}_interval_method", entry.get("interval_method"))
    method = method if isinstance(method, str) else "interval"
    confidence = _number((report.get("settings") or {}).get("confidence")) if isinstance(report.get("settings"), dict) else None
    described = INTERVAL_TEXT.format(confidence=f"{confidence:.0%} " if confidence else "", low=low, high=high,
                                     method=method)
    common = dict(estimate=estimate, interval=(low, high), interval_method=method)
    counts, small_count = _cell_counts(report, settings.min_group_size)
    if settings.gate_on == "mean":
        if estimate is None or not math.isfinite(estimate):
            reason = UNDEFINED_VALUE_REASON.format(metric=threshold.metric)
            return GateResult(threshold.name, threshold.metric, threshold.operator, limit, None, False, True,
                              reason, "mean", **common)
        notes = [MEAN_NOTE.format(interval=described)]
        if threshold.needs_cells and small_count:
            notes.append(SMALL_CELLS_MEAN_NOTE.format(count=small_count, size=settings.min_group_size))
        return GateResult(threshold.name, threshold.metric, threshold.operator, limit, estimate,
                          _holds(threshold, estimate, limit), False, "; ".join(notes), "mean", **common)
    verdict = decide(threshold.operator, limit, low, high)
    settle = ""
    if verdict.outcome == INCONCLUSIVE:
        reason = INSIDE_REASON.format(interval=described, threshold=limit)
        settle = settle_hint(threshold.operator, limit, estimate, (low, high),
                             test_interval=_pair(entry.get("interval_test")),
                             margin=_number(entry.get("interval_margin")) or 0.0,
                             cell_counts=counts if threshold.needs_cells else ())
    else:
        below = (verdict.outcome == PASS) == (threshold.operator == AT_MOST)
        reason = (BELOW_REASON if below else ABOVE_REASON).format(interval=described, threshold=limit)
    notes = [reason] + ([settle] if settle else [])
    if threshold.needs_cells and small_count:
        notes.append(SMALL_CELLS_NOTE.format(count=small_count, size=settings.min_group_size))
    return GateResult(threshold.name, threshold.metric, threshold.operator, limit, verdict.value,
                      verdict.outcome == PASS, verdict.outcome == INCONCLUSIVE, "; ".join(notes),
                      verdict.basis, settle=settle, **common)


def _gating_interval(entry: dict) -> tuple[float, float] | None:
    """The metric's gating ``interval`` when present and finite (new reports), else None."""
    bounds = _pair(entry.get("interval"))
    if bounds is None or not all(math.isfinite(end) for end in bounds):
        return None
    return tuple(sorted(bounds))


def _pair(value) -> tuple[float, float] | None:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    ends = [_number(end) for end in value]
    return None if any(end is None for end in ends) else (ends[0], ends[1])


def _cell_counts(report: dict, min_group_size: int) -> tuple[list[int], int]:
    """Test images per (class, group) cell, and how many non-empty cells lie below *min_group_size*."""
    cells = report.get("cells")
    counts = [int(cell["count"]) for cell in cells if isinstance(cell, dict) and _number(cell.get("count")) is not None] \
        if isinstance(cells, list) else []
    return counts, sum(1 for count in counts if count < min_group_size)


def _decide_on_point(threshold: Threshold, limit: float, entry: dict, gate_on: str) -> _Decision:
    basis = "mean" if threshold.has_interval else "value"
    value = _number(entry.get(threshold.value_key or "mean"))
    if value is None or not math.isfinite(value):
        template = UNDEFINED_RATIO_REASON if threshold.value_key == "ratio" else UNDEFINED_VALUE_REASON
        return _Decision(None, False, True, template.format(metric=threshold.metric), basis)
    note = POINT_VALUE_NOTE.format(metric=threshold.metric) if gate_on == "ci" and not threshold.has_interval else ""
    return _Decision(value, _holds(threshold, value, limit), False, note, basis)


def _decide_on_interval(threshold: Threshold, limit: float, entry: dict) -> _Decision:
    """A legacy ``ci`` entry under the one rule of :func:`._rule.decide`."""
    interval = entry.get("ci")
    bounds = [_number(end) for end in interval] if isinstance(interval, (list, tuple)) and len(interval) == 2 else None
    basis = "ci_high" if threshold.operator == AT_MOST else "ci_low"
    if bounds is None or any(end is None or not math.isfinite(end) for end in bounds):
        return _Decision(None, False, True, MISSING_INTERVAL_REASON.format(metric=threshold.metric), basis)
    low, high = sorted(bounds)
    verdict = decide(threshold.operator, limit, low, high)
    basis = verdict.basis.replace("interval_", "ci_")
    if verdict.outcome == INCONCLUSIVE:
        return _Decision(verdict.value, False, True, STRADDLE_REASON.format(low=low, high=high, threshold=limit), basis)
    return _Decision(verdict.value, verdict.outcome == PASS, False, "", basis)


def _holds(threshold: Threshold, value: float, limit: float) -> bool:
    return meets(threshold.operator, value, limit)


def _lookup(report: dict, path: tuple[str, ...]) -> dict | None:
    """The dict at *path* in *report*, or None when any step is missing."""
    node = report
    for key in path:
        if not isinstance(node, dict) or not isinstance(node.get(key), dict):
            return None
        node = node[key]
    return node


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _small_cells(report: dict, min_group_size: int) -> str | None:
    """The reason cell-based gates cannot be trusted, or None when every cell is big enough."""
    cells = report.get("cells")
    if not isinstance(cells, list) or not cells:
        return NO_CELLS_REASON
    real = report.get("real") if isinstance(report.get("real"), dict) else {}
    class_names = real.get("class_names") or []
    group_names = real.get("group_names") or []

    def name(names, index) -> str:
        return str(names[index]) if isinstance(index, int) and 0 <= index < len(names) else str(index)

    small = [
        f"class {name(class_names, cell.get('class'))} x group {name(group_names, cell.get('group'))} (n={cell.get('count')})"
        for cell in cells
        if not isinstance(cell, dict) or _number(cell.get("count")) is None or cell["count"] < min_group_size
    ]
    if not small:
        return None
    listed = ", ".join(small[:MAX_LISTED_CELLS])
    if len(small) > MAX_LISTED_CELLS:
        listed += f" and {len(small) - MAX_LISTED_CELLS} more"
    return SMALL_CELLS_REASON.format(count=len(small), size=min_group_size, cells=listed)

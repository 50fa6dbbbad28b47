"""Every gate flag through the default interval path: a case that passes, one that fails, one that is inconclusive.

The report is computed from predictions (distilled and reference evaluators on
the same real test set, training data for bias amplification); the
composition section stands for what the probe writes. Thresholds are placed
just beyond each end of the gating interval the report holds, so the verdict
must follow the interval and not the point value.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddaudit.errors import ConfigError
from ddaudit.gate import GateSettings, evaluate_gates
from ddaudit.gate import _evaluate
from ddaudit.gate._thresholds import AT_MOST, THRESHOLDS, Threshold
from ddaudit.metrics import amplification, compute_metrics
from ddaudit.report import json_ready

K, G, PER_CELL = 4, 3, 60


def predictions(y, a, aligned, conflicting, seed, evaluators=3):
    rng = np.random.default_rng(seed)
    # classes differ too (conflicting groups fare better in later classes and worse in later groups), so every gap has a signal
    right = rng.random((evaluators, y.size)) < np.where(a == y % G, aligned, conflicting + 0.1 * y - 0.05 * a)
    return np.where(right, y[None], (y[None] + 1) % K)


@pytest.fixture(scope="module")
def report() -> dict:
    y = np.repeat(np.arange(K), G * PER_CELL)
    a = np.tile(np.repeat(np.arange(G), PER_CELL), K)
    rng = np.random.default_rng(0)
    train_y = rng.integers(0, K, 3000)
    train_a = np.where(rng.random(3000) < 0.8, train_y % G, rng.integers(0, G, 3000))

    def measure(preds):
        return compute_metrics(y, a, preds, num_classes=K, num_groups=G, n_boot=50, train_y=train_y,
                               train_a=train_a, min_group_size=20).to_dict()

    syn = measure(predictions(y, a, 0.92, 0.45, seed=1))
    ref = measure(predictions(y, a, 0.9, 0.6, seed=2))
    amp = amplification(syn["metrics"], ref["metrics"], reference="random_subset")
    composition = {"mean_majority_share": 0.6, "mean_majority_share_interval": [0.5, 0.7],
                   "mean_majority_weight": 0.45, "mean_majority_weight_interval": [0.3, 0.62],
                   "interval_method": "composition interval"}
    return json_ready({"schema": "ddaudit.report/1", "settings": {"confidence": 0.95}, **syn,
                       "reference": {"random_subset": {"images": 40, "metrics": ref["metrics"]}},
                       "amplification": amp, "composition": composition,
                       "privacy": {"auc": 0.62, "auc_interval": [0.55, 0.69], "tpr_at_fpr_1pct": 0.05,
                                   "tpr_at_fpr_1pct_interval": [0.02, 0.09], "interval_method": "bootstrap"},
                       "robustness": {"accuracy": 0.4, "accuracy_interval": [0.3, 0.5], "deo_max": 0.5,
                                      "deo_max_interval": [0.3, 0.7], "interval_method": "bounds"}})


def interval_of(threshold: Threshold, report: dict) -> tuple[float, float]:
    entry = _evaluate._lookup(report, threshold.entry)
    if threshold.has_interval:
        return tuple(entry["interval"])
    return _evaluate._value_interval(threshold, entry)


def thresholds_for(threshold: Threshold, low: float, high: float) -> dict[str, float]:
    """Thresholds that the interval ``[low, high]`` must pass, fail and leave open."""
    step = 0.02 * max(high - low, 1e-3)
    beyond_high, beyond_low = min(high + step, threshold.high), max(low - step, threshold.low)
    middle = (low + high) / 2
    if threshold.operator == AT_MOST:
        return {"pass": beyond_high, "fail": beyond_low, "inconclusive": middle}
    return {"pass": beyond_low, "fail": beyond_high, "inconclusive": middle}


@pytest.mark.parametrize("name", list(THRESHOLDS))
def test_each_flag_passes_fails_and_stays_open_on_its_interval(report, name):
    threshold = THRESHOLDS[name]
    low, high = interval_of(threshold, report)
    assert math.isfinite(low) and math.isfinite(high) and threshold.low < low < high < threshold.high, (name, low, high)
    for expected, limit in thresholds_for(threshold, low, high).items():
        assert threshold.low <= limit <= threshold.high, (name, expected, limit)
        outcome = evaluate_gates(report, GateSettings(thresholds={name: limit}, min_group_size=20))
        result = outcome.results[0]
        assert result.outcome == expected, result.sentence()
        assert result.interval == pytest.approx((low, high)) and result.basis.startswith("interval")
        assert outcome.exit_code == {"pass": 0, "fail": 1, "inconclusive": 3}[expected]
        if expected == "inconclusive":
            assert "contains the threshold" in result.reason


def test_the_ratio_interval_is_unbounded_above_a_reference_that_may_be_fair(report):
    import copy

    changed = copy.deepcopy(report)
    changed["amplification"]["deo_max"]["ratio_interval"][1] = None
    result = evaluate_gates(changed, GateSettings(thresholds={"max_amplification": 1000.0})).results[0]
    assert result.outcome == "inconclusive" and result.interval[1] == math.inf
    assert result.to_dict()["interval"][1] is None


def test_point_values_without_an_interval_say_how_to_gate_them(report):
    import copy

    old = copy.deepcopy(report)
    for entry in (old["composition"], old["amplification"]["deo_max"]):
        for key in [k for k in entry if k.endswith("_interval")]:
            del entry[key]
    for name, limit in (("max_majority_share", 0.9), ("max_amplification_diff", 0.9)):
        result = evaluate_gates(old, GateSettings(thresholds={name: limit})).results[0]
        assert result.outcome == "inconclusive" and "--gate-on mean" in result.reason and "\n" not in result.reason
        assert evaluate_gates(old, GateSettings(thresholds={name: limit}, gate_on="mean",
                                                min_group_size=0)).status == "pass"


def test_a_metric_without_an_interval_rule_cannot_be_gated_on_ci(report, monkeypatch):
    bare = Threshold("max_bare", ("metrics", "deo_max"), AT_MOST, "bare", "a metric registered without an interval",
                     interval_rule=False)
    monkeypatch.setitem(THRESHOLDS, "max_bare", bare)
    settings = GateSettings(thresholds={"max_bare": 0.5}, min_group_size=0)
    with pytest.raises(ConfigError) as refused:
        evaluate_gates(report, settings)
    message = str(refused.value)
    assert "--gate-on mean" in message and "--max-bare" in message and "\n" not in message
    on_mean = GateSettings(thresholds={"max_bare": 0.99}, gate_on="mean", min_group_size=0)
    assert evaluate_gates(report, on_mean).status == "pass"


# ---------------------------------------------------------------- the settle hint, by simulation


def gated(correct, total, threshold):
    """The max_deo_max gate on count tables ``(E, K, G)`` of one evaluator."""
    from ddaudit.metrics import interval_table

    row = interval_table(correct, total)["deo_max"]
    report = {"settings": {"confidence": 0.95}, "cells": [{"count": int(c)} for c in np.ravel(total)],
              "metrics": {"deo_max": {"mean": float(row["estimate"]), "interval": [float(row["low"]), float(row["high"])],
                                      "interval_test": [float(row["test_low"]), float(row["test_high"])],
                                      "interval_margin": float(row["margin"])}}}
    return evaluate_gates(report, GateSettings(thresholds={"max_deo_max": threshold}, min_group_size=0)).results[0]


def settled_share(p, size, threshold, rng, sims=200):
    total = np.full(p.shape, size)
    correct = rng.binomial(total, p, (sims, 1, *p.shape))
    from ddaudit.metrics import interval_table

    row = interval_table(correct, total)["deo_max"]
    return float(np.mean(row["low"] > threshold))


def test_settle_hint_names_a_test_set_that_settles_about_half_the_time():
    """An open gate on an unfair model says how many images per cell would settle it; drawing test sets of
    that size from the same accuracies settles it about as often as not, and four times as many nearly always."""
    rng = np.random.default_rng(5)
    p = np.array([[0.8, 0.55], [0.75, 0.7]])
    total = np.full(p.shape, 40)
    correct = np.round(p * total)[None]
    result = gated(correct, total, 0.1)
    assert result.outcome == "inconclusive" and "to settle it" in result.settle, result.sentence()
    needed = int(result.settle.split("about ")[1].split(")")[0].rstrip("+"))
    assert needed > 40
    at_hint = settled_share(p, needed, 0.1, rng)
    quadrupled = settled_share(p, 4 * needed, 0.1, rng)
    quarter = settled_share(p, max(40, needed // 4), 0.1, rng)
    assert 0.2 <= at_hint <= 0.9, at_hint
    assert quadrupled >= 0.9, quadrupled
    assert quarter < at_hint, (quarter, at_hint)


def test_every_view_shows_the_interval_the_gates_use(report):
    """The table, Markdown, HTML and JSON show the gating interval with its method; the bootstrap is named."""
    import io

    from rich.console import Console

    from ddaudit.report import AuditReport, to_html, to_markdown

    low, high = report["metrics"]["deo_max"]["interval"]
    shown = f"[{100 * low:.2f}, {100 * high:.2f}]"
    method = report["metrics"]["deo_max"]["interval_method"]
    markdown = to_markdown(report)
    assert "gating 95% interval" in markdown and "CI: bootstrap" in markdown
    deo_row = next(line for line in markdown.splitlines() if line.startswith("| DEO_M"))
    assert shown in deo_row and method in markdown
    html = to_html(report)
    assert "gating 95% interval" in html and shown in html and method in html
    buffer = io.StringIO()
    AuditReport.from_dict(report).render(Console(file=buffer, width=250, color_system=None), show_cells=False)
    text = buffer.getvalue()
    assert "gating 95%" in text and shown in text and "newcombe-hybrid" in text
    gate = evaluate_gates(report, GateSettings(thresholds={"max_deo_max": 0.5})).results[0]
    assert gate.interval == pytest.approx((low, high)) and gate.interval_method == method


def test_the_registry_marks_a_gated_metric_without_an_interval_rule():
    from ddaudit.gate._thresholds import metric_threshold
    from ddaudit.metrics import LOWER, METRICS, Metric

    bare = Metric(name="bare", label="bare", direction=LOWER, bounds=(0.0, 1.0), needs_cells=True,
                  function=lambda tables: None, description="no interval", gate="max_bare")
    assert metric_threshold(bare).interval_rule is False
    assert all(metric_threshold(m).interval_rule for m in METRICS.values() if m.gate)

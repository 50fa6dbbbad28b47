"""The metric table: each registered metric is computed, reported, compared and gated.

The two metrics added through the table alone (``class_accuracy_gap``,
``sufficiency_gap_max``) are cross-checked against scikit-learn's per-class
recall and precision, and followed from their registration to a gate decision.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score
from typer.testing import CliRunner

from ddaudit.gate import THRESHOLDS, GateSettings, evaluate_gates
from ddaudit.metrics import DISPARITY_METRICS, HIGHER, LOWER, METRICS, compute_metrics
from ddaudit.report import AuditReport


def _audit_like(seed=0, evaluators=3, num_classes=4, num_groups=3, per_cell=30):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(num_classes), num_groups * per_cell)
    a = np.tile(np.repeat(np.arange(num_groups), per_cell), num_classes)
    p_right = np.linspace(0.3, 0.9, num_groups)[a] * np.linspace(0.7, 1.0, num_classes)[y]
    right = rng.random((evaluators, y.size)) < p_right[None, :]
    pred = np.where(right, y[None, :], rng.integers(0, num_classes, (evaluators, y.size)))
    return y, a, pred


def test_class_accuracy_gap_is_best_minus_worst_per_class_recall():
    y, a, pred = _audit_like(seed=1)
    result = compute_metrics(y, a, pred, num_classes=4, num_groups=3, n_boot=200)
    entry = result.metrics["class_accuracy_gap"]
    for e, row in enumerate(pred):
        per_class = recall_score(y, row, labels=range(4), average=None)  # accuracy within each true class
        assert entry["per_evaluator"][e] == pytest.approx(per_class.max() - per_class.min())
    assert entry["ci_method"] == "bootstrap-basic"
    assert entry["ci"][0] <= entry["mean"] <= entry["ci"][1]


def test_class_accuracy_gap_skips_absent_classes_and_needs_two():
    y = np.array([0, 0, 2, 2])
    pred = np.array([[0, 1, 2, 2]])
    result = compute_metrics(y, np.zeros(4, int), pred, num_classes=3, num_groups=1, n_boot=0)
    assert result.metrics["class_accuracy_gap"]["mean"] == pytest.approx(1.0 - 0.5)  # class 1 has no test rows
    single = compute_metrics(np.zeros(3, int), np.zeros(3, int), np.zeros((1, 3), int), num_classes=2,
                             num_groups=1, n_boot=0)
    assert np.isnan(single.metrics["class_accuracy_gap"]["mean"])


def test_sufficiency_gap_max_is_the_largest_per_class_precision_gap_between_groups():
    y, a, pred = _audit_like(seed=2)
    result = compute_metrics(y, a, pred, num_classes=4, num_groups=3, n_boot=0)
    for e, row in enumerate(pred):
        precision = np.array([
            precision_score(y[a == g], row[a == g], labels=range(4), average=None, zero_division=np.nan)
            for g in range(3)
        ])  # (groups, classes)
        gaps = np.nanmax(precision, axis=0) - np.nanmin(precision, axis=0)
        assert result.metrics["sufficiency_gap_max"]["per_evaluator"][e] == pytest.approx(gaps.max())
    assert result.metrics["sufficiency_gap_max"]["ci_method"] == "t"


def test_sufficiency_gap_leaves_out_groups_never_predicted_as_the_class():
    # Class 1 is predicted only for group 0, so it has no precision gap; class 0's
    # precision is 1/2 in group 0 (one row of class 1 predicted 0) and 1 in group 1.
    y = np.array([0, 1, 1, 0, 0])
    a = np.array([0, 0, 0, 1, 1])
    pred = np.array([[0, 0, 1, 0, 0]])
    result = compute_metrics(y, a, pred, num_classes=2, num_groups=2, n_boot=0)
    assert result.metrics["sufficiency_gap_max"]["mean"] == pytest.approx(0.5)


def test_every_registered_metric_is_reported_compared_and_gated():
    y, a, pred = _audit_like(seed=3)
    result = compute_metrics(y, a, pred, num_classes=4, num_groups=3, n_boot=50)
    assert list(result.metrics) == list(METRICS)
    for name, metric in METRICS.items():
        assert metric.direction in (LOWER, HIGHER)
        low, high = metric.bounds
        assert low <= result.metrics[name]["mean"] <= high or np.isnan(result.metrics[name]["mean"])
        assert (name in DISPARITY_METRICS) == metric.lower_is_better
        if metric.gate is not None:
            threshold = THRESHOLDS[metric.gate]
            assert threshold.entry == ("metrics", name) and threshold.needs_cells == metric.needs_cells
            assert threshold.operator == ("<=" if metric.lower_is_better else ">=")


def _report(result) -> AuditReport:
    return AuditReport(
        synthetic={"path": "syn.pt"}, real={"name": "toy", "class_names": list("abcd"), "group_names": list("xyz")},
        settings={}, metrics=result.metrics, cells=result.cells, warnings=result.warnings,
        per_class=result.per_class, per_group=result.per_group,
    )


def test_new_metrics_reach_the_report_rows_and_the_gate(tmp_path, monkeypatch):
    y, a, pred = _audit_like(seed=4)
    result = compute_metrics(y, a, pred, num_classes=4, num_groups=3, n_boot=50, min_group_size=5)
    report = _report(result)
    labels = [row["label"] for row in report.headline_rows()]
    assert METRICS["class_accuracy_gap"].label in labels and METRICS["sufficiency_gap_max"].label in labels
    assert "Sufficiency gap" in report.to_markdown()
    gap = result.metrics["class_accuracy_gap"]["mean"]
    outcome = evaluate_gates(report, GateSettings(thresholds={"max_class_accuracy_gap": gap / 2}, min_group_size=5,
                                                   gate_on="mean"))
    assert outcome.status == "fail" and outcome.results[0].value == pytest.approx(gap)
    # The CLI flag exists because the metric is in the table.
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report.to_dict()))
    runner = CliRunner()
    from ddaudit.cli import app

    passed = runner.invoke(app, ["gate", str(path), "--max-class-accuracy-gap", str(min(1.0, gap + 0.05)),
                                 "--max-sufficiency-gap", "1", "--min-group-size", "5", "--gate-on", "mean"])
    assert passed.exit_code == 0, passed.output
    failed = runner.invoke(app, ["gate", str(path), "--max-sufficiency-gap", "0.0001", "--min-group-size", "5",
                                 "--gate-on", "mean"])
    assert failed.exit_code == 1, failed.output

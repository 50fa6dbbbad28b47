"""Fairness gates as a library: thresholds, configuration, decisions, JUnit and GitHub output.

Reports are built the way ``ddaudit check`` builds them: predictions of several
evaluators on a group-labelled test set go through ``ddaudit.metrics``, and the
result is round-tripped through JSON. Gate values are cross-checked against an
independent per-cell computation from the raw arrays.
"""

from __future__ import annotations

import functools
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from ddaudit.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_OK, ConfigError
from ddaudit.gate import (
    THRESHOLDS,
    GateSettings,
    annotation_lines,
    combined_exit_code,
    emit_github,
    evaluate_gates,
    find_config,
    is_plain_output,
    junit_xml,
    read_config,
    resolve_gate_settings,
    summary_markdown,
)

NUM_CLASSES, NUM_GROUPS = 4, 3
CLASS_NAMES = ["zero", "one", "two", "three"]
GROUP_NAMES = ["red", "green", "blue"]


# ---------------------------------------------------------------- report builders


def make_test_set(per_cell) -> tuple[np.ndarray, np.ndarray]:
    """Labels and groups with ``per_cell[k, g]`` samples in each (class, group) cell."""
    counts = np.broadcast_to(np.asarray(per_cell), (NUM_CLASSES, NUM_GROUPS))
    y = np.concatenate([np.full(counts[k, g], k) for k in range(NUM_CLASSES) for g in range(NUM_GROUPS)])
    a = np.concatenate([np.full(counts[k, g], g) for k in range(NUM_CLASSES) for g in range(NUM_GROUPS)])
    return y.astype(np.int64), a.astype(np.int64)


def make_predictions(y, a, *, aligned: float, conflicting: float, evaluators: int = 3, seed: int = 0) -> np.ndarray:
    """Evaluators right with probability *aligned* on each class's own group (a == y mod G)
    and *conflicting* on the others; a wrong answer is the next class."""
    rng = np.random.default_rng(seed)
    p_right = np.where(a == y % NUM_GROUPS, aligned, conflicting)
    right = rng.random((evaluators, y.shape[0])) < p_right[None, :]
    return np.where(right, y[None, :], (y[None, :] + 1) % NUM_CLASSES)


def build_report(y, a, preds, *, reference_preds=None, path="distilled/syn.pt", n_boot=100) -> dict:
    """A ``ddaudit.report/1`` dict from raw predictions, as ``ddaudit check`` writes it."""
    from ddaudit.metrics import amplification, compute_metrics
    from ddaudit.report import json_ready

    def measure(p):
        return compute_metrics(y, a, p, num_classes=NUM_CLASSES, num_groups=NUM_GROUPS, n_boot=n_boot,
                               seed=0, class_names=CLASS_NAMES, group_names=GROUP_NAMES)

    result = measure(preds)
    references, amp = {}, {}
    if reference_preds is not None:
        ref = measure(reference_preds)
        references["random_subset"] = {"images": 40, "metrics": ref.metrics}
        amp = amplification(result.metrics, ref.metrics, reference="random_subset")
    report = {
        "schema": "ddaudit.report/1",
        "status": "not_gated",
        "synthetic": {"path": path, "format": "dc", "images": 40, "classes": NUM_CLASSES, "ipc": 10},
        "real": {"name": "test-preset", "num_classes": NUM_CLASSES, "num_groups": NUM_GROUPS,
                 "class_names": CLASS_NAMES, "group_names": GROUP_NAMES, "test_size": int(y.shape[0]),
                 "train_size": None},
        "settings": {"protocol": "quick", "seed": 0, "num_eval": int(preds.shape[0]), "min_group_size": 20},
        "metrics": result.metrics,
        "cells": result.cells,
        "reference": references,
        "amplification": amp,
        "warnings": result.warnings,
        "gates": [],
    }
    return json.loads(json.dumps(json_ready(report)))


def deo_by_hand(y, a, preds) -> tuple[float, float]:
    """Mean over evaluators of DEO_M and DEO_A, from per-cell accuracies (non-empty cells only)."""
    maxes, means = [], []
    for pred in preds:
        gaps = []
        for k in range(NUM_CLASSES):
            accs = [np.mean(pred[(y == k) & (a == g)] == k) for g in range(NUM_GROUPS) if np.any((y == k) & (a == g))]
            gaps.append(max(accs) - min(accs))
        maxes.append(max(gaps))
        means.append(sum(gaps) / len(gaps))
    return float(np.mean(maxes)), float(np.mean(means))


def biased_arrays(per_cell=40, seed=0):
    y, a = make_test_set(per_cell)
    return y, a, make_predictions(y, a, aligned=0.95, conflicting=0.2, seed=seed)


def balanced_arrays(per_cell=40, seed=1):
    y, a = make_test_set(per_cell)
    return y, a, make_predictions(y, a, aligned=0.9, conflicting=0.9, seed=seed)


def undersized_arrays(seed=3):
    """Fair evaluators, but the (two, green) test cell holds only 5 samples."""
    per_cell = np.full((NUM_CLASSES, NUM_GROUPS), 40)
    per_cell[2, 1] = 5
    y, a = make_test_set(per_cell)
    return y, a, make_predictions(y, a, aligned=0.9, conflicting=0.9, seed=seed)


@functools.lru_cache(maxsize=None)
def _standard_report_text(name: str) -> str:
    if name == "biased":
        y, a, preds = biased_arrays()
        report = build_report(y, a, preds, reference_preds=balanced_arrays()[2], path="distilled/biased.pt")
    elif name == "balanced":
        report = build_report(*balanced_arrays(), path="distilled/balanced.pt")
    else:
        report = build_report(*undersized_arrays(), path="distilled/small.pt")
    return json.dumps(report)


def standard_report(name: str) -> dict:
    """A fresh copy of the ``biased`` (with a balanced reference), ``balanced`` or
    ``undersized`` report; built once per test session."""
    return json.loads(_standard_report_text(name))


@pytest.fixture(scope="module")
def biased():
    return (*biased_arrays(), standard_report("biased"))


@pytest.fixture(scope="module")
def balanced():
    return (*balanced_arrays(), standard_report("balanced"))


@pytest.fixture(scope="module")
def undersized():
    return standard_report("undersized")


def settings(**thresholds) -> GateSettings:
    """The default settings: decide on the gating interval."""
    return GateSettings(thresholds=thresholds)


def on_mean(**thresholds) -> GateSettings:
    """Decide on the point estimate (``--gate-on mean``)."""
    return GateSettings(thresholds=thresholds, gate_on="mean")


def without_intervals(report: dict) -> dict:
    """The report as versions before gating intervals wrote it."""
    old = json.loads(json.dumps(report))
    for entry in old["metrics"].values():
        for key in ("interval", "interval_method", "interval_test", "interval_margin"):
            entry.pop(key, None)
    return old


# ---------------------------------------------------------------- decisions


def test_biased_report_fails_deo_gate_with_the_hand_computed_value(biased):
    y, a, preds, report = biased
    deo_max, deo_avg = deo_by_hand(y, a, preds)
    assert deo_max > 0.5
    outcome = evaluate_gates(report, settings(max_deo_max=0.3, max_deo_avg=0.3))
    by_name = {r.name: r for r in outcome.results}
    assert by_name["max_deo_max"].estimate == pytest.approx(deo_max)
    assert by_name["max_deo_avg"].estimate == pytest.approx(deo_avg)
    low, high = report["metrics"]["deo_max"]["interval"]
    assert 0.3 < low <= deo_max <= high
    assert by_name["max_deo_max"].value == pytest.approx(low) and by_name["max_deo_max"].basis == "interval_low"
    assert by_name["max_deo_max"].outcome == "fail"
    assert outcome.status == "fail"
    assert outcome.exit_code == EXIT_GATE_FAILED
    point = evaluate_gates(report, on_mean(max_deo_max=0.3, max_deo_avg=0.3))
    assert [r.value for r in point.results] == pytest.approx([deo_max, deo_avg])
    assert point.status == "fail"


def test_balanced_report_passes_when_the_whole_interval_is_below(balanced):
    y, a, preds, report = balanced
    deo_max, _ = deo_by_hand(y, a, preds)
    low, high = report["metrics"]["deo_max"]["interval"]
    assert low <= deo_max < 0.3 < high < 0.4
    outcome = evaluate_gates(report, settings(max_deo_max=0.4))
    (result,) = outcome.results
    assert result.passed and not result.inconclusive
    assert result.value == pytest.approx(high) and result.estimate == pytest.approx(deo_max)
    assert outcome.status == "pass" and outcome.exit_code == EXIT_OK
    # 0.3 lies inside the interval: the data cannot tell, whatever the point estimate says.
    open_gate = evaluate_gates(report, settings(max_deo_max=0.3))
    assert open_gate.status == "inconclusive" and open_gate.exit_code == EXIT_INCONCLUSIVE
    assert "contains the threshold 0.3" in open_gate.results[0].reason
    assert evaluate_gates(report, on_mean(max_deo_max=0.3)).status == "pass"


def test_min_gates_compare_with_at_least(biased):
    y, _, preds, report = biased
    accuracy = float(np.mean(preds == y[None, :]))
    low, high = report["metrics"]["accuracy"]["interval"]
    below = evaluate_gates(report, settings(min_accuracy=round(high + 0.01, 3)))
    above = evaluate_gates(report, settings(min_accuracy=round(low - 0.01, 3)))
    assert below.results[0].operator == ">=" and below.results[0].estimate == pytest.approx(accuracy)
    assert below.results[0].value == pytest.approx(high) and above.results[0].value == pytest.approx(low)
    assert below.status == "fail" and above.status == "pass"


def test_worst_group_accuracy_gate_uses_the_worst_cell(biased):
    y, a, preds, report = biased
    worst = np.mean([min(np.mean(p[(y == k) & (a == g)] == k) for k in range(NUM_CLASSES) for g in range(NUM_GROUPS))
                     for p in preds])
    result = evaluate_gates(report, settings(min_worst_group_accuracy=0.5)).results[0]
    assert result.estimate == pytest.approx(worst)
    assert result.interval[1] < 0.5 and result.outcome == "fail"


def test_interval_rule_pass_fail_and_straddle(biased):
    _, _, _, report = biased
    low, high = report["metrics"]["deo_max"]["interval"]
    assert low < high
    middle = (low + high) / 2
    straddle = evaluate_gates(report, settings(max_deo_max=middle)).results[0]
    assert straddle.inconclusive and "contains the threshold" in straddle.reason
    assert straddle.value == pytest.approx(high) and straddle.basis == "interval_high"
    assert straddle.interval == pytest.approx((low, high))
    assert straddle.interval_method == report["metrics"]["deo_max"]["interval_method"]
    above = evaluate_gates(report, settings(max_deo_max=min(1.0, high + 0.01))).results[0]
    below = evaluate_gates(report, settings(max_deo_max=low - 0.01)).results[0]
    assert above.outcome == "pass" and below.outcome == "fail"
    acc_low, acc_high = report["metrics"]["accuracy"]["interval"]
    at_least = evaluate_gates(report, settings(min_accuracy=(acc_low + acc_high) / 2))
    assert at_least.results[0].basis == "interval_low" and at_least.results[0].value == pytest.approx(acc_low)
    assert at_least.status == "inconclusive" and at_least.exit_code == EXIT_INCONCLUSIVE


def test_mean_and_interval_can_disagree(biased):
    _, _, _, report = biased
    mean = report["metrics"]["deo_max"]["mean"]
    high = report["metrics"]["deo_max"]["interval"][1]
    assert mean < high
    threshold = (mean + high) / 2
    assert evaluate_gates(report, on_mean(max_deo_max=threshold)).status == "pass"
    assert evaluate_gates(report, settings(max_deo_max=threshold)).status == "inconclusive"


def test_report_without_intervals_gates_on_its_bootstrap_ci(biased):
    report = without_intervals(biased[3])
    low, high = report["metrics"]["deo_max"]["ci"]
    middle = (low + high) / 2
    straddle = evaluate_gates(report, settings(max_deo_max=middle)).results[0]
    assert straddle.inconclusive and "straddles" in straddle.reason
    assert straddle.value == pytest.approx(high) and straddle.basis == "ci_high"
    assert evaluate_gates(report, settings(max_deo_max=min(1.0, high + 0.01))).status == "pass"
    assert evaluate_gates(report, settings(max_deo_max=low - 0.01)).status == "fail"
    assert evaluate_gates(report, on_mean(max_deo_max=0.3)).results[0].basis == "mean"


def test_undersized_cell_widens_the_interval_instead_of_overriding(undersized):
    report = undersized
    low, high = report["metrics"]["deo_max"]["interval"]
    assert high > 0.5 > report["metrics"]["deo_max"]["mean"]
    outcome = evaluate_gates(report, settings(max_deo_max=0.9, min_accuracy=0.5))
    by_name = {r.name: r for r in outcome.results}
    assert by_name["max_deo_max"].outcome == "pass"
    assert "1 (class, group) cell(s) below min_group_size 20" in by_name["max_deo_max"].reason
    assert "min_group_size" not in by_name["min_accuracy"].reason
    assert outcome.status == "pass"
    pending = evaluate_gates(report, settings(max_deo_max=0.3)).results[0]
    assert pending.inconclusive and "smallest cell 5 -> about" in pending.reason
    quiet = evaluate_gates(report, GateSettings(thresholds={"max_deo_max": 0.9}, min_group_size=5)).results[0]
    assert quiet.outcome == "pass" and "min_group_size" not in quiet.reason


def test_report_without_intervals_keeps_the_small_cell_rule(undersized):
    report = without_intervals(undersized)
    outcome = evaluate_gates(report, on_mean(max_deo_max=0.9, min_accuracy=0.5))
    by_name = {r.name: r for r in outcome.results}
    assert by_name["max_deo_max"].inconclusive
    assert "class two x group green (n=5)" in by_name["max_deo_max"].reason
    assert by_name["min_accuracy"].outcome == "pass"
    assert outcome.status == "inconclusive" and outcome.exit_code == EXIT_INCONCLUSIVE
    relaxed = evaluate_gates(report, GateSettings(thresholds={"max_deo_max": 0.9}, gate_on="mean", min_group_size=5))
    assert relaxed.status == "pass"


def test_empty_cell_holds_a_pass_open_but_not_a_failure():
    per_cell = np.full((NUM_CLASSES, NUM_GROUPS), 30)
    per_cell[0, 2] = 0
    y, a = make_test_set(per_cell)
    report = build_report(y, a, make_predictions(y, a, aligned=0.9, conflicting=0.9))
    # The unmeasured cell could hold any accuracy: against the other cells of its class
    # (about 0.9 each) the upper end reaches nearly 1.
    assert report["metrics"]["deo_max"]["interval"][1] > 0.95
    result = evaluate_gates(report, settings(max_deo_max=0.9)).results[0]
    assert result.inconclusive and "1 (class, group) cell(s) have no test images" in result.reason
    # DEO_A averages the open class with three measured ones, so its bound stays below 1.
    assert evaluate_gates(report, settings(max_deo_avg=0.9)).status == "pass"
    unfair = build_report(y, a, make_predictions(y, a, aligned=1.0, conflicting=0.0))
    assert evaluate_gates(unfair, settings(max_deo_max=0.3)).status == "fail"
    legacy = evaluate_gates(without_intervals(report), settings(max_deo_avg=0.9)).results[0]
    assert legacy.inconclusive and "class zero x group blue (n=0)" in legacy.reason


@pytest.mark.parametrize("value", [None, float("nan")])
def test_undefined_metric_is_inconclusive(balanced, value):
    report = json.loads(json.dumps(balanced[3]))
    report["metrics"]["equalized_odds_difference"]["mean"] = value
    result = evaluate_gates(report, on_mean(max_equalized_odds=0.5)).results[0]
    assert result.inconclusive and result.value is None and "undefined" in result.reason
    report["metrics"]["deo_max"]["mean"] = value
    result = evaluate_gates(report, on_mean(max_deo_max=0.5)).results[0]
    assert result.inconclusive and result.value is None and "undefined" in result.reason
    del report["metrics"]["equalized_odds_difference"]["interval"]
    report["metrics"]["equalized_odds_difference"]["ci"] = [value, value]
    result = evaluate_gates(report, settings(max_equalized_odds=0.5)).results[0]
    assert result.inconclusive and "--gate-on mean" in result.reason


def test_missing_metric_is_inconclusive(balanced):
    report = json.loads(json.dumps(balanced[3]))
    del report["metrics"]["accuracy_gap"]
    result = evaluate_gates(report, settings(max_accuracy_gap=0.5)).results[0]
    assert result.inconclusive and "no accuracy_gap" in result.reason


def test_amplification_gates_read_the_reference_comparison(biased):
    y, a, preds, report = biased
    ref_preds = balanced_arrays()[2]
    syn, ref = deo_by_hand(y, a, preds)[0], deo_by_hand(y, a, ref_preds)[0]
    entry = report["amplification"]["deo_max"]
    # The intervals combine the two sides' strict intervals (each end at alpha/4).
    syn_low, syn_high = report["metrics"]["deo_max"]["interval_strict"]
    ref_low, ref_high = report["reference"]["random_subset"]["metrics"]["deo_max"]["interval_strict"]
    assert entry["difference_interval"] == pytest.approx([syn_low - ref_high, syn_high - ref_low])
    assert entry["ratio_interval"][0] == pytest.approx(syn_low / ref_high)
    assert ref_low < 1e-3 and entry["ratio_interval"][1] is None  # a fair reference: the ratio is unbounded
    outcome = evaluate_gates(report, settings(max_amplification=1.5, max_amplification_diff=0.1))
    ratio, diff = outcome.results
    assert ratio.metric == "amplification.deo_max.ratio"
    assert ratio.estimate == pytest.approx(syn / ref) and diff.estimate == pytest.approx(syn - ref)
    assert diff.outcome == "fail" and diff.value == pytest.approx(syn_low - ref_high)
    assert ratio.interval[1] == float("inf")
    assert ratio.outcome == ("fail" if syn_low / ref_high > 1.5 else "inconclusive")
    assert evaluate_gates(report, settings(max_amplification=0.9 * syn_low / ref_high)).status == "fail"
    # An unbounded ratio never passes on the interval; the point value still can.
    assert evaluate_gates(report, settings(max_amplification=syn / ref + 0.5)).status == "inconclusive"
    point = evaluate_gates(report, on_mean(max_amplification=1.5, max_amplification_diff=0.1))
    assert [r.value for r in point.results] == pytest.approx([syn / ref, syn - ref])
    assert evaluate_gates(report, on_mean(max_amplification=syn / ref + 0.5, max_amplification_diff=1.0)).status == "pass"
    assert evaluate_gates(report, settings(max_amplification_diff=1.0)).status == "pass"


def test_amplification_without_reference_or_ratio_is_inconclusive(biased):
    report = json.loads(json.dumps(biased[3]))
    report["amplification"] = {}
    missing = evaluate_gates(report, settings(max_amplification=2.0)).results[0]
    assert missing.inconclusive and "reference" in missing.reason
    report["amplification"] = {"deo_max": {"ratio": None, "difference": 0.4, "reference": "random_subset"}}
    outcome = evaluate_gates(report, settings(max_amplification=2.0, max_amplification_diff=0.1))
    ratio, diff = outcome.results
    assert ratio.inconclusive and "--max-amplification-diff" in ratio.reason
    # A saved entry without a gating interval is not gated on its point value behind the user's back.
    assert diff.outcome == "inconclusive" and "--gate-on mean" in diff.reason and "\n" not in diff.reason
    assert evaluate_gates(report, on_mean(max_amplification_diff=0.1)).status == "fail"


def test_exit_code_policies(biased, undersized):
    small = undersized
    inconclusive = {"max_deo_max": 0.3}
    assert evaluate_gates(small, GateSettings(thresholds=inconclusive)).exit_code == EXIT_INCONCLUSIVE
    assert evaluate_gates(small, GateSettings(thresholds=inconclusive, inconclusive="pass")).exit_code == EXIT_OK
    assert evaluate_gates(small, GateSettings(thresholds=inconclusive, inconclusive="fail")).exit_code == EXIT_GATE_FAILED
    failing = GateSettings(thresholds={"max_deo_max": 0.3}, exit_zero=True)
    outcome = evaluate_gates(biased[3], failing)
    assert outcome.status == "fail" and outcome.exit_code == EXIT_OK
    none = evaluate_gates(biased[3], GateSettings())
    assert none.status == "not_gated" and none.exit_code == EXIT_OK


def test_failure_dominates_inconclusive_across_reports(biased, balanced):
    fail = evaluate_gates(biased[3], settings(max_deo_max=0.3))
    ok = evaluate_gates(balanced[3], settings(max_deo_max=0.4))
    pending = evaluate_gates(balanced[3], settings(max_deo_max=0.3))
    assert combined_exit_code([ok, pending]) == EXIT_INCONCLUSIVE
    assert combined_exit_code([pending, fail, ok]) == EXIT_GATE_FAILED
    assert combined_exit_code([ok, ok]) == EXIT_OK


def test_gates_go_beside_the_report_and_into_its_written_json(biased):
    from ddaudit.report import AuditReport

    saved = json.loads(json.dumps(biased[3]))
    report = AuditReport.from_dict(saved)
    before = report.to_dict()
    outcome = evaluate_gates(report, GateSettings(thresholds={"max_deo_max": 0.3, "min_accuracy": 0.1}, profile=None))
    # Deciding gates changes neither the report object nor the saved dict.
    assert report.to_dict() == before and before["status"] == "not_gated" and before["gates"] == []
    assert evaluate_gates(saved, outcome.settings) == outcome and saved == json.loads(json.dumps(biased[3]))
    report = report.to_dict(gates=outcome)
    assert report["status"] == "fail"
    assert [g["name"] for g in report["gates"]] == ["max_deo_max", "min_accuracy"]
    first = report["gates"][0]
    assert set(first) >= {"name", "metric", "operator", "threshold", "value", "passed", "inconclusive", "reason",
                          "estimate", "interval", "interval_method", "settle"}
    assert first["metric"] == "deo_max" and first["operator"] == "<=" and first["threshold"] == 0.3
    assert first["estimate"] == pytest.approx(report["metrics"]["deo_max"]["mean"])
    assert first["interval"] == pytest.approx(report["metrics"]["deo_max"]["interval"])
    assert first["value"] == pytest.approx(first["interval"][0])
    assert first["passed"] is False and first["inconclusive"] is False
    assert report["gate_settings"]["gate_on"] == "ci"
    assert json.loads(json.dumps(report))["gates"] == [r.to_dict() for r in outcome.results]


def test_thresholds_are_validated():
    with pytest.raises(ConfigError, match="write 0.3 for 30 %"):
        GateSettings(thresholds={"max_deo_max": 30})
    with pytest.raises(ConfigError, match="must be a number"):
        GateSettings(thresholds={"min_accuracy": "high"})
    with pytest.raises(ConfigError, match="must be a number"):
        GateSettings(thresholds={"min_accuracy": True})
    with pytest.raises(ConfigError) as unknown:
        GateSettings(thresholds={"max_deo": 0.3})
    assert all(name in str(unknown.value) for name in THRESHOLDS)
    with pytest.raises(ConfigError, match="ci|mean"):
        GateSettings(gate_on="median")
    with pytest.raises(ConfigError, match="min_group_size"):
        GateSettings(min_group_size=-1)
    assert GateSettings(thresholds={"max_amplification": 3.0}).thresholds == {"max_amplification": 3.0}
    assert GateSettings(thresholds={"max_amplification_diff": -0.1}).thresholds["max_amplification_diff"] == -0.1


# ---------------------------------------------------------------- configuration files


PYPROJECT = """
[project]
name = "my-distiller"

[tool.ddaudit]
max-deo-max = 0.4
min_accuracy = 0.5
min_group_size = 10
gate_on = "mean"

[tool.ddaudit.profiles.release]
max_deo_max = 0.2
gate_on = "ci"

[tool.ddaudit.profiles.typo]
max_deo_mx = 0.2
"""


def test_pyproject_base_table_and_profiles(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    assert find_config(tmp_path) == tmp_path / "pyproject.toml"
    base = resolve_gate_settings(cwd=tmp_path)
    assert base.thresholds == {"max_deo_max": 0.4, "min_accuracy": 0.5}
    assert base.min_group_size == 10 and base.gate_on == "mean"
    assert GateSettings().gate_on == "ci"
    release = resolve_gate_settings(profile="release", cwd=tmp_path)
    assert release.thresholds == {"max_deo_max": 0.2, "min_accuracy": 0.5}
    assert release.gate_on == "ci" and release.profile == "release"


def test_flags_override_the_file(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    merged = resolve_gate_settings(
        {"max_deo_max": 0.35, "min_group_size": 3, "gate_on": None, "max_deo_avg": 0.1}, profile="release", cwd=tmp_path)
    assert merged.thresholds == {"max_deo_max": 0.35, "max_deo_avg": 0.1, "min_accuracy": 0.5}
    assert merged.min_group_size == 3 and merged.gate_on == "ci"


def test_ddaudit_toml_wins_over_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "ddaudit.toml").write_text("max_deo_avg = 0.2\n[profiles.ci]\ninconclusive = 'fail'\n")
    assert find_config(tmp_path) == tmp_path / "ddaudit.toml"
    assert resolve_gate_settings(cwd=tmp_path).thresholds == {"max_deo_avg": 0.2}
    assert resolve_gate_settings(profile="ci", cwd=tmp_path).inconclusive == "fail"


def test_pyproject_without_table_is_no_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert find_config(tmp_path) is None
    assert resolve_gate_settings(cwd=tmp_path) == GateSettings()
    with pytest.raises(ConfigError, match="no tool.ddaudit table"):
        resolve_gate_settings(config="pyproject.toml", cwd=tmp_path)


def test_bad_key_in_a_profile_lists_valid_names(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    with pytest.raises(ConfigError) as error:
        resolve_gate_settings(profile="typo", cwd=tmp_path)
    message = str(error.value)
    assert "'max_deo_mx'" in message and "profiles.typo" in message
    assert all(name in message for name in [*THRESHOLDS, "gate_on", "min_group_size"])
    assert "\n" not in message


def test_unknown_profile_lists_available_ones(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    with pytest.raises(ConfigError, match="available profiles: release, typo"):
        resolve_gate_settings(profile="nightly", cwd=tmp_path)


def test_profile_needs_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="needs a configuration file"):
        resolve_gate_settings(profile="release", cwd=tmp_path)


def test_explicit_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_gate_settings(config="missing.toml", cwd=tmp_path)
    (tmp_path / "bad.toml").write_text("max_deo_max = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve_gate_settings(config="bad.toml", cwd=tmp_path)
    (tmp_path / "range.toml").write_text("min_accuracy = 80\n")
    with pytest.raises(ConfigError, match="range.toml.*write 0.8 for 80 %"):
        resolve_gate_settings(config=tmp_path / "range.toml", cwd=tmp_path)
    (tmp_path / "choice.toml").write_text("inconclusive = 'maybe'\n")
    with pytest.raises(ConfigError, match="error|pass|fail"):
        resolve_gate_settings(config="choice.toml", cwd=tmp_path)


def test_example_configuration_loads():
    example = Path(__file__).resolve().parents[1] / "examples" / "ci" / "ddaudit.toml"
    base = read_config(example)
    for profile in ("pre-push", "ci", "release"):
        merged = resolve_gate_settings(config=example, profile=profile)
        assert set(base) - set(merged.thresholds) <= {"min_group_size"}
    assert resolve_gate_settings(config=example, profile="release").gate_on == "ci"


# ---------------------------------------------------------------- JUnit


JUNIT_ATTRIBUTES = {
    "testsuites": {"name", "time", "tests", "failures", "disabled", "errors"},
    "testsuite": {"name", "tests", "failures", "errors", "time", "disabled", "skipped", "timestamp",
                  "hostname", "id", "package", "file", "log", "url", "version", "group"},
    "properties": set(),
    "property": {"name", "value"},
    "testcase": {"name", "assertions", "time", "classname", "status", "class", "file", "line", "log", "group", "url"},
    "failure": {"message", "type"},
    "error": {"message", "type"},
    "skipped": {"message"},
}
JUNIT_CHILDREN = {
    "testsuites": ["testsuite"],
    "testsuite": ["properties", "testcase", "system-out", "system-err"],
    "properties": ["property"],
    "testcase": ["skipped", "error", "failure", "system-out", "system-err"],
}
JUNIT_REQUIRED = {"testsuite": {"name", "tests"}, "testcase": {"name"}, "property": {"name", "value"}}


def assert_common_junit_schema(element: ET.Element) -> None:
    """The element/attribute/order rules of the common (Jenkins junit-10.xsd) schema."""
    assert element.tag in JUNIT_ATTRIBUTES, element.tag
    assert set(element.attrib) <= JUNIT_ATTRIBUTES[element.tag], (element.tag, element.attrib)
    assert JUNIT_REQUIRED.get(element.tag, set()) <= set(element.attrib)
    order = JUNIT_CHILDREN.get(element.tag, [])
    positions = [order.index(child.tag) for child in element]
    if element.tag != "testcase":
        assert positions == sorted(positions), [child.tag for child in element]
    for name in ("tests", "failures", "errors", "skipped"):
        if name in element.attrib:
            assert int(element.attrib[name]) >= 0
    for child in element:
        assert_common_junit_schema(child)


def test_junit_counts_and_properties(biased, balanced, undersized):
    small = undersized
    rules = GateSettings(thresholds={"max_deo_max": 0.3, "max_deo_avg": 0.3, "min_accuracy": 0.05})
    suites = [(name, evaluate_gates(report, rules))
              for name, report in (("biased", biased[3]), ("balanced", balanced[3]), ("small", small))]
    root = ET.fromstring(junit_xml(suites))
    assert_common_junit_schema(root)
    failed = sum(outcome.count("fail") for _, outcome in suites)
    assert failed >= 2
    assert int(root.get("failures")) == failed == len(root.findall(".//failure"))
    skipped = sum(int(suite.get("skipped")) for suite in root.findall("testsuite"))
    assert skipped == sum(o.count("inconclusive") for _, o in suites) == len(root.findall(".//skipped")) > 0
    assert int(root.get("tests")) == 9 == len(root.findall(".//testcase"))
    biased_suite = root.findall("testsuite")[0]
    props = {p.get("name"): p.get("value") for p in biased_suite.iter("property")}
    assert props["max_deo_max.threshold"] == "0.3"
    assert float(props["max_deo_max.estimate"]) == pytest.approx(biased[3]["metrics"]["deo_max"]["mean"])
    assert float(props["max_deo_max.interval_low"]) == pytest.approx(biased[3]["metrics"]["deo_max"]["interval"][0])
    assert props["max_deo_max.interval_method"] == biased[3]["metrics"]["deo_max"]["interval_method"]
    assert props["status"] == "fail" and props["max_deo_max.outcome"] == "fail"
    small_suite = root.findall("testsuite")[2]
    skipped = small_suite.findall(".//skipped")
    assert any("contains the threshold 0.3" in case.get("message") and "smallest cell 5" in case.get("message")
               for case in skipped)
    small_props = {p.get("name"): p.get("value") for p in small_suite.iter("property")}
    assert "smallest cell 5" in small_props["max_deo_max.settle"]


def test_junit_marks_inconclusive_as_errors_when_they_fail_the_run(undersized):
    outcome = evaluate_gates(undersized, GateSettings(thresholds={"max_deo_max": 0.3}, inconclusive="fail"))
    root = ET.fromstring(junit_xml([("small", outcome)]))
    assert_common_junit_schema(root)
    assert root.get("errors") == "1" and root.get("failures") == "0" and not root.findall(".//skipped")


# ---------------------------------------------------------------- GitHub and terminal


def test_github_annotations_and_step_summary(biased, tmp_path):
    rules = GateSettings(thresholds={"max_deo_max": 0.3, "min_accuracy": 0.05}, min_group_size=20)
    outcome = evaluate_gates(biased[3], rules)
    lines = annotation_lines("distilled/syn.pt", outcome, file="distilled/syn.pt")
    assert len(lines) == outcome.count("fail") + outcome.count("inconclusive") == 1
    assert lines[0].startswith("::error file=distilled/syn.pt,title=ddaudit max_deo_max (distilled/syn.pt)::")
    assert "\n" not in lines[0]
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    stream = io.StringIO()
    emit_github([("syn.pt", outcome, None)], stream, environ={"GITHUB_STEP_SUMMARY": str(summary)})
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    assert "FAIL" in text and "| `--max-deo-max` |" in text and "| `--min-accuracy` |" in text
    assert stream.getvalue().count("::error ") == 1


def test_annotation_properties_are_escaped(balanced):
    outcome = evaluate_gates(balanced[3], settings(max_deo_max=0.0))
    (line,) = annotation_lines("a,b: 100%", outcome)
    title = line.split("::")[1]
    assert "a%2Cb%3A 100%25" in title


def test_summary_says_when_nothing_is_gated(balanced):
    assert "No thresholds were set" in summary_markdown([("syn", evaluate_gates(balanced[3], GateSettings()))])


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_plain_output_under_ci_or_without_terminal():
    assert is_plain_output(_Stream(tty=False), environ={})
    assert not is_plain_output(_Stream(tty=True), environ={})
    assert is_plain_output(_Stream(tty=True), environ={"CI": "true"})
    assert not is_plain_output(_Stream(tty=True), environ={"CI": "false"})
    assert is_plain_output(_Stream(tty=True), environ={"TERM": "dumb"})



def test_markdown_report_says_why_a_gate_is_open(undersized):
    from ddaudit.report import to_markdown

    report = json.loads(json.dumps(undersized))
    report["settings"].update(confidence=0.95, protocol={"name": "quick"})
    report = {**report, **evaluate_gates(report, settings(max_deo_max=0.3, min_accuracy=0.5)).to_dict()}
    text = to_markdown(report)
    low, high = report["metrics"]["deo_max"]["interval"]
    row = next(line for line in text.splitlines() if line.startswith("| max_deo_max"))
    assert f"[{low:.4g}, {high:.4g}]" in row and "<= 0.3" in row and "inconclusive" in row
    assert "contains the threshold 0.3" in row and "smallest cell 5 -> about" in row
    assert "the whole 95% interval" in next(line for line in text.splitlines() if line.startswith("| min_accuracy"))

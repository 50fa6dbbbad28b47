"""Gating intervals: bounds written out against scipy, every gated metric covered, and coverage with width.

The simulations draw test sets with known per-cell accuracies (small and
extreme cells, middling gaps, a gap in every class, evaluator seeds that
differ, images that are hard for every evaluator at once) and count how often
each end of the 95 % interval lies on the wrong side of the truth, and how wide
the interval is.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ddaudit.metrics import INTERVAL_METRICS, METRICS, compute_metrics, interval_table, metric_intervals
from ddaudit.metrics._bounds import difference_bounds, mean_gap_lower, proportion_bounds
from ddaudit.metrics._intervals import disagreement

K, G, E = 4, 4, 3


def exact(k, n, confidence):
    interval = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return interval.low, interval.high


@pytest.mark.parametrize("n", [1, 5, 8, 27, 200])
def test_proportion_bounds_match_scipy_binomtest(n):
    ks = np.unique(np.linspace(0, n, 15).astype(int))
    for tail in (0.025, 0.0125, 0.0005):
        low, high = proportion_bounds(ks, n, stats.norm.isf(tail))
        for k, got_low, got_high in zip(ks, low, high):
            ref_low, ref_high = exact(k, n, 1 - 2 * tail)
            assert got_low == pytest.approx(ref_low, abs=1e-9)
            assert got_high == pytest.approx(ref_high, abs=1e-9)
    assert proportion_bounds(0, 0, 1.96) == (0.0, 1.0)


def test_difference_bounds_are_newcombes_hybrid_of_exact_bounds():
    for k1, n1, k2, n2 in [(8, 10, 3, 12), (15, 15, 0, 15), (40, 100, 45, 100)]:
        l1, u1 = exact(k1, n1, 0.95)
        l2, u2 = exact(k2, n2, 0.95)
        p1, p2 = k1 / n1, k2 / n2
        low, high = difference_bounds(k1, n1, k2, n2, stats.norm.isf(0.025))
        assert float(low) == pytest.approx(p1 - p2 - np.hypot(p1 - l1, u2 - p2))
        assert float(high) == pytest.approx(p1 - p2 + np.hypot(u1 - p1, p2 - l2))
        # Tighter than the difference of the two one-sample bounds whenever both cells are uncertain.
        assert float(low) >= l1 - u2 - 1e-12
    # An unmeasured cell could hold anything.
    low, high = difference_bounds(5, 10, 0, 0, stats.norm.isf(0.025))
    assert float(high) == pytest.approx(exact(5, 10, 0.95)[1]) and float(low) == pytest.approx(-1.0 + exact(5, 10, 0.95)[0])


def test_mean_gap_lower_written_out():
    hits = np.array([[80.0, 60.0], [75.0, 62.0], [70.0, 71.0]])
    size = np.full((3, 2), 100.0)
    got = float(mean_gap_lower(hits, size, 0.025))
    z = stats.norm.isf(0.025 / 2 ** 3)                  # one chosen pair out of 2 per class
    tail = 2 * stats.norm.sf(z)
    pieces, total = 0.0, 0.0
    for (k1, k2) in [(80, 60), (75, 62), (71, 70)]:      # the larger observed difference of each class
        l1, _ = exact(k1, 100, 1 - tail)
        _, u2 = exact(k2, 100, 1 - tail)
        total += (k1 - k2) / 100
        pieces += (k1 / 100 - l1) ** 2 + (u2 - k2 / 100) ** 2
    assert got == pytest.approx((total - np.sqrt(pieces)) / 3, abs=1e-9)


def test_one_evaluator_table_written_out():
    rng = np.random.default_rng(4)
    total = rng.integers(5, 20, (K, G))
    correct = rng.binomial(total, rng.uniform(0.2, 1.0, (K, G)))[None]
    table = interval_table(correct, total, 0.95)
    c, n = correct[0], total
    # Accuracy: the exact interval of all correct predictions over all test samples.
    low, high = exact(c.sum(), n.sum(), 0.95)
    assert float(table["accuracy"]["low"]) == pytest.approx(low)
    assert float(table["accuracy"]["high"]) == pytest.approx(high)
    # DEO_M upper: the largest Newcombe upper bound over every ordered pair of every class.
    z = stats.norm.isf(0.025)
    upper = max(float(difference_bounds(c[k, a], n[k, a], c[k, b], n[k, b], z)[1])
                for k in range(K) for a in range(G) for b in range(G) if a != b)
    assert float(table["deo_max"]["high"]) == pytest.approx(upper, abs=1e-9)
    # Worst-group accuracy upper: the lowest cell upper bound at one-sided 2.5 %.
    assert float(table["worst_group_accuracy"]["high"]) == pytest.approx(
        min(exact(c[k, g], n[k, g], 0.95)[1] for k in range(K) for g in range(G)), abs=1e-9)
    for row in table.values():
        assert row["low"] <= row["estimate"] <= row["high"]
        assert row["margin"] == 0.0


def test_every_gated_metric_has_an_interval_rule():
    gated = {name for name, metric in METRICS.items() if metric.gate}
    assert gated <= set(INTERVAL_METRICS)
    assert INTERVAL_METRICS == tuple(name for name, metric in METRICS.items() if metric.interval is not None)


def test_one_vs_rest_values_match_fairlearn():
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    rng = np.random.default_rng(11)
    total = rng.integers(10, 40, (K, G))
    y = np.repeat(np.repeat(np.arange(K), G), total.ravel())
    a = np.repeat(np.tile(np.arange(G), K), total.ravel())
    pred = np.where(rng.random(y.size) < np.where(a == y, 0.9, 0.6), y, rng.integers(0, K, y.size))
    correct = np.bincount(y * G + a, weights=pred == y, minlength=K * G).reshape(1, K, G)
    predicted = np.bincount(pred * G + a, minlength=K * G).reshape(1, K, G)
    table = interval_table(correct, total, 0.95, predicted=predicted)
    eod = max(equalized_odds_difference(y == k, pred == k, sensitive_features=a, agg="worst_case") for k in range(K))
    dpd = max(demographic_parity_difference(y == k, pred == k, sensitive_features=a) for k in range(K))
    assert float(table["equalized_odds_difference"]["estimate"]) == pytest.approx(eod)
    assert float(table["demographic_parity_difference"]["estimate"]) == pytest.approx(dpd)
    for row in table.values():
        assert row["low"] <= row["estimate"] <= row["high"]


def test_compute_metrics_reports_every_interval_and_its_method():
    rng = np.random.default_rng(1)
    total = rng.integers(5, 30, (K, G))
    y = np.repeat(np.repeat(np.arange(K), G), total.ravel())
    a = np.repeat(np.tile(np.arange(G), K), total.ravel())
    preds = np.where(rng.random((3, y.size)) < 0.8, y, (y + 1) % K)
    train_y, train_a = rng.integers(0, K, 400), rng.integers(0, G, 400)
    result = compute_metrics(y, a, preds, num_classes=K, num_groups=G, n_boot=50, train_y=train_y, train_a=train_a)
    correct = np.stack([np.bincount(y * G + a, weights=p == y, minlength=K * G).reshape(K, G) for p in preds])
    predicted = np.stack([np.bincount(p * G + a, minlength=K * G).reshape(K, G) for p in preds])
    fields = metric_intervals(correct, total, predicted=predicted,
                              disagreement=disagreement(preds == y, y * G + a, K * G).reshape(K, G))
    for name in INTERVAL_METRICS:
        entry = result.metrics[name]
        assert entry["interval_method"].startswith("newcombe-hybrid of clopper-pearson bounds")
        assert "evaluator spread" in entry["interval_method"]
        assert entry["interval"][0] <= entry["mean"] <= entry["interval"][1], name
        assert ("interval_strict" in entry) == METRICS[name].disparity
        if name in fields:
            assert entry["interval"] == pytest.approx(fields[name]["interval"])
    # The strict interval (each end at alpha/4) holds the gating one.
    for name in ("deo_max", "demographic_parity_difference", "bias_amplification"):
        low, high = result.metrics[name]["interval"]
        strict_low, strict_high = result.metrics[name]["interval_strict"]
        assert strict_low <= low and high <= strict_high
    single = compute_metrics(y, a, preds[:1], num_classes=K, num_groups=G, n_boot=0)
    assert single.metrics["deo_max"]["interval_method"] == "newcombe-hybrid of clopper-pearson bounds (approximate)"


def test_bias_amplification_interval_has_the_test_set_noise():
    rng = np.random.default_rng(8)
    y, a = np.repeat(np.arange(2), 50), np.tile(np.arange(2), 50)
    preds = np.where(rng.random(y.size) < 0.8, y, 1 - y)
    identical = np.stack([preds] * 3)
    train_y, train_a = np.array([0, 0, 0, 1, 1, 1, 0, 1]), np.array([0, 0, 1, 1, 1, 0, 0, 1])
    entry = compute_metrics(y, a, identical, num_classes=2, num_groups=2, n_boot=0, train_y=train_y,
                            train_a=train_a).metrics["bias_amplification"]
    low, high = entry["interval"]
    assert entry["ci"][0] == entry["ci"][1] == pytest.approx(entry["mean"])  # the t-interval has no width
    assert high - low > 0.1 and low < entry["mean"] < high


# ---------------------------------------------------------------- the examples


def identical_evaluators_2x2x25(seed=3):
    """2 classes x 2 groups, 25 test images per cell, 3 evaluators with identical predictions."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(2), 50)
    a = np.tile(np.repeat(np.arange(2), 25), 2)
    p_right = np.where(a == y, 0.9, 0.7)
    preds = np.where(rng.random(y.size) < p_right, y, 1 - y)
    return y, a, np.stack([preds] * 3)


def test_identical_evaluators_on_small_cells_get_no_point_interval():
    from ddaudit.gate import GateSettings, evaluate_gates
    from ddaudit.report import json_ready

    y, a, preds = identical_evaluators_2x2x25()
    metrics = compute_metrics(y, a, preds, num_classes=2, num_groups=2, n_boot=0, min_group_size=20).to_dict()
    report = json_ready({"schema": "ddaudit.report/1", "settings": {"confidence": 0.95}, **metrics})
    for name in ("demographic_parity_difference", "sufficiency_gap_max", "deo_max"):
        low, high = report["metrics"][name]["interval"]
        assert high - low > 0.2, (name, low, high)
    for flag, value in (("max_demographic_parity_difference", 0.15), ("max_sufficiency_gap", 0.2)):
        outcome = evaluate_gates(report, GateSettings(thresholds={flag: value}))
        assert outcome.status != "pass", outcome.results[0].sentence()


def colour_accuracies(rng, classes=10):
    """10 classes x 10 colours: colours differ in difficulty (accuracy 0.4 to 0.9, in a different order per
    class), as on a colour-balanced set whose hard colours stay hard."""
    return np.stack([rng.permutation(np.linspace(0.4, 0.9, classes)) for _ in range(classes)])


def test_colour_balanced_audit_reading_deo_max_near_0_6_fails_at_0_01():
    from ddaudit.gate import GateSettings, evaluate_gates

    rng = np.random.default_rng(0)
    correct, total, shares, _ = simulate(colour_accuracies(rng), np.full((10, 10), 15), 20, rng, evaluators=3)
    table = interval_table(correct, total, disagreement=shares)["deo_max"]
    assert 0.6 <= float(np.mean(table["estimate"])) <= 0.8
    for estimate, low, high in zip(table["estimate"], table["low"], table["high"]):
        report = {"settings": {"confidence": 0.95}, "cells": [{"count": 15}] * 100,
                  "metrics": {"deo_max": {"mean": float(estimate), "interval": [float(low), float(high)]}}}
        outcome = evaluate_gates(report, GateSettings(thresholds={"max_deo_max": 0.01}, min_group_size=5))
        assert outcome.status == "fail" and outcome.exit_code == 1, outcome.results[0].sentence()


def test_colour_balanced_audit_end_to_end_exits_1(tmp_path):
    """The same through compute_metrics, a saved report and ``ddaudit gate``."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from ddaudit.report import json_ready

    rng = np.random.default_rng(1)
    p = colour_accuracies(rng)
    y = np.repeat(np.arange(10), 150)
    a = np.tile(np.repeat(np.arange(10), 15), 10)
    hard = rng.standard_normal(y.size)
    cut = stats.norm.ppf(p[y, a])
    right = 0.6 * hard[None] + 0.8 * rng.standard_normal((3, y.size)) < cut[None]
    preds = np.where(right, y[None], (y[None] + 1) % 10)
    metrics = compute_metrics(y, a, preds, num_classes=10, num_groups=10, n_boot=0).to_dict()
    assert 0.5 <= metrics["metrics"]["deo_max"]["mean"] <= 0.8
    saved = tmp_path / "report.json"
    saved.write_text(json.dumps(json_ready({"schema": "ddaudit.report/1", "ddaudit_version": "0",
                                            "settings": {"confidence": 0.95}, "synthetic": {}, "real": {},
                                            **metrics})))
    ddaudit = Path(sys.executable).with_name("ddaudit")
    proc = subprocess.run([str(ddaudit), "gate", str(saved), "--max-deo-max", "0.01", "--min-group-size", "5"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr


# ---------------------------------------------------------------- coverage and width by simulation


def simulate(p, per_cell, sims, rng, evaluators=E, cell_spread=0.0, evaluator_spread=0.0, rho=0.6):
    """Correct counts ``(S, E, K, G)``, cell sizes, disagreement and the true DEO_M (mean over seeds)."""
    p = np.asarray(p, dtype=np.float64)
    k, g = p.shape
    with np.errstate(divide="ignore"):
        base = stats.norm.ppf(p)

    def seeds(shape):
        shift = cell_spread * rng.standard_normal((*shape, k, g)) + evaluator_spread * rng.standard_normal((*shape, 1, 1))
        return stats.norm.cdf(base + shift)

    def deo_max(q):
        return (q.max(axis=-1) - q.min(axis=-1)).max(axis=-1)

    truth = float(deo_max(p)) if cell_spread == evaluator_spread == 0 else float(deo_max(seeds((40_000,))).mean())
    top = int(np.max(per_cell))
    total = np.broadcast_to(per_cell, (sims, 1, k, g))
    with np.errstate(divide="ignore"):
        cut = stats.norm.ppf(seeds((sims, evaluators)))
    shared = rng.standard_normal((sims, 1, k, g, top))
    own = rng.standard_normal((sims, evaluators, k, g, top))
    right = ((rho * shared + np.sqrt(1 - rho ** 2) * own) < cut[..., None]) & (np.arange(top) < total[..., None])
    return right.sum(axis=-1), total, right.astype(np.float64).var(axis=1, ddof=1).sum(axis=-1), truth


OWN = np.eye(K, G, dtype=bool)
SMALL = {
    "extreme 1 vs 0": (np.where(OWN, 1.0, 0.0), {}),
    "all perfect": (np.ones((K, G)), {}),
    "fair 0.7": (np.full((K, G), 0.7), {}),
    "middling gap 0.3": (np.where(OWN, 0.8, 0.5), {}),
    "middling gap, seeds differ": (np.where(OWN, 0.8, 0.5), dict(cell_spread=0.3, evaluator_spread=0.2)),
}


@pytest.mark.parametrize("name", list(SMALL))
def test_deo_max_interval_covers_the_truth_on_small_cells(name):
    rng = np.random.default_rng(2026)
    p, spread = SMALL[name]
    per_cell = rng.integers(5, 21, (K, G))
    correct, total, shares, truth = simulate(p, per_cell, 150, rng, **spread)
    row = interval_table(correct, total, 0.95, disagreement=shares)["deo_max"]
    assert np.mean(row["low"] > truth + 1e-9) <= 0.025
    assert np.mean(row["high"] < truth - 1e-9) <= 0.025
    width = row["high"] - row["low"]
    if name == "extreme 1 vs 0":  # 100 % vs 0 % on 5 to 20 images: certainly above 0.3
        assert np.all(row["low"] > 0.3)
    if name == "all perfect":     # and perfect cells certainly below 0.6
        # the upper end reads each of the 3 evaluators' bound at 2.5 % / 3: 1 - tail**(1/n) for the smallest cell
        assert np.all(row["high"] == pytest.approx(1 - (0.025 / E) ** (1 / per_cell.min())))
    assert np.mean(width) < 0.99  # never the trivial [0, 1]


def test_gap_in_every_class_is_found_by_the_lower_end():
    """10 classes x 2 groups x 100 images, a gap of 0.2 in every class, the default 5 evaluators."""
    rng = np.random.default_rng(7)
    p = np.tile([0.8, 0.6], (10, 1))
    correct, total, shares, truth = simulate(p, np.full((10, 2), 100), 120, rng, evaluators=5)
    table = interval_table(correct, total, 0.95, disagreement=shares)
    for name in ("deo_max", "deo_avg", "accuracy_gap"):
        row = table[name]
        assert np.mean(row["low"] > 0.2 + 1e-9) <= 0.025 and np.mean(row["high"] < 0.2 - 1e-9) <= 0.025, name
    assert np.mean(table["deo_max"]["low"]) >= 0.10
    assert np.mean(table["deo_max"]["high"] - table["deo_max"]["low"]) <= 0.40
    assert np.mean(table["deo_avg"]["high"] - table["deo_avg"]["low"]) <= 0.33


def test_evaluators_unfair_on_different_classes_keep_the_upper_end():
    """The mean of the evaluators' DEO_M exceeds the DEO_M of their mean accuracies: upper ends read each evaluator."""
    rng = np.random.default_rng(9)
    p = np.tile([0.8, 0.8], (3, 10, 1))
    for e in range(3):
        p[e, e::3] = [0.95, 0.45]
    truth = float(np.mean([(q.max(axis=-1) - q.min(axis=-1)).max() for q in p]))
    total = np.full((10, 2), 100)
    correct = rng.binomial(total, p, (200, 3, 10, 2))
    row = interval_table(correct, total)["deo_max"]
    averaged = correct.mean(axis=1) / total
    assert np.all((averaged.max(axis=-1) - averaged.min(axis=-1)).max(axis=-1) < truth)  # the pooled view hides it
    assert np.mean(row["high"] < truth) <= 0.025 and np.mean(row["low"] > truth) <= 0.025

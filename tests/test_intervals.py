"""Gating intervals: exact cell bounds cross-checked with scipy, and coverage on simulated audits.

The simulation draws test sets with known per-cell accuracies (cells of 5 to
20 images, extreme 0/1 accuracies, middling gaps, evaluator seeds that differ
and images that are hard for every evaluator at once) and counts how often the
95 % DEO_M interval contains the true value.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ddaudit.metrics import clopper_pearson, compute_metrics, interval_table, metric_intervals
from ddaudit.metrics._intervals import class_gap_pvalues, max_gap_lower

K, G, E = 4, 4, 3


def exact(k, n, confidence):
    interval = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return interval.low, interval.high


@pytest.mark.parametrize("n", [1, 5, 8, 27, 200])
def test_clopper_pearson_matches_scipy_binomtest(n):
    ks = np.unique(np.linspace(0, n, 15).astype(int))
    for tail in (0.025, 0.0125, 0.0005):
        low, high = clopper_pearson(ks, n, tail)
        for k, got_low, got_high in zip(ks, low, high):
            ref_low, ref_high = exact(k, n, 1 - 2 * tail)
            assert got_low == pytest.approx(ref_low, abs=1e-9)
            assert got_high == pytest.approx(ref_high, abs=1e-9)
    assert np.isnan(clopper_pearson(0, 0, 0.025)[0])


def random_counts(rng, evaluators=1, low=5, high=20):
    total = rng.integers(low, high + 1, (K, G))
    correct = rng.binomial(total, rng.uniform(0.2, 1.0, (K, G)), (evaluators, K, G))
    return correct, total


def test_one_evaluator_bounds_written_out_with_binomtest():
    rng = np.random.default_rng(4)
    correct, total = random_counts(rng)
    table = interval_table(correct, total, 0.95)
    c, n = correct[0], total
    # DEO_M upper: max over classes of (max U - min L), cells at two-sided 97.5 % (one-sided 1.25 %).
    cells = [[exact(c[k, g], n[k, g], 0.975) for g in range(G)] for k in range(K)]
    upper = max(max(u for _, u in row) - min(lo for lo, _ in row) for row in cells)
    assert float(table["deo_max"]["high"]) == pytest.approx(upper, abs=1e-9)
    # Worst-group accuracy lower bound: smallest cell lower bound at 95 % two-sided.
    lowest = min(exact(c[k, g], n[k, g], 0.95)[0] for k in range(K) for g in range(G))
    assert float(table["worst_group_accuracy"]["low"]) == pytest.approx(lowest, abs=1e-9)
    # Accuracy: exact interval of all correct predictions over all test samples.
    low, high = exact(c.sum(), n.sum(), 0.95)
    assert float(table["accuracy"]["low"]) == pytest.approx(low)
    assert float(table["accuracy"]["high"]) == pytest.approx(high)
    # Accuracy gap upper: groups pooled over classes, 97.5 % per group.
    groups = [exact(c[:, g].sum(), n[:, g].sum(), 0.975) for g in range(G)]
    assert float(table["accuracy_gap"]["high"]) == pytest.approx(
        max(u for _, u in groups) - min(lo for lo, _ in groups), abs=1e-9)
    # DEO_A lower: mean of per-class max(0, max L - min U), every cell at alpha / (4 * cells).
    wide = [[exact(c[k, g], n[k, g], 1 - 2 * 0.05 / (4 * K * G)) for g in range(G)] for k in range(K)]
    deo_avg_low = np.mean([max(0.0, max(lo for lo, _ in row) - min(u for _, u in row)) for row in wide])
    assert float(table["deo_avg"]["low"]) == pytest.approx(deo_avg_low, abs=1e-9)
    for row in table.values():
        assert row["low"] <= row["estimate"] <= row["high"]
        assert row["margin"] == 0.0


def test_class_gap_pvalue_matches_a_grid_search():
    """min over v of max(P(X_high >= x | v), P(X_low <= x | v - t)), times 2G, by brute force."""
    grid = np.linspace(0, 1, 200_001)
    for hits_high, size_high, hits_low, size_low, t in [(8, 8, 0, 10, 0.3), (13, 15, 4, 12, 0.2), (5, 5, 0, 5, 0.5)]:
        v = grid[grid >= t]
        tails = np.maximum(stats.binom.sf(hits_high - 1, size_high, v), stats.binom.cdf(hits_low, size_low, v - t))
        expected = min(1.0, 2 * G * tails.min())
        got = class_gap_pvalues(np.float64(hits_high), np.float64(size_high), np.float64(hits_low),
                                np.float64(size_low), G, np.float64(t))
        assert float(got) == pytest.approx(expected, rel=1e-3, abs=1e-9)


def test_equalized_odds_interval_matches_fairlearn_and_its_bounds():
    from fairlearn.metrics import equalized_odds_difference

    rng = np.random.default_rng(11)
    total = rng.integers(10, 40, (K, G))
    y = np.repeat(np.repeat(np.arange(K), G), total.ravel())
    a = np.repeat(np.tile(np.arange(G), K), total.ravel())
    pred = np.where(rng.random(y.size) < np.where(a == y, 0.9, 0.6), y, rng.integers(0, K, y.size))
    correct = np.bincount(y * G + a, weights=pred == y, minlength=K * G).reshape(1, K, G)
    predicted = np.bincount(pred * G + a, minlength=K * G).reshape(1, K, G)
    row = interval_table(correct, total, 0.95, predicted=predicted)["equalized_odds_difference"]
    per_class = [equalized_odds_difference(y == k, pred == k, sensitive_features=a, agg="worst_case")
                 for k in range(K)]
    assert float(row["estimate"]) == pytest.approx(max(per_class))
    # Upper end: max over classes and both rates of (max U - min L), cells at 97.5 % two-sided.
    upper = 0.0
    for k in range(K):
        for hits, size in ((correct[0, k], total[k]),
                           (predicted[0, k] - correct[0, k], total.sum(axis=0) - total[k])):
            cells = [exact(h, n, 0.975) for h, n in zip(hits, size)]
            upper = max(upper, max(u for _, u in cells) - min(lo for lo, _ in cells))
    assert float(row["high"]) == pytest.approx(upper, abs=1e-9)
    assert 0.0 <= row["low"] <= row["estimate"] <= row["high"]
    # A clear violation is certain: one class right only on its own group, in both rates.
    certain = np.where(np.eye(K, G, dtype=bool), total, 0)[None]
    lows = max_gap_lower([(certain, total), (np.zeros_like(certain), total.sum(axis=0) - total)], 0.05, independent=1)
    assert lows.shape == (1,) and lows[0] > 0.3


def test_evaluator_spread_widens_each_side_in_quadrature():
    rng = np.random.default_rng(7)
    total = np.full((K, G), 40)
    correct = rng.binomial(total, rng.uniform(0.5, 1.0, (5, K, G)))
    table = interval_table(correct, total, 0.9)["deo_max"]
    per_evaluator = []
    for c in correct:
        acc = c / total
        per_evaluator.append(max(acc[k].max() - acc[k].min() for k in range(K)))
    mean = np.mean(per_evaluator)
    margin = stats.t.ppf(0.95, 4) * np.std(per_evaluator, ddof=1) / np.sqrt(5)
    assert float(table["estimate"]) == pytest.approx(mean)
    assert float(table["margin"]) == pytest.approx(margin)
    assert float(table["low"]) == pytest.approx(max(0.0, mean - np.hypot(mean - table["test_low"], margin)))
    assert float(table["high"]) == pytest.approx(min(1.0, mean + np.hypot(table["test_high"] - mean, margin)))


def test_compute_metrics_reports_the_interval_and_its_method():
    rng = np.random.default_rng(1)
    total = rng.integers(5, 30, (K, G))
    y = np.repeat(np.repeat(np.arange(K), G), total.ravel())
    a = np.repeat(np.tile(np.arange(G), K), total.ravel())
    preds = np.where(rng.random((3, y.size)) < 0.8, y, (y + 1) % K)
    result = compute_metrics(y, a, preds, num_classes=K, num_groups=G, n_boot=50)
    correct = np.stack([np.bincount(y * G + a, weights=p == y, minlength=K * G).reshape(K, G) for p in preds])
    predicted = np.stack([np.bincount(p * G + a, minlength=K * G).reshape(K, G) for p in preds])
    fields = metric_intervals(correct, total, predicted=predicted)
    # The count-based equalized odds agrees with the report's fairlearn one-vs-rest value.
    table = interval_table(correct, total, predicted=predicted)
    assert float(table["equalized_odds_difference"]["estimate"]) == pytest.approx(
        result.metrics["equalized_odds_difference"]["mean"])
    for name, expected in fields.items():
        entry = result.metrics[name]
        assert entry["interval"] == pytest.approx(expected["interval"])
        assert entry["interval_method"] == "clopper-pearson-bound+evaluator-t"
        assert entry["interval"][0] <= entry["mean"] <= entry["interval"][1]
    single = compute_metrics(y, a, preds[:1], num_classes=K, num_groups=G, n_boot=0)
    assert single.metrics["deo_max"]["interval_method"] == "clopper-pearson-bound"


# ---------------------------------------------------------------- coverage by simulation


def configuration(name):
    """``(p[K, G], per-cell and per-evaluator seed spread on the probit scale, image correlation)``."""
    own = np.eye(K, G, dtype=bool)
    p = {
        "extreme 1 vs 0": np.where(own, 1.0, 0.0),
        "all perfect": np.ones((K, G)),
        "fair 0.7": np.full((K, G), 0.7),
        "middling gap 0.3": np.where(own, 0.8, 0.5),
        "middling gap, seeds differ": np.where(own, 0.8, 0.5),
        "one unfair class, seeds differ": np.where(np.arange(K)[:, None] == 0, np.where(own, 0.95, 0.35), 0.85),
    }[name]
    spread = (0.3, 0.2, 0.6) if "seeds differ" in name else (0.0, 0.0, 0.0)
    return p, *spread


def seed_accuracies(p, cell_spread, evaluator_spread, shape, rng):
    with np.errstate(divide="ignore"):
        base = stats.norm.ppf(p)
    shift = cell_spread * rng.standard_normal((*shape, K, G)) + evaluator_spread * rng.standard_normal((*shape, 1, 1))
    return stats.norm.cdf(base + shift)


def deo_max_of(p):
    return (p.max(axis=-1) - p.min(axis=-1)).max(axis=-1)


def simulate(name, sims, rng):
    """Correct counts ``(S, E, K, G)``, cell sizes ``(S, 1, K, G)`` and the true DEO_M."""
    p, cell_spread, evaluator_spread, rho = configuration(name)
    truth = float(deo_max_of(p)) if cell_spread == 0 else float(
        deo_max_of(seed_accuracies(p, cell_spread, evaluator_spread, (40_000,), rng)).mean())
    total = rng.integers(5, 21, (sims, 1, K, G))
    with np.errstate(divide="ignore"):
        cut = stats.norm.ppf(seed_accuracies(p, cell_spread, evaluator_spread, (sims, E), rng))
    shared = rng.standard_normal((sims, 1, K, G, 20))            # how hard each image is for everyone
    own = rng.standard_normal((sims, E, K, G, 20))
    right = (rho * shared + np.sqrt(1 - rho ** 2) * own) < cut[..., None]
    right &= np.arange(20) < total[..., None]
    return right.sum(axis=-1), total, truth


CONFIGURATIONS = ["extreme 1 vs 0", "all perfect", "fair 0.7", "middling gap 0.3", "middling gap, seeds differ",
                  "one unfair class, seeds differ"]


def test_deo_max_interval_covers_the_truth_on_simulated_small_cells():
    rng = np.random.default_rng(2026)
    sims = 100
    covered_all = []
    for name in CONFIGURATIONS:
        correct, total, truth = simulate(name, sims, rng)
        table = interval_table(correct, total, 0.95)["deo_max"]
        covered = (table["low"] <= truth + 1e-12) & (truth - 1e-12 <= table["high"])
        assert covered.mean() >= 0.93, (name, covered.mean(), truth)
        covered_all.append(covered)
        if name == "extreme 1 vs 0":
            # 100 % vs 0 % on 5 to 20 images per cell: certainly above 0.3 in nearly every audit.
            assert np.mean(table["low"] > 0.3) >= 0.9
        if name == "all perfect":
            assert np.all(table["high"] < 0.6)
    assert np.concatenate(covered_all).size == sims * len(CONFIGURATIONS) >= 500
    assert np.concatenate(covered_all).mean() >= 0.93

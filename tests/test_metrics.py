"""Fairness metrics: cross-checked against fairlearn and against explicit counting loops."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest
import torch
from fairlearn.metrics import MetricFrame, demographic_parity_difference, equalized_odds_difference
from scipy import stats
from sklearn.metrics import accuracy_score

from ddaudit.errors import ConfigError, InputError
from ddaudit.metrics import (
    METRIC_NAMES,
    RATIO_MIN_REFERENCE,
    accuracy_gap,
    amplification,
    basic_interval,
    bootstrap_metric_means,
    cell_accuracy,
    cell_counts,
    class_gaps,
    class_metric_frame,
    compute_metrics,
    deo,
    directional_bias_amplification,
    one_vs_rest_demographic_parity,
    one_vs_rest_equalized_odds,
    percentile_interval,
    small_cells,
    worst_group_accuracy,
)
from ddaudit.metrics import _messages as msg


def _every_cell_filled(rng, num_classes, num_groups, per_cell_low, per_cell_high):
    """Labels and groups with a random number of samples (>= per_cell_low) in every cell, shuffled."""
    y, a = [], []
    for k in range(num_classes):
        for g in range(num_groups):
            n = int(rng.integers(per_cell_low, per_cell_high + 1))
            y += [k] * n
            a += [g] * n
    order = rng.permutation(len(y))
    return np.array(y)[order], np.array(a)[order]


def _noisy_predictions(rng, y, num_classes, p_right):
    """Right with probability ``p_right`` (scalar or per sample), else a uniformly random class."""
    right = rng.random(y.shape) < p_right
    return np.where(right, y, rng.integers(0, num_classes, y.shape))


def _loop_cell_accuracy(y, a, pred, num_classes, num_groups):
    """Acc(a, y) by explicit counting; None for an empty cell."""
    table = {}
    for k in range(num_classes):
        for g in range(num_groups):
            rows = [i for i in range(len(y)) if y[i] == k and a[i] == g]
            table[k, g] = None if not rows else sum(pred[i] == k for i in rows) / len(rows)
    return table


def _loop_deo(table, num_classes, num_groups):
    gaps = []
    for k in range(num_classes):
        values = [table[k, g] for g in range(num_groups) if table[k, g] is not None]
        if len(values) >= 2:
            gaps.append(max(values) - min(values))
    return max(gaps), sum(gaps) / len(gaps)


# ----- DEO against fairlearn and loops -------------------------------------------------------


def test_binary_deo_equals_fairlearn_equalized_odds_difference():
    for seed in range(12):
        rng = np.random.default_rng(seed)
        num_groups = int(rng.integers(2, 5))
        y, a = _every_cell_filled(rng, 2, num_groups, 3, 40)
        pred = _noisy_predictions(rng, y, 2, rng.uniform(0.2, 0.9, num_groups)[a])
        correct, total = cell_counts(y, a, pred, 2, num_groups)
        deo_max, deo_avg = deo(cell_accuracy(correct, total))
        worst = equalized_odds_difference(y, pred, sensitive_features=a, agg="worst_case")
        mean = equalized_odds_difference(y, pred, sensitive_features=a, agg="mean")
        assert deo_max == pytest.approx(worst, abs=1e-12)
        assert deo_avg == pytest.approx(mean, abs=1e-12)
        assert one_vs_rest_equalized_odds(y, a, pred, 2)[0] == pytest.approx(worst, abs=1e-12)


def test_multiclass_deo_equals_counting_loops_and_metric_frame():
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        num_classes, num_groups = int(rng.integers(3, 6)), int(rng.integers(2, 5))
        y, a = _every_cell_filled(rng, num_classes, num_groups, 1, 12)
        pred = _noisy_predictions(rng, y, num_classes, rng.uniform(0.1, 0.95, (num_classes, num_groups))[y, a])
        correct, total = cell_counts(y, a, pred, num_classes, num_groups)
        acc = cell_accuracy(correct, total)
        deo_max, deo_avg = deo(acc)

        table = _loop_cell_accuracy(y, a, pred, num_classes, num_groups)
        for (k, g), value in table.items():
            assert acc[k, g] == pytest.approx(value, abs=1e-12)
        loop_max, loop_avg = _loop_deo(table, num_classes, num_groups)
        assert deo_max == pytest.approx(loop_max, abs=1e-12)
        assert deo_avg == pytest.approx(loop_avg, abs=1e-12)

        frame = MetricFrame(metrics={"accuracy": accuracy_score}, y_true=y, y_pred=pred,
                            sensitive_features=a, control_features=y)
        by_class = frame.difference()["accuracy"]
        assert deo_max == pytest.approx(by_class.max(), abs=1e-12)
        assert deo_avg == pytest.approx(by_class.mean(), abs=1e-12)
        ours = class_metric_frame(y, a, pred).difference()["accuracy"].to_numpy()
        np.testing.assert_allclose(class_gaps(acc), ours, atol=1e-12)


def test_stacked_predictions_equal_one_evaluator_at_a_time():
    rng = np.random.default_rng(7)
    y, a = _every_cell_filled(rng, 4, 3, 2, 9)
    pred = np.stack([_noisy_predictions(rng, y, 4, p) for p in (0.3, 0.6, 0.9)])
    correct, total = cell_counts(y, a, pred, 4, 3)
    assert correct.shape == (3, 4, 3) and total.shape == (4, 3)
    stacked_max, stacked_avg = deo(cell_accuracy(correct, total))
    for e in range(3):
        single, single_total = cell_counts(y, a, pred[e], 4, 3)
        np.testing.assert_array_equal(single, correct[e])
        np.testing.assert_array_equal(single_total, total)
        assert deo(cell_accuracy(single, single_total)) == (stacked_max[e], stacked_avg[e])
    from_torch, _ = cell_counts(torch.from_numpy(y), torch.from_numpy(a), torch.from_numpy(pred), 4, 3)
    np.testing.assert_array_equal(from_torch, correct)


def test_perfectly_fair_predictors_have_zero_deo():
    rng = np.random.default_rng(3)
    y, a = _every_cell_filled(rng, 3, 4, 6, 6)
    assert deo(cell_accuracy(*cell_counts(y, a, y, 3, 4))) == (0.0, 0.0)
    # Exactly half of every cell right (the rest predicted as the next class): equal accuracy everywhere.
    pred = y.copy()
    for k in range(3):
        for g in range(4):
            rows = np.nonzero((y == k) & (a == g))[0]
            pred[rows[:3]] = (k + 1) % 3
    correct, total = cell_counts(y, a, pred, 3, 4)
    acc = cell_accuracy(correct, total)
    assert np.all(acc == 0.5)
    assert deo(acc) == (0.0, 0.0)
    assert accuracy_gap(correct, total) == 0.0


def test_predictor_right_only_for_group_zero_has_maximal_deo():
    rng = np.random.default_rng(4)
    y, a = _every_cell_filled(rng, 3, 3, 2, 10)
    pred = np.where(a == 0, y, (y + 1) % 3)
    correct, total = cell_counts(y, a, pred, 3, 3)
    acc = cell_accuracy(correct, total)
    assert deo(acc) == (1.0, 1.0)
    assert worst_group_accuracy(acc) == 0.0
    assert accuracy_gap(correct, total) == 1.0


def test_worst_group_and_accuracy_gap_equal_counting_loops():
    rng = np.random.default_rng(5)
    y, a = _every_cell_filled(rng, 3, 4, 1, 15)
    pred = _noisy_predictions(rng, y, 3, rng.uniform(0.1, 0.9, 4)[a])
    correct, total = cell_counts(y, a, pred, 3, 4)
    table = _loop_cell_accuracy(y, a, pred, 3, 4)
    assert worst_group_accuracy(cell_accuracy(correct, total)) == pytest.approx(min(table.values()))
    pooled = [np.mean([pred[i] == y[i] for i in range(len(y)) if a[i] == g]) for g in range(4)]
    assert accuracy_gap(correct, total) == pytest.approx(max(pooled) - min(pooled))


# ----- empty and small cells --------------------------------------------------------------------


def _data_with_empty_cell(rng):
    """3 classes x 3 groups, cell (class 1, group 2) empty; class 2 seen only in group 0."""
    y, a = _every_cell_filled(rng, 3, 3, 4, 12)
    keep = ~((y == 1) & (a == 2)) & ~((y == 2) & (a != 0))
    return y[keep], a[keep]


def test_empty_cells_are_nan_skipped_and_reported():
    rng = np.random.default_rng(6)
    y, a = _data_with_empty_cell(rng)
    pred = _noisy_predictions(rng, y, 3, rng.uniform(0.2, 0.9, 3)[a])
    correct, total = cell_counts(y, a, pred, 3, 3)
    acc = cell_accuracy(correct, total)
    assert total[1, 2] == 0 and np.isnan(acc[1, 2])
    assert np.isnan(class_gaps(acc)[2])  # one group only: no gap
    table = _loop_cell_accuracy(y, a, pred, 3, 3)
    assert deo(acc) == pytest.approx(_loop_deo(table, 3, 3))
    assert (1, 2, 0) in small_cells(total, 1)

    result = compute_metrics(y, a, pred, num_classes=3, num_groups=3, n_boot=50, min_group_size=5,
                             class_names=["zero", "one", "two"], group_names=["r", "g", "b"])
    cell = next(c for c in result.cells if (c["class"], c["group"]) == (1, 2))
    assert cell["count"] == 0 and cell["accuracy"] is None and cell["accuracy_std"] is None and cell["small"]
    empty_line = msg.EMPTY_CELLS.format(count=3, cells="class one/group b (n=0), class two/group g (n=0), "
                                                      "class two/group b (n=0)")
    assert empty_line in result.warnings
    assert msg.CLASSES_WITHOUT_GAP.format(classes="two") in result.warnings
    assert result.per_class[2]["gap"] is None
    assert result.metrics["deo_max"]["mean"] == pytest.approx(_loop_deo(table, 3, 3)[0])


def test_empty_as_zero_reproduces_fairdd_convention():
    rng = np.random.default_rng(8)
    y, a = _data_with_empty_cell(rng)
    pred = _noisy_predictions(rng, y, 3, 0.7)
    correct, total = cell_counts(y, a, pred, 3, 3)
    # FairDD utils.epoch_Fairness_Metric: correct / (count + 1e-8), gaps over all groups, mean over all classes.
    fairdd_acc = correct / (total + 1e-8)
    fairdd_gaps = fairdd_acc.max(axis=1) - fairdd_acc.min(axis=1)
    ours = deo(cell_accuracy(correct, total, empty_as_zero=True))
    assert ours == pytest.approx((fairdd_gaps.max(), fairdd_gaps.mean()), abs=1e-6)
    default = deo(cell_accuracy(correct, total))
    assert default[1] < ours[1]
    result = compute_metrics(y, a, pred, num_classes=3, num_groups=3, n_boot=0, empty_as_zero=True)
    assert result.metrics["deo_avg"]["mean"] == pytest.approx(fairdd_gaps.mean(), abs=1e-6)


def test_small_cells_are_listed_and_warned_not_dropped():
    rng = np.random.default_rng(9)
    y, a = _every_cell_filled(rng, 2, 2, 30, 30)
    drop = np.nonzero((y == 1) & (a == 1))[0][:26]
    y, a = np.delete(y, drop), np.delete(a, drop)
    pred = _noisy_predictions(rng, y, 2, 0.8)
    _, total = cell_counts(y, a, pred, 2, 2)
    assert small_cells(total, 20) == [(1, 1, 4)]
    result = compute_metrics(y, a, pred, num_classes=2, num_groups=2, n_boot=0, min_group_size=20)
    assert result.small_cells == [(1, 1, 4)]
    assert msg.SMALL_CELLS.format(count=1, min_size=20, cells="class 1/group 1 (n=4)") in result.warnings
    table = _loop_cell_accuracy(y, a, pred, 2, 2)
    assert result.metrics["worst_group_accuracy"]["mean"] == pytest.approx(min(table.values()))


# ----- fairlearn one-vs-rest views ------------------------------------------------------------


def test_one_vs_rest_views_equal_fairlearn_per_class():
    rng = np.random.default_rng(10)
    y, a = _every_cell_filled(rng, 4, 3, 3, 20)
    pred = _noisy_predictions(rng, y, 4, rng.uniform(0.3, 0.9, 3)[a])
    eod_max, eod = one_vs_rest_equalized_odds(y, a, pred, 4)
    dpd_max, dpd = one_vs_rest_demographic_parity(y, a, pred, 4)
    for k in range(4):
        yk, pk = (y == k).astype(int), (pred == k).astype(int)
        assert eod[k] == pytest.approx(equalized_odds_difference(yk, pk, sensitive_features=a), abs=1e-12)
        assert dpd[k] == pytest.approx(demographic_parity_difference(yk, pk, sensitive_features=a), abs=1e-12)
    assert eod_max == pytest.approx(eod.max()) and dpd_max == pytest.approx(dpd.max())


def test_equalized_odds_leaves_out_groups_without_positives():
    rng = np.random.default_rng(11)
    y, a = _every_cell_filled(rng, 3, 3, 5, 15)
    keep = ~((y == 0) & (a == 2))  # group 2 has no class-0 samples: its TPR for class 0 is undefined
    y, a = y[keep], a[keep]
    pred = _noisy_predictions(rng, y, 3, 0.6)
    _, eod = one_vs_rest_equalized_odds(y, a, pred, 3)
    rows = a != 2
    expected = equalized_odds_difference((y[rows] == 0).astype(int), (pred[rows] == 0).astype(int),
                                         sensitive_features=a[rows])
    assert eod[0] == pytest.approx(expected, abs=1e-12)
    # fairlearn on all rows would score group 2's missing TPR as 0 and report a larger gap.
    naive = equalized_odds_difference((y == 0).astype(int), (pred == 0).astype(int), sensitive_features=a)
    assert naive >= eod[0]


# ----- directional bias amplification ---------------------------------------------------------


def test_bias_amplification_hand_example():
    # Training: group 0 is 90 % class 0, group 1 is 90 % class 1 -> y_00 = y_11 = 1, y_01 = y_10 = 0.
    train_y = np.array([0] * 9 + [1] + [1] * 9 + [0])
    train_a = np.array([0] * 10 + [1] * 10)
    # Balanced test set: each group half class 0, half class 1.
    test_y = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    test_a = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    majority = np.where(test_a == 0, 0, 1)
    # Delta_00 = 1 - 1/2, Delta_01 = 0 - 1/2, Delta_10 = 0 - 1/2, Delta_11 = 1 - 1/2:
    # (1/4) * (0.5 + 0.5 + 0.5 + 0.5) = 0.5
    result = directional_bias_amplification(train_y, train_a, test_y, test_a, majority, 2, 2)
    assert result.value == pytest.approx(0.5)
    assert result.skipped == 0 and result.pairs == 4
    assert directional_bias_amplification(train_y, train_a, test_y, test_a, test_y, 2, 2).value == 0.0
    # Predicting against the training correlation is negative amplification.
    minority = 1 - majority
    assert directional_bias_amplification(train_y, train_a, test_y, test_a, minority, 2, 2).value == pytest.approx(-0.5)


def _loop_bias_amplification(train_y, train_a, test_y, test_a, pred, num_classes, num_groups):
    terms = []
    n_train = len(train_y)
    for g in range(num_groups):
        for t in range(num_classes):
            p_a = sum(1 for x in train_a if x == g) / n_train
            p_t = sum(1 for x in train_y if x == t) / n_train
            p_at = sum(1 for x, z in zip(train_a, train_y) if x == g and z == t) / n_train
            group_rows = [i for i in range(len(test_y)) if test_a[i] == g]
            if not group_rows or p_a == 0 or p_t == 0:
                continue
            y_at = 1 if p_at > p_a * p_t else 0
            delta = (sum(pred[i] == t for i in group_rows) - sum(test_y[i] == t for i in group_rows)) / len(group_rows)
            terms.append(y_at * delta + (1 - y_at) * (-delta))
    return sum(terms) / len(terms), num_classes * num_groups - len(terms)


def test_bias_amplification_equals_wang_russakovsky_loops():
    for seed in range(5):
        rng = np.random.default_rng(200 + seed)
        num_classes, num_groups = 4, 3
        train_y = rng.integers(0, num_classes, 300)
        train_a = np.where(rng.random(300) < 0.7, train_y % num_groups, rng.integers(0, num_groups, 300))
        train_a[train_a == 2] = 1 if seed % 2 else 2  # odd seeds: group 2 absent from training
        test_y, test_a = _every_cell_filled(rng, num_classes, num_groups, 2, 8)
        pred = np.stack([_noisy_predictions(rng, test_y, num_classes, p) for p in (0.4, 0.8)])
        result = directional_bias_amplification(train_y, train_a, test_y, test_a, pred, num_classes, num_groups)
        for e in range(2):
            value, skipped = _loop_bias_amplification(train_y, train_a, test_y, test_a, pred[e],
                                                      num_classes, num_groups)
            assert result.value[e] == pytest.approx(value, abs=1e-12)
            assert result.skipped == skipped
        assert result.skipped == (num_classes if seed % 2 else 0)


def test_bias_amplification_without_training_data_is_nan_with_warning():
    y = np.array([0, 1, 0, 1])
    a = np.array([0, 0, 1, 1])
    with pytest.warns(UserWarning, match="bias_amplification is NaN"):
        result = directional_bias_amplification(None, None, y, a, y, 2, 2)
    assert math.isnan(result.value)
    metrics = compute_metrics(y, a, y, num_classes=2, num_groups=2, n_boot=20)
    assert math.isnan(metrics.metrics["bias_amplification"]["mean"])
    assert msg.NO_TRAINING_DATA in metrics.warnings
    with pytest.raises(InputError, match="both train_y and train_a"):
        compute_metrics(y, a, y, num_classes=2, num_groups=2, train_y=y)


# ----- bootstrap and intervals ----------------------------------------------------------------


def _audit_like(rng, per_cell, evaluators, num_classes=5, num_groups=4):
    y, a = _every_cell_filled(rng, num_classes, num_groups, per_cell, per_cell)
    p_right = np.linspace(0.5, 0.8, num_groups)[a]
    pred = np.stack([_noisy_predictions(rng, y, num_classes, p_right) for _ in range(evaluators)])
    return y, a, pred


def test_bootstrap_interval_contains_estimate_and_narrows_with_more_data():
    widths = []
    for per_cell in (25, 400):
        y, a, pred = _audit_like(np.random.default_rng(12), per_cell, evaluators=2, num_classes=3)
        result = compute_metrics(y, a, pred, num_classes=3, num_groups=4, n_boot=400, seed=1)
        for name in ("accuracy", "accuracy_gap"):
            low, high = result.metrics[name]["ci"]
            assert low <= result.metrics[name]["mean"] <= high
        low, high = result.metrics["accuracy"]["ci"]
        widths.append(high - low)
    # 16 times the data: about a quarter of the width.
    assert widths[1] < 0.4 * widths[0]


def test_bootstrap_is_deterministic_for_a_seed():
    y, a, pred = _audit_like(np.random.default_rng(13), 20, evaluators=2, num_classes=3)
    first = bootstrap_metric_means(y, a, pred, num_classes=3, num_groups=4, n_boot=200, seed=5)
    again = bootstrap_metric_means(y, a, pred, num_classes=3, num_groups=4, n_boot=200, seed=5)
    other = bootstrap_metric_means(y, a, pred, num_classes=3, num_groups=4, n_boot=200, seed=6)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["accuracy"], other["accuracy"])
    one = compute_metrics(y, a, pred, num_classes=3, num_groups=4, n_boot=200, seed=5, interval="percentile")
    two = compute_metrics(y, a, pred, num_classes=3, num_groups=4, n_boot=200, seed=5, interval="percentile")
    assert json.dumps(one.to_dict()) == json.dumps(two.to_dict())
    assert one.metrics["deo_max"]["ci_method"] == "bootstrap-percentile"
    assert one.metrics["deo_max"]["ci"] == percentile_interval(first["deo_max"], 0.95)


def test_bootstrap_resamples_within_cells_and_pairs_evaluators():
    rng = np.random.default_rng(14)
    y, a = _every_cell_filled(rng, 3, 3, 4, 10)
    # Right in whole cells only: stratified resampling cannot change any cell's correct count.
    whole_cells = np.where((y + a) % 2 == 0, y, (y + 1) % 3)
    boot = bootstrap_metric_means(y, a, whole_cells, num_classes=3, num_groups=3, n_boot=100)
    point = compute_metrics(y, a, whole_cells, num_classes=3, num_groups=3, n_boot=0)
    for name in ("accuracy", "deo_max", "worst_group_accuracy"):
        assert np.all(boot[name] == point.metrics[name]["mean"])
    # Two evaluators right on complementary halves of every row: their mean accuracy is 1/2
    # in a resample only if both are scored on the same redrawn rows.
    half = rng.random(y.shape) < 0.5
    pair = np.stack([np.where(half, y, (y + 1) % 3), np.where(half, (y + 1) % 3, y)])
    paired = bootstrap_metric_means(y, a, pair, num_classes=3, num_groups=3, n_boot=100)
    np.testing.assert_allclose(paired["accuracy"], 0.5)
    single = bootstrap_metric_means(y, a, pair[0], num_classes=3, num_groups=3, n_boot=100)
    assert single["accuracy"].std() > 0


def test_basic_interval_corrects_the_bias_of_max_statistics():
    rng = np.random.default_rng(15)
    num_classes, num_groups, per_cell, evaluators = 6, 6, 100, 4
    true_acc = np.linspace(0.55, 0.85, num_groups)  # every class: gap 0.30
    y, a = _every_cell_filled(rng, num_classes, num_groups, per_cell, per_cell)
    pred = np.stack([np.where(rng.random(y.shape) < true_acc[a], y, (y + 1) % num_classes)
                     for _ in range(evaluators)])
    correct, total = cell_counts(y, a, pred, num_classes, num_groups)
    estimate = float(np.mean(deo(cell_accuracy(correct, total))[1]))
    assert estimate > 0.30  # the range of noisy accuracies overstates the true range
    boot = bootstrap_metric_means(y, a, pred, num_classes=num_classes, num_groups=num_groups, n_boot=400)
    assert boot["deo_avg"].mean() > estimate  # resampling overstates it once more
    plain_low, plain_high = percentile_interval(boot["deo_avg"], 0.95)
    assert plain_low > 0.30  # so the plain percentile interval misses the true gap
    low, high = basic_interval(boot["deo_avg"], estimate, 0.95, (0.0, 1.0))
    assert low <= 0.30 <= high
    assert low == pytest.approx(2 * estimate - plain_high) and high == pytest.approx(2 * estimate - plain_low)


def test_bootstrap_is_fast_for_a_full_audit():
    rng = np.random.default_rng(16)
    y, a = _every_cell_filled(rng, 10, 10, 100, 100)
    pred = np.stack([_noisy_predictions(rng, y, 10, 0.7) for _ in range(20)])
    train_y = rng.integers(0, 10, 4000)
    train_a = np.where(rng.random(4000) < 0.9, train_y, rng.integers(0, 10, 4000))
    start = time.perf_counter()
    boot = bootstrap_metric_means(y, a, pred, num_classes=10, num_groups=10, train_y=train_y, train_a=train_a,
                                  n_boot=1000)
    elapsed = time.perf_counter() - start
    assert len(y) == 10_000 and boot["accuracy"].shape == (1000,) and boot["bias_amplification"].shape == (1000,)
    assert elapsed < 2.0


def test_interval_over_evaluators_is_a_t_interval():
    rng = np.random.default_rng(17)
    y, a, pred = _audit_like(rng, 10, evaluators=4, num_classes=3)
    result = compute_metrics(y, a, pred, num_classes=3, num_groups=4, n_boot=0)
    for name in ("accuracy", "deo_max", "equalized_odds_difference"):
        values = np.array(result.metrics[name]["per_evaluator"])
        expected = stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
        assert result.metrics[name]["ci_models"] == pytest.approx([expected.low, expected.high])
        assert result.metrics[name]["std"] == pytest.approx(np.sqrt(np.mean((values - values.mean()) ** 2)))
        # Without a bootstrap (n_boot=0) the interval over evaluators is the only one there is.
        assert result.metrics[name]["ci_method"] == "t"
        assert result.metrics[name]["ci"] == result.metrics[name]["ci_models"]


# ----- the builder ------------------------------------------------------------------------------


def test_compute_metrics_per_evaluator_values_and_json():
    rng = np.random.default_rng(18)
    y, a, pred = _audit_like(rng, 12, evaluators=3, num_classes=3, num_groups=2)
    train_y = rng.integers(0, 3, 200)
    train_a = np.where(rng.random(200) < 0.8, train_y % 2, 1 - train_y % 2)
    result = compute_metrics(y, a, pred, num_classes=3, num_groups=2, train_y=train_y, train_a=train_a,
                             n_boot=100, min_group_size=5)
    assert tuple(result.metrics) == METRIC_NAMES
    for e in range(3):
        table = _loop_cell_accuracy(y, a, pred[e], 3, 2)
        loop_max, loop_avg = _loop_deo(table, 3, 2)
        assert result.metrics["deo_max"]["per_evaluator"][e] == pytest.approx(loop_max)
        assert result.metrics["deo_avg"]["per_evaluator"][e] == pytest.approx(loop_avg)
        assert result.metrics["accuracy"]["per_evaluator"][e] == pytest.approx(np.mean(pred[e] == y))
        frame = MetricFrame(metrics={"accuracy": accuracy_score}, y_true=y, y_pred=pred[e],
                            sensitive_features=pd.Series(a), control_features=pd.Series(y))
        assert result.metrics["deo_max"]["per_evaluator"][e] == pytest.approx(frame.difference()["accuracy"].max())
        ba, _ = _loop_bias_amplification(train_y, train_a, y, a, pred[e], 3, 2)
        assert result.metrics["bias_amplification"]["per_evaluator"][e] == pytest.approx(ba)
    for name, entry in result.metrics.items():
        assert entry["mean"] == pytest.approx(np.mean(entry["per_evaluator"]))
        assert all(isinstance(v, float) for v in [entry["mean"], entry["std"], *entry["ci"]])
    assert sum(cell["count"] for cell in result.cells) == len(y)
    first = next(c for c in result.cells if (c["class"], c["group"]) == (0, 1))
    cell_accs = [_loop_cell_accuracy(y, a, pred[e], 3, 2)[0, 1] for e in range(3)]
    assert first["accuracy"] == pytest.approx(np.mean(cell_accs))
    assert first["accuracy_std"] == pytest.approx(np.std(cell_accs))
    assert json.loads(json.dumps(result.to_dict()))["metrics"]["accuracy"]["mean"] == result.metrics["accuracy"]["mean"]


def test_invalid_inputs_raise_one_line_errors():
    y = np.array([0, 1, 1, 0])
    a = np.array([0, 0, 1, 1])
    with pytest.raises(InputError, match="predictions has 3 entries but y_true has 4"):
        compute_metrics(y, a, np.array([0, 1, 1]), num_classes=2, num_groups=2)
    with pytest.raises(InputError, match="y_true holds values outside 0..1"):
        compute_metrics(np.array([0, 2, 1, 0]), a, y, num_classes=2, num_groups=2)
    with pytest.raises(InputError, match="pass argmax of the logits"):
        compute_metrics(y, a, np.full((2, 4, 2), 0.5), num_classes=2, num_groups=2)
    with pytest.raises(ConfigError, match="confidence must be strictly between 0 and 1"):
        compute_metrics(y, a, y, num_classes=2, num_groups=2, confidence=95)
    with pytest.raises(ConfigError, match="n_boot must be"):
        compute_metrics(y, a, y, num_classes=2, num_groups=2, n_boot=-1)
    with pytest.raises(ConfigError, match="interval must be one of basic, percentile"):
        compute_metrics(y, a, y, num_classes=2, num_groups=2, interval="bca")
    with pytest.raises(InputError, match="class_names has 3 names"):
        compute_metrics(y, a, y, num_classes=2, num_groups=2, class_names=["a", "b", "c"])


# ----- amplification factor ---------------------------------------------------------------------


def test_amplification_ratio_and_difference():
    syn = {"deo_max": {"mean": 0.6}, "deo_avg": 0.3, "bias_amplification": {"mean": float("nan")}}
    ref = {"deo_max": {"mean": 0.2}, "deo_avg": RATIO_MIN_REFERENCE / 2, "bias_amplification": {"mean": 0.1}}
    out = amplification(syn, ref, names=("deo_max", "deo_avg", "bias_amplification"), reference="full")
    assert out["deo_max"]["ratio"] == pytest.approx(3.0)
    assert out["deo_max"]["difference"] == pytest.approx(0.4)
    assert out["deo_max"]["reference"] == "full"
    assert out["deo_avg"]["ratio"] is None  # reference near 0: the ratio would explode
    assert out["deo_avg"]["difference"] == pytest.approx(0.3 - RATIO_MIN_REFERENCE / 2)
    assert out["bias_amplification"] == {"ratio": None, "difference": None, "reference": "full"}
    with pytest.raises(InputError, match="metric 'accuracy_gap' is missing from the reference metrics"):
        amplification({"accuracy_gap": 0.1}, {}, names=("accuracy_gap",))


def test_amplification_of_two_audits():
    rng = np.random.default_rng(19)
    y, a = _every_cell_filled(rng, 3, 2, 30, 30)
    unfair = np.stack([np.where(a == 0, y, _noisy_predictions(rng, y, 3, 0.3)) for _ in range(2)])
    fairer = np.stack([_noisy_predictions(rng, y, 3, 0.8) for _ in range(2)])
    syn = compute_metrics(y, a, unfair, num_classes=3, num_groups=2, n_boot=0)
    ref = compute_metrics(y, a, fairer, num_classes=3, num_groups=2, n_boot=0)
    out = amplification(syn.metrics, ref.metrics)
    assert out["deo_max"]["difference"] == pytest.approx(syn.metrics["deo_max"]["mean"] - ref.metrics["deo_max"]["mean"])
    assert out["deo_max"]["difference"] > 0.3

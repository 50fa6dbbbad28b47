"""Metrics over several attributes, against fairlearn's MetricFrame with several sensitive features and a
written-out DEO over intersections, on data whose every cell accuracy is set by construction."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, demographic_parity_difference, equalized_odds_difference
from sklearn.metrics import accuracy_score

from ddaudit.metrics import attribute_metrics, compute_metrics

CLASSES, SIZES, PER_CELL = 3, (2, 3), 10


def known_cells(seed: int, drop: tuple[int, int] | None = None, classes: int = CLASSES):
    """Every (class, A, B) cell holds PER_CELL samples (none for *drop*); evaluator e gets exactly
    ``correct[e, y, a, b]`` of them right, the rest predicted as the next class."""
    rng = np.random.default_rng(seed)
    correct = rng.integers(0, PER_CELL + 1, size=(2, classes, *SIZES))
    y, attrs, preds = [], [], [[], []]
    for c, a, b in itertools.product(range(classes), range(SIZES[0]), range(SIZES[1])):
        if drop == (a, b):
            continue
        y += [c] * PER_CELL
        attrs += [[a, b]] * PER_CELL
        for e in range(2):
            right = correct[e, c, a, b]
            preds[e] += [c] * right + [(c + 1) % classes] * (PER_CELL - right)
    order = rng.permutation(len(y))  # rows in no particular order
    return np.asarray(y)[order], np.asarray(attrs)[order], np.asarray(preds)[:, order], correct


def written_deo(correct, keep) -> tuple[np.ndarray, np.ndarray]:
    """DEO_M / DEO_A per evaluator from per-(class, group) hit counts and sizes, FairDD's formulas by hand."""
    out_max, out_avg = [], []
    for e in range(correct.shape[0]):
        gaps = []
        for c in range(correct.shape[1]):
            accs = [correct[e, c, g] / keep[c, g] for g in range(correct.shape[2]) if keep[c, g] > 0]
            gaps.append(max(accs) - min(accs))
        out_max.append(max(gaps))
        out_avg.append(sum(gaps) / len(gaps))
    return np.asarray(out_max), np.asarray(out_avg)


def frame(y, p, features: pd.DataFrame, control: bool) -> MetricFrame:
    return MetricFrame(metrics=accuracy_score, y_true=y, y_pred=p, sensitive_features=features,
                       control_features=pd.Series(y, name="class") if control else None)


def test_intersection_and_marginal_views_match_fairlearn_and_the_written_formula():
    y, attrs, preds, correct = known_cells(0)
    result = attribute_metrics(y, attrs, preds, num_classes=CLASSES, attributes=["A", "B"],
                               values=[["a0", "a1"], ["b0", "b1", "b2"]], n_boot=50, min_group_size=5)
    features = pd.DataFrame({"A": attrs[:, 0], "B": attrs[:, 1]})
    inter = result["intersection"]
    assert [row["group_name"] for row in inter["per_group"]][:2] == ["A=a0, B=b0", "A=a0, B=b1"]

    # Written out: intersection cells are the (A, B) pairs in index order a * 3 + b.
    hits = correct.reshape(2, CLASSES, 6)
    sizes = np.full((CLASSES, 6), PER_CELL)
    deo_m, deo_a = written_deo(hits, sizes)
    assert inter["metrics"]["deo_max"]["per_evaluator"] == pytest.approx(deo_m.tolist(), abs=1e-12)
    assert inter["metrics"]["deo_avg"]["per_evaluator"] == pytest.approx(deo_a.tolist(), abs=1e-12)
    # Marginal A pools B: its cell accuracy is the sum of hits over B over 3 * PER_CELL.
    marginal_hits = correct.sum(axis=3)
    m_max, m_avg = written_deo(marginal_hits, np.full((CLASSES, 2), 3 * PER_CELL))
    assert result["per_attribute"]["A"]["metrics"]["deo_max"]["per_evaluator"] == pytest.approx(m_max.tolist(), abs=1e-12)
    assert result["per_attribute"]["A"]["metrics"]["deo_avg"]["per_evaluator"] == pytest.approx(m_avg.tolist(), abs=1e-12)

    for e, p in enumerate(preds):
        views = [(inter, ["A", "B"]), (result["per_attribute"]["A"], ["A"]), (result["per_attribute"]["B"], ["B"])]
        for view, columns in views:
            within = frame(y, p, features[columns], control=True)
            pooled = frame(y, p, features[columns], control=False)
            metrics = view["metrics"]
            assert metrics["deo_max"]["per_evaluator"][e] == pytest.approx(within.difference().max(), abs=1e-12)
            assert metrics["deo_avg"]["per_evaluator"][e] == pytest.approx(within.difference().mean(), abs=1e-12)
            assert metrics["worst_group_accuracy"]["per_evaluator"][e] == pytest.approx(within.by_group.min(), abs=1e-12)
            assert metrics["accuracy_gap"]["per_evaluator"][e] == pytest.approx(pooled.difference(), abs=1e-12)
            eod = max(equalized_odds_difference(y == k, p == k, sensitive_features=features[columns])
                      for k in range(CLASSES))
            dpd = max(demographic_parity_difference(y == k, p == k, sensitive_features=features[columns])
                      for k in range(CLASSES))
            assert metrics["equalized_odds_difference"]["per_evaluator"][e] == pytest.approx(eod, abs=1e-12)
            assert metrics["demographic_parity_difference"]["per_evaluator"][e] == pytest.approx(dpd, abs=1e-12)
    # Pooled accuracy of every intersection (mean over evaluators), in fairlearn's (A, B) order: the index order.
    pooled = np.mean([frame(y, p, features, control=False).by_group.to_numpy() for p in preds], axis=0)
    assert [row["accuracy"] for row in inter["per_group"]] == pytest.approx(pooled.tolist(), abs=1e-12)


def test_binary_target_deo_equals_fairlearn_equalized_odds_over_intersections():
    y, attrs, preds, _ = known_cells(3, classes=2)
    result = attribute_metrics(y, attrs, preds, num_classes=2, attributes=["A", "B"],
                               values=[["0", "1"], ["0", "1", "2"]], n_boot=0)
    features = pd.DataFrame({"A": attrs[:, 0], "B": attrs[:, 1]})
    for e, p in enumerate(preds):
        metrics = result["intersection"]["metrics"]
        assert metrics["deo_max"]["per_evaluator"][e] == pytest.approx(
            equalized_odds_difference(y, p, sensitive_features=features, agg="worst_case"), abs=1e-12)
        assert metrics["deo_avg"]["per_evaluator"][e] == pytest.approx(
            equalized_odds_difference(y, p, sensitive_features=features, agg="mean"), abs=1e-12)


def test_empty_intersections_are_listed_and_left_out_of_the_gaps():
    y, attrs, preds, correct = known_cells(1, drop=(1, 2))
    result = attribute_metrics(y, attrs, preds, num_classes=CLASSES, attributes=["A", "B"],
                               values=[["0", "1"], ["0", "1", "2"]], n_boot=0, min_group_size=5)
    inter = result["intersection"]
    assert inter["empty_cells"] == [[c, 5, 0] for c in range(CLASSES)]
    assert inter["per_group"][5]["count"] == 0 and inter["per_group"][5]["accuracy"] is None
    assert any("empty" in w for w in inter["warnings"])
    sizes = np.full((CLASSES, 6), PER_CELL)
    sizes[:, 5] = 0
    deo_m, _ = written_deo(correct.reshape(2, CLASSES, 6), sizes)
    assert inter["metrics"]["deo_max"]["per_evaluator"] == pytest.approx(deo_m.tolist(), abs=1e-12)
    # The marginals still see every value of each attribute (A=1 now pools two B values).
    assert result["per_attribute"]["A"]["empty_cells"] == [] and result["per_attribute"]["B"]["empty_cells"] == []
    assert [row["count"] for row in result["per_attribute"]["A"]["per_group"]] == [90, 60]


def test_each_view_has_the_single_attribute_intervals():
    y, attrs, preds, _ = known_cells(2)
    result = attribute_metrics(y, attrs, preds, num_classes=CLASSES, attributes=["A", "B"],
                               values=[["0", "1"], ["0", "1", "2"]], n_boot=100, seed=4, min_group_size=5)
    direct = compute_metrics(y, attrs[:, 1], preds, num_classes=CLASSES, num_groups=3, n_boot=100, seed=4,
                             min_group_size=5)
    view = result["per_attribute"]["B"]["metrics"]
    for name in ("deo_max", "worst_group_accuracy", "accuracy"):
        assert view[name]["ci"] == direct.metrics[name]["ci"]
        assert view[name].get("interval") == direct.metrics[name].get("interval")
    low, high = view["deo_max"]["interval"]
    assert low <= view["deo_max"]["mean"] <= high and high - low > 0

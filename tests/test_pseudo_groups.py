"""Pseudo-groups from embeddings, the groups file, and the recovery measures, on data with known answers."""

from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np
import pytest
import torch

from ddaudit.data import GroupTensors, RealData
from ddaudit.errors import ConfigError, InputError
from ddaudit.hooks import patchers
from ddaudit.mitigate import pseudo_groups as pg
from ddaudit.mitigate import recovery
from ddaudit.mitigate.pseudo_groups import load_groups, median_pairwise_distance, pseudo_groups, save_groups
from ddaudit.mitigate.recovery import group_recovery, majority_group_mask, recovery_report, weight_recovery


def _blob(center, n, spread, generator):
    return torch.tensor(center, dtype=torch.float32) + spread * torch.randn(n, len(center), generator=generator)


def _ari_by_pair_counting(truth, pred) -> float:
    """Hubert & Arabie's adjusted Rand index from its contingency-table definition."""
    truth, pred = list(truth), list(pred)
    pairs = comb(len(truth), 2)
    same_both = sum(1 for i, j in combinations(range(len(truth)), 2) if truth[i] == truth[j] and pred[i] == pred[j])
    same_truth = sum(comb(truth.count(v), 2) for v in set(truth))
    same_pred = sum(comb(pred.count(v), 2) for v in set(pred))
    expected = same_truth * same_pred / pairs
    maximum = (same_truth + same_pred) / 2
    return 1.0 if maximum == expected else (same_both - expected) / (maximum - expected)


@pytest.fixture
def biased_classes():
    """Class 0: a dominant blob, two small blobs, two outliers. Class 1: two equal blobs."""
    g = torch.Generator().manual_seed(0)
    class0 = [
        _blob([0.0, 0.0], 40, 0.10, g),
        _blob([5.0, 0.0], 6, 0.05, g),
        _blob([0.0, 5.0], 4, 0.05, g),
        torch.tensor([[-9.0, 3.0], [4.0, -9.0]]),
    ]
    class1 = [_blob([20.0, 20.0], 20, 0.10, g), _blob([26.0, 20.0], 20, 0.10, g)]
    x = torch.cat(class0 + class1)
    truth = torch.tensor([0] * 40 + [1] * 6 + [2] * 4 + [3, 4] + [0] * 20 + [1] * 20)
    y = torch.tensor([0] * 52 + [1] * 40)
    order = torch.randperm(len(y), generator=g)
    return x[order], y[order], truth[order]


def test_dbscan_separates_a_dominant_group_from_small_groups_and_outliers(biased_classes):
    x, y, truth = biased_classes
    groups = pseudo_groups(x, y)
    rows = y == 0
    assert _ari_by_pair_counting(truth[rows].tolist(), groups[rows].tolist()) == pytest.approx(1.0)
    sizes = torch.bincount(groups[rows]).tolist()
    assert sizes == [40, 6, 4, 1, 1]
    assert torch.equal(groups[rows & (truth == 0)], torch.zeros(40, dtype=torch.long))


def test_balanced_class_stays_one_group_with_the_median_rule_but_splits_with_eps(biased_classes):
    x, y, truth = biased_classes
    rows = y == 1
    assert torch.unique(pseudo_groups(x, y)[rows]).tolist() == [0]
    split = pseudo_groups(x, y, eps=1.0)[rows]
    assert _ari_by_pair_counting(truth[rows].tolist(), split.tolist()) == pytest.approx(1.0)


def test_kmeans_finds_the_requested_number_of_groups_deterministically(biased_classes):
    x, y, truth = biased_classes
    first = pseudo_groups(x, y, method="kmeans", n_groups=2, seed=1)
    assert torch.equal(first, pseudo_groups(x, y, method="kmeans", n_groups=2, seed=1))
    rows = y == 1
    assert _ari_by_pair_counting(truth[rows].tolist(), first[rows].tolist()) == pytest.approx(1.0)


def test_median_pairwise_distance_matches_numpy():
    x = torch.randn(30, 4, generator=torch.Generator().manual_seed(2))
    points = x.numpy().astype(np.float64)
    distances = [np.linalg.norm(points[i] - points[j]) for i, j in combinations(range(30), 2)]
    assert median_pairwise_distance(x) == pytest.approx(float(np.median(distances)), rel=1e-6)
    big = torch.randn(pg.MEDIAN_SAMPLE + 500, 3, generator=torch.Generator().manual_seed(3))
    assert median_pairwise_distance(big, seed=1) == median_pairwise_distance(big, seed=1)


def test_group_recovery_is_the_size_weighted_per_class_ari():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 90)
    true = rng.integers(0, 3, 90)
    pseudo = np.where(rng.random(90) < 0.7, true, rng.integers(0, 4, 90))
    summary = group_recovery(torch.as_tensor(pseudo), torch.as_tensor(true), torch.as_tensor(y))
    expected = {c: _ari_by_pair_counting(true[y == c].tolist(), pseudo[y == c].tolist()) for c in range(3)}
    for c in range(3):
        assert summary["ari_per_class"][c] == pytest.approx(expected[c], abs=1e-9)
    weighted = sum(expected[c] * (y == c).sum() for c in range(3)) / 90
    assert summary["ari"] == pytest.approx(weighted, abs=1e-9)
    assert summary["num_pseudo_groups"] == {c: len(set(pseudo[y == c])) for c in range(3)}
    assert group_recovery(true, true)["ari"] == pytest.approx(1.0)


def test_weight_recovery_by_hand():
    weights = torch.tensor([1.0, 1.0, 0.5, 3.0, 1.0, 6.0])
    aligned = torch.tensor([True, True, True, False, True, False])
    summary = weight_recovery(weights, aligned)
    assert summary["mean_aligned"] == pytest.approx(3.5 / 4)
    assert summary["mean_conflicting"] == pytest.approx(4.5)
    assert summary["ratio"] == pytest.approx(4.5 / (3.5 / 4))
    assert (summary["n_conflicting"], summary["n_aligned"]) == (2, 4)
    conflicting, plain = weights[~aligned].tolist(), weights[aligned].tolist()
    wins = sum(1.0 if c > a else 0.5 if c == a else 0.0 for c in conflicting for a in plain)
    assert summary["auc"] == pytest.approx(wins / (len(conflicting) * len(plain)))
    tied = weight_recovery(torch.ones(6), aligned)
    assert tied["ratio"] == pytest.approx(1.0) and tied["auc"] == pytest.approx(0.5)


def test_majority_group_mask():
    y = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2])
    a = torch.tensor([4, 4, 1, 2, 3, 3, 3, 0])
    assert majority_group_mask(y, a).tolist() == [True, True, False, False, True, True, True, True]


def test_groups_file_round_trip_and_is_read_by_the_patchers(tmp_path, biased_classes):
    x, y, truth = biased_classes
    groups = pseudo_groups(x, y)
    recovery = group_recovery(groups, truth, y)
    path = save_groups(tmp_path / "g.pt", groups, settings={"method": "dbscan"}, dataset="blobs", labels=y,
                       recovery=recovery)
    loaded = load_groups(path)
    assert torch.equal(loaded["groups"], groups) and torch.equal(loaded["labels"], y)
    assert loaded["settings"] == {"method": "dbscan"} and loaded["dataset"] == "blobs"
    assert loaded["recovery"] == recovery
    np.testing.assert_array_equal(patchers.load_groups(path), groups.numpy())
    with pytest.raises(ConfigError) as info:
        save_groups(path, groups, settings={}, dataset="blobs")
    assert str(info.value) == pg.ERR_FILE_EXISTS.format(path=path)
    save_groups(path, groups[:3], settings={}, dataset="blobs", force=True)
    assert len(load_groups(path)["groups"]) == 3


def test_errors(tmp_path):
    x, y = torch.randn(10, 2), torch.zeros(10, dtype=torch.long)
    cases = [
        (ConfigError, pg.ERR_METHOD.format(value="hdbscan"), lambda: pseudo_groups(x, y, method="hdbscan")),
        (ConfigError, pg.ERR_N_GROUPS.format(value=None), lambda: pseudo_groups(x, y, method="kmeans")),
        (ConfigError, pg.ERR_POSITIVE.format(name="eps", value=-1.0), lambda: pseudo_groups(x, y, eps=-1.0)),
        (ConfigError, pg.ERR_MIN_SAMPLES.format(value=0), lambda: pseudo_groups(x, y, min_samples=0)),
        (InputError, pg.ERR_SHAPES.format(embeddings=(10, 2), labels=(9,)), lambda: pseudo_groups(x, y[:9])),
        (InputError, pg.ERR_FILE_MISSING.format(path=tmp_path / "none.pt"), lambda: load_groups(tmp_path / "none.pt")),
    ]
    for error, message, call in cases:
        with pytest.raises(error) as info:
            call()
        assert str(info.value) == message
    torch.save({"weights": torch.ones(3)}, tmp_path / "w.pt")
    with pytest.raises(InputError) as info:
        load_groups(tmp_path / "w.pt")
    assert str(info.value) == pg.ERR_FILE_CONTENT.format(path=tmp_path / "w.pt")
    with pytest.raises(InputError):
        weight_recovery(torch.ones(3), torch.ones(3, dtype=torch.bool))
    with pytest.raises(InputError):
        group_recovery(torch.zeros(3), torch.zeros(4))


def _real(y, a, meta=None, num_groups=3):
    train = GroupTensors(torch.zeros(len(y), 1, 2, 2), torch.as_tensor(y), torch.as_tensor(a))
    return RealData(name="toy", test=train, train=train, num_classes=2, num_groups=num_groups, channel=1,
                    im_size=(2, 2), mean=None, std=None, class_names=["0", "1"],
                    group_names=[str(g) for g in range(num_groups)], meta=meta or {})


def test_recovery_report_uses_the_recorded_alignment_or_the_majority_group():
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    a = [0, 0, 0, 2, 1, 1, 1, 0]
    weights = torch.tensor([1.0, 1.0, 0.5, 3.0, 0.5, 0.5, 1.0, 2.0])
    groups = torch.tensor([0, 0, 0, 1, 0, 0, 0, 1])
    report = recovery_report(_real(y, a), weights=weights, groups=groups)
    aligned = majority_group_mask(torch.tensor(y), torch.tensor(a))
    assert report["weights"] == weight_recovery(weights, aligned)
    assert report["pseudo_groups"]["ari"] == pytest.approx(1.0)
    recorded = torch.tensor([True, True, False, False, True, True, True, False])
    assert recovery_report(_real(y, a, {"bias_aligned_train": recorded}), weights=weights)["weights"] == weight_recovery(
        weights, recorded
    )
    assert "weights" not in recovery_report(_real(y, a, {"bias_aligned_train": torch.ones(8, dtype=torch.bool)}),
                                            weights=weights)
    with pytest.raises(InputError) as info:
        recovery_report(_real(y, a, num_groups=1), weights=weights)
    assert str(info.value) == recovery.ERR_NO_TRUE_GROUPS.format(name="toy")
    with pytest.raises(InputError):
        recovery_report(_real(y, a), groups=groups[:5])

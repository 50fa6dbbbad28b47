"""The composition probe: formulas against scipy/by-hand values, then the probe on
sets of known composition built from real training digits, its cache, and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

import ddaudit
from ddaudit.data import load_real
from ddaudit.io import SyntheticSet
from ddaudit.probe import (
    cell_balanced_weights,
    composition,
    content_hash,
    js_divergence,
    mixture_weights,
    normalized_entropy,
)

DDAUDIT = str(Path(sys.executable).parent / "ddaudit")
SMALL = {"n_train": 2000, "n_test": 60}
SMALL_FLAGS = ["--real-option", "n_train=2000", "--real-option", "n_test=60"]


# ---------------------------------------------------------------- formulas


def test_composition_summaries_match_hand_computation():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    groups = np.array([0, 0, 0, 1, 0, 1, 2, 2])
    real_y = np.array([0] * 10 + [1] * 10)
    real_a = np.array([0] * 9 + [1] + [0] * 5 + [1] * 5)
    comp = composition(labels, groups, num_classes=3, num_groups=3, real_labels=real_y, real_groups=real_a)
    c0, c1, c2 = comp["classes"]
    assert c0["counts"] == [3, 1, 0] and c0["majority_share"] == pytest.approx(0.75)
    assert c1["shares"] == pytest.approx([0.25, 0.25, 0.5]) and c1["majority_group"] == 2
    assert c0["groups_covered"] == 2 and c1["groups_covered"] == 3
    # entropy written out: -sum p log p / log G
    h0 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(3)
    assert c0["normalized_entropy"] == pytest.approx(h0)
    # Jensen-Shannon divergence in bits written out, and scipy's distance squared
    p, q = np.array([0.75, 0.25, 0.0]), np.array([0.9, 0.1, 0.0])
    m = (p + q) / 2
    kl = lambda a, b: sum(x * math.log2(x / y) for x, y in zip(a, b) if x > 0)
    assert c0["js_real"] == pytest.approx(0.5 * kl(p, m) + 0.5 * kl(q, m))
    assert c0["js_real"] == pytest.approx(jensenshannon(p, q, base=2) ** 2)
    assert c0["real_majority_share"] == pytest.approx(0.9)
    assert c2["images"] == 0  # no synthetic images: left out of the summaries
    assert comp["mean_majority_share"] == pytest.approx((0.75 + 0.5) / 2)
    assert comp["max_majority_share"] == pytest.approx(0.75)
    assert comp["real_mean_majority_share"] == pytest.approx((0.9 + 0.5) / 2)


def test_soft_shares_are_mean_probabilities_per_class():
    labels = np.array([0, 0, 1])
    proba = np.array([[0.6, 0.4], [0.2, 0.8], [1.0, 0.0]])
    comp = composition(labels, proba.argmax(1), num_classes=2, num_groups=2, syn_proba=proba)
    assert comp["classes"][0]["soft_shares"] == pytest.approx([0.4, 0.6])
    assert comp["classes"][0]["shares"] == pytest.approx([0.5, 0.5])  # hard counts: one image each
    assert comp["mean_soft_majority_share"] == pytest.approx((0.6 + 1.0) / 2)


def test_mixture_weights_recover_a_known_mixture_and_match_a_generic_solver():
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    means = rng.normal(size=(4, 12))  # four groups, twelve features: the mixture is identifiable
    truth = np.array([0.5, 0.3, 0.2, 0.0])
    assert mixture_weights(truth @ means, means) == pytest.approx(truth, abs=1e-6)
    assert mixture_weights(means[2], means) == pytest.approx([0, 0, 1, 0], abs=1e-6)
    # a target off the simplex's span: the projection, checked against SLSQP on the same problem
    target = rng.normal(size=12) * 3
    found = mixture_weights(target, means)
    solved = minimize(lambda w: np.sum((target - w @ means) ** 2), np.full(4, 0.25), method="SLSQP",
                      bounds=[(0, 1)] * 4, constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
                      options={"ftol": 1e-12, "maxiter": 500})
    assert found.sum() == pytest.approx(1.0) and (found >= 0).all()
    assert found == pytest.approx(solved.x, abs=1e-4)


def test_majority_weight_reads_the_class_mean_feature_not_the_counts():
    # class 0: three images near group 0's mean and one far on group 1's side, so that the class mean
    # sits exactly halfway: counts say 0.75, the mixture says 0.5 for the real majority group 0
    group_means = np.full((2, 2, 2), np.nan)
    group_means[0, 0], group_means[0, 1] = [0.0, 0.0], [4.0, 0.0]
    group_means[1, 0], group_means[1, 1] = [0.0, 1.0], [0.0, 3.0]
    features = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [5.0, 0.0], [0.0, 1.0]])
    labels = np.array([0, 0, 0, 0, 1])
    groups = np.array([0, 0, 0, 1, 0])
    real_y, real_a = np.array([0] * 10 + [1]), np.array([0] * 9 + [1, 1])  # class 0: 9 in group 0; class 1: group 1
    comp = composition(labels, groups, num_classes=2, num_groups=2, real_labels=real_y, real_groups=real_a,
                       syn_features=features, real_group_means=group_means)
    c0, c1 = comp["classes"]
    assert c0["majority_share"] == pytest.approx(0.75)
    assert c0["mixture_weights"] == pytest.approx([0.5, 0.5], abs=1e-6) and c0["majority_weight"] == pytest.approx(0.5)
    # class 1's real majority group is 1 (its one real row); its image sits on group 0's mean
    assert c1["real_majority_group"] == 1 and c1["majority_weight"] == pytest.approx(0.0, abs=1e-6)
    assert comp["mean_majority_weight"] == pytest.approx(0.25) and comp["max_majority_weight"] == pytest.approx(0.5)
    # a group without real rows in a class gets no weight
    group_means[1, 0] = np.nan
    comp = composition(labels, groups, num_classes=2, num_groups=2, syn_features=features,
                       real_group_means=group_means)
    assert comp["classes"][1]["mixture_weights"] == [0.0, 1.0]


def _weights_case(means: np.ndarray, target: np.ndarray):
    """One class whose real groups have *means* (G, D) and whose synthetic mean is *target*."""
    group_means = means[None].copy()
    return composition(np.zeros(1, dtype=int), np.zeros(1, dtype=int), num_classes=1, num_groups=len(means),
                       real_labels=np.zeros(len(means), dtype=int), real_groups=np.arange(len(means)),
                       syn_features=target[None], real_group_means=group_means)


def test_mixture_weights_do_not_depend_on_group_order():
    rng = np.random.default_rng(1)
    means = rng.normal(size=(4, 6))
    means[3] = means[1]  # two identical groups: the weight between them is not determined by the features
    target = 0.4 * means[0] + 0.6 * means[1] + 0.05 * rng.normal(size=6)
    base = mixture_weights(target, means)
    for order in ([3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]):
        assert mixture_weights(target, means[order]) == pytest.approx(base[order], abs=1e-6)
    assert base[1] == pytest.approx(base[3], abs=1e-6)  # identical groups share the weight


def test_identical_group_means_are_unidentifiable_and_left_out_of_the_gated_mean():
    group_means = np.full((2, 2, 3), np.nan)
    group_means[0] = [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]  # class 0: two groups with one mean
    group_means[1] = [[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]  # class 1: separable, halfway mix
    features = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    real_y, real_a = np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0, 1, 0, 0, 1])
    comp = composition(np.array([0, 1]), np.array([0, 0]), num_classes=2, num_groups=2, real_labels=real_y,
                       real_groups=real_a, syn_features=features, real_group_means=group_means)
    c0, c1 = comp["classes"]
    assert c0["weight_status"] == "unidentifiable" and c0["weight_identified"] is False
    assert c1["weight_status"] == "identified" and c1["majority_weight"] == pytest.approx(0.5, abs=1e-6)
    assert comp["mean_majority_weight"] == pytest.approx(0.5, abs=1e-6)
    assert comp["weight_classes"] == [1] and comp["weight_excluded"] == [{"class": 0, "status": "unidentifiable"}]
    # near-collinear means: a group that is (almost) a mixture of the others is not identified either
    means = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 1e-4]])
    assert _weights_case(means, np.array([1.0, 0.0]))["classes"][0]["weight_status"] == "unidentifiable"


def test_one_group_classes_are_left_out_of_the_gated_mean():
    group_means = np.full((2, 2, 2), np.nan)
    group_means[0, 0] = [0.0, 0.0]  # class 0: a single real group, weight 1 by construction
    group_means[1] = [[0.0, 0.0], [1.0, 1.0]]
    features = np.array([[0.0, 0.0], [0.0, 0.0]])
    comp = composition(np.array([0, 1]), np.array([0, 0]), num_classes=2, num_groups=2,
                       real_labels=np.array([0, 1, 1, 1]), real_groups=np.array([0, 0, 0, 1]),
                       syn_features=features, real_group_means=group_means)
    c0, c1 = comp["classes"]
    assert c0["weight_status"] == "one_group" and c0["majority_weight"] == pytest.approx(1.0)
    assert c1["majority_weight"] == pytest.approx(1.0, abs=1e-6)
    assert comp["weight_classes"] == [1]
    # the old mean would have been 1.0 from both; now class 1 alone (and a real mix reads lower)
    comp = composition(np.array([0, 1]), np.array([0, 0]), num_classes=2, num_groups=2,
                       real_labels=np.array([0, 1, 1, 1]), real_groups=np.array([0, 0, 0, 1]),
                       syn_features=np.array([[0.0, 0.0], [0.5, 0.5]]), real_group_means=group_means)
    assert comp["mean_majority_weight"] == pytest.approx(0.5, abs=1e-6)


def test_a_mean_outside_the_hull_has_a_positive_residual():
    means = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    inside = _weights_case(means, np.array([0.5, 0.5, 0.0]))["classes"][0]
    outside = _weights_case(means, np.array([0.5, 0.5, 3.0]))["classes"][0]
    assert inside["hull_residual"] == pytest.approx(0.0, abs=1e-6)
    spread = np.sqrt(np.mean(np.sum((means - means.mean(0)) ** 2, axis=1)))
    assert outside["hull_residual"] == pytest.approx(3.0 / spread, rel=1e-4)  # straight above the hull
    # scale-free: the same picture in other units reads the same residual
    assert _weights_case(10 * means, 10 * np.array([0.5, 0.5, 3.0]))["classes"][0]["hull_residual"] == \
        pytest.approx(outside["hull_residual"], rel=1e-6)
    # beyond a vertex but in the plane: outside the simplex, residual positive too
    assert _weights_case(means, np.array([3.0, -1.0, 0.0]))["classes"][0]["hull_residual"] > 0.3


def test_a_half_half_mixture_with_small_noise_is_recovered_on_separated_means():
    rng = np.random.default_rng(2)
    means = rng.normal(size=(3, 20)) * 3
    for trial in range(20):
        target = 0.5 * means[0] + 0.5 * means[2] + 1e-3 * rng.normal(size=20)
        assert mixture_weights(target, means) == pytest.approx([0.5, 0.0, 0.5], abs=0.01)


def test_entropy_and_divergence_bounds():
    assert normalized_entropy(np.array([1.0, 0, 0, 0])) == 0.0
    assert normalized_entropy(np.full(4, 0.25)) == pytest.approx(1.0)
    assert js_divergence(np.array([1.0, 0]), np.array([0, 1.0])) == pytest.approx(1.0)
    assert js_divergence(np.array([0.3, 0.7]), np.array([0.3, 0.7])) == pytest.approx(0.0, abs=1e-12)


def test_cell_balanced_weights_give_every_cell_the_same_mass():
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    a = torch.tensor([0, 0, 0, 1, 1, 1, 0])
    w = cell_balanced_weights(y, a, num_groups=2)
    mass = {}
    for yi, ai, wi in zip(y.tolist(), a.tolist(), w.tolist()):
        mass[(yi, ai)] = mass.get((yi, ai), 0) + wi
    assert all(v == pytest.approx(1.0) for v in mass.values()) and len(mass) == 4


# ---------------------------------------------------------------- the probe on known compositions


@pytest.fixture(scope="module")
def real():
    return load_real("cmnist-fg", **SMALL)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("probe-cache")


def pick(real, per_class: int, balanced: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Training rows: all in the class's own colour, or spread over every colour."""
    xs, ys = [], []
    for cls in range(real.num_classes):
        in_class = real.train.y == cls
        if balanced:
            rows = [int(torch.nonzero(in_class & (real.train.a == g))[0]) for g in range(real.num_groups)]
            rows = (rows * per_class)[:per_class]
        else:
            rows = torch.nonzero(in_class & (real.train.a == cls)).flatten()[:per_class].tolist()
        xs.append(real.train.x[rows])
        ys.append(torch.full((len(rows),), cls))
    return torch.cat(xs), torch.cat(ys)


@pytest.fixture(scope="module")
def probed(real, cache):
    out = {}
    for name, balanced in (("aligned", False), ("balanced", True)):
        x, y = pick(real, 10, balanced)
        out[name] = ddaudit.probe(SyntheticSet(x, y, "tensors", name), real, cache_dir=cache, device="cpu")
    return out


def test_probe_reads_known_compositions(probed, real):
    aligned, balanced = probed["aligned"].composition, probed["balanced"].composition
    assert aligned["mean_majority_share"] >= 0.9
    assert balanced["mean_majority_share"] <= 0.35
    # the class means read as mixtures of the real colours' means: the majority colour alone, or all ten
    assert aligned["mean_majority_weight"] >= 0.9
    assert balanced["mean_majority_weight"] <= 0.35
    assert aligned["classifier"]["accuracy"] >= 0.95
    assert balanced["mean_normalized_entropy"] > 0.8 > aligned["mean_normalized_entropy"] + 0.5
    # every aligned class is read as its own colour, the real class's majority group
    for entry in aligned["classes"]:
        assert entry["majority_group"] == entry["class"] == entry["real_majority_group"]
    # the shares are the predicted groups counted by hand
    groups = np.array(balanced["images"]["group"])
    labels = np.array(balanced["images"]["class"])
    for entry in balanced["classes"]:
        counts = np.bincount(groups[labels == entry["class"]], minlength=real.num_groups)
        assert entry["counts"] == counts.tolist()


def test_classifier_is_cached_by_content(probed, real, cache):
    # trained or loaded, the report is the same (same seed, same JSON): no run-dependent field
    assert "cached" not in probed["aligned"].composition["classifier"]
    x, y = pick(real, 10, False)
    again = ddaudit.probe(SyntheticSet(x, y, "tensors", "again"), real, cache_dir=cache, device="cpu")
    assert torch.equal(again.groups, probed["aligned"].groups)
    assert len(list(Path(cache).glob("probe-classifier-*.pt"))) == 1
    other = load_real("cmnist-fg", bias_ratio=0.8, **SMALL)
    assert content_hash(other.train, other.test) != content_hash(real.train, real.test)


def test_uncertain_images_are_those_below_the_threshold(real, probed, cache):
    confidence = probed["balanced"].confidence
    threshold = float(confidence.median())
    x, y = pick(real, 10, True)
    result = ddaudit.probe(SyntheticSet(x, y, "tensors", "b"), real, cache_dir=cache, device="cpu",
                           min_confidence=threshold)
    flagged = result.composition["uncertain"]
    expected = torch.nonzero(confidence < threshold).flatten().tolist()
    assert flagged["indices"] == expected and flagged["count"] == len(expected)
    assert sum(c["uncertain"] for c in result.composition["classes"]) == len(expected)


def test_probe_is_deterministic_without_cache(real):
    x, y = pick(real, 3, True)
    syn = SyntheticSet(x, y, "tensors", "d")
    first = ddaudit.probe(syn, real, cache_dir=None, device="cpu", classifier={"epochs": 1})
    second = ddaudit.probe(syn, real, cache_dir=None, device="cpu", classifier={"epochs": 1})
    assert torch.equal(first.confidence, second.confidence)
    assert first.composition == second.composition


def multicoloured(real, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Test digits painted in four colours, one per quadrant, as blended distilled digits look.

    The group-balanced test split renders every digit in every colour, colour-major."""
    n = len(real.test) // real.num_groups
    half = real.test.x.shape[2] // 2
    images = real.test.x[:count].clone()
    for colour, (top, left) in enumerate([(0, 0), (0, half), (half, 0), (half, half)]):
        images[:, :, top:top + half, left:left + half] = \
            real.test.x[colour * n:colour * n + count, :, top:top + half, left:left + half]
    return images, real.test.y[:count].clone()


def test_blended_images_are_unknown_and_real_ones_known(real, probed, cache):
    x, y = multicoloured(real, 60)
    result = ddaudit.probe(SyntheticSet(x, y, "tensors", "blended"), real, cache_dir=cache, device="cpu", n_boot=50)
    comp = result.composition
    # a large share of the blends is flagged: many times the about 1 % of real images the threshold allows
    assert comp["unknown_images"] >= 0.3 * len(x)
    assert sum(c["unknown"] for c in comp["classes"]) == comp["unknown_images"] == comp["unknown"]["count"]
    # shares count the known images only; the counts and the unknown count add up to the class
    for entry in comp["classes"]:
        assert sum(entry["counts"]) + entry["unknown"] == entry["images"] == int((y == entry["class"]).sum())
    # real training digits (the aligned set) are known
    assert probed["aligned"].composition["unknown_images"] <= 0.1 * len(probed["aligned"].labels)


def test_false_unknown_rate_is_near_the_calibration_quantile(real, probed, cache):
    from ddaudit.probe._classifier import ClassifierSettings, add_noise, embed_features, load_or_train, real_cell_features
    from ddaudit.probe._unknown import fit_detector

    trained = load_or_train(real.train, real.test, num_groups=real.num_groups, channel=real.channel,
                            im_size=tuple(real.im_size), settings=ClassifierSettings(),
                            key_extra={"real": real.name, "space": "normalized"}, cache_dir=cache)
    assert trained.cached  # the probe fixture trained it
    cells = real_cell_features(trained.model, real.train, num_classes=real.num_classes, num_groups=real.num_groups)
    noisy = embed_features(trained.model, add_noise(real.test.x, 1.0, torch.Generator().manual_seed(5))).double().numpy()
    order = np.random.default_rng(0).permutation(len(noisy))
    calibrate, held_out = noisy[order[::2]], noisy[order[1::2]]
    for quantile, low, high in ((0.99, 0.0, 0.05), (0.9, 0.03, 0.2)):
        detector = fit_detector(cells.features, cells.cells, calibrate, quantile=quantile)
        rate = float(detector.unknown(held_out).mean())
        assert low <= rate <= high, (quantile, rate)


def _known_mixture(rng, images: int, share: float = 0.7, rows: int = 200, dim: int = 6):
    """Two classes, two groups with separated means; each synthetic image is drawn from group 0 with
    probability *share* (its true group is what the classifier would say): true share and weight = *share*."""
    from ddaudit.probe._classifier import CellFeatures

    centres = np.array([[0.0] * dim, [3.0] + [0.0] * (dim - 1)])
    labels, groups, feats = [], [], []
    for cls in range(2):
        for g in range(2):
            labels += [cls] * rows
            groups += [g] * rows
            feats.append(centres[g] + rng.normal(size=(rows, dim)))
    cells = CellFeatures(np.vstack(feats), np.array(labels), np.array(groups), 2, 2)
    syn_labels = np.repeat([0, 1], images)
    syn_groups = (rng.random(2 * images) >= share).astype(int)
    syn_features = centres[syn_groups] + rng.normal(size=(2 * images, dim))
    comp = composition(syn_labels, syn_groups, num_classes=2, num_groups=2, real_labels=np.array(labels),
                       real_groups=np.array(groups), syn_features=syn_features, real_group_means=cells.means())
    return comp, syn_labels, syn_groups, syn_features, cells


def test_intervals_contain_the_truth_and_shrink_with_more_images():
    from ddaudit.probe._intervals import probe_intervals

    rng = np.random.default_rng(3)
    widths = {}
    for images in (15, 150):
        hits = {"share": 0, "weight": 0}
        width = {"share": [], "weight": []}
        for trial in range(20):
            comp, labels, groups, features, cells = _known_mixture(rng, images)
            out = probe_intervals(comp, labels, groups, np.ones(len(labels), bool), features, cells, n_boot=200,
                                  seed=trial)
            assert out["interval_method"] == "bootstrap_percentile"
            for key in hits:
                low, high = out[f"mean_majority_{key}_interval"]
                assert low <= comp[f"mean_majority_{key}"] <= high
                hits[key] += low <= 0.7 <= high
                width[key].append(high - low)
        assert hits["share"] >= 16 and hits["weight"] >= 16, (images, hits)
        widths[images] = {k: float(np.mean(v)) for k, v in width.items()}
    for key in ("share", "weight"):
        assert widths[150][key] < 0.5 * widths[15][key]


# ---------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def saved_sets(real, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sets")
    paths = {}
    for name, balanced in (("aligned", False), ("balanced", True)):
        x, y = pick(real, 10, balanced)
        paths[name] = folder / f"res_{name}.pt"
        torch.save({"data": [[x, y]], "accs_all_exps": {}}, paths[name])
    return paths


def run_probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DDAUDIT, "probe", *args], capture_output=True, text=True, timeout=600)


def test_cli_json_and_gate(saved_sets, cache, tmp_path):
    out = tmp_path / "aligned.json"
    proc = run_probe(str(saved_sets["aligned"]), "--real", "cmnist-fg", *SMALL_FLAGS, "--cache-dir", str(cache),
                     "--json", str(out), "--max-majority-share", "0.5", "--device", "cpu")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(out.read_text())
    comp = report["composition"]
    assert comp["mean_majority_share"] >= 0.9 and comp["max_majority_share"] == 1.0
    assert len(comp["classes"]) == 10 and len(comp["classes"][0]["shares"]) == 10
    assert report["gates"][0]["name"] == "max_majority_share" and report["status"] == "fail"
    assert "predicted majority" in proc.stderr and "--max-majority-share" in proc.stderr

    assert "majority weight" in proc.stderr
    for key in ("mean_majority_share_interval", "mean_majority_weight_interval"):
        low, high = comp[key]
        assert low <= comp[key.replace("_interval", "")] <= high
    assert comp["interval_method"] == "bootstrap_percentile"
    assert all({"unknown", "weight_identified", "hull_residual"} <= set(c) for c in comp["classes"])

    proc = run_probe(str(saved_sets["balanced"]), "--real", "cmnist-fg", *SMALL_FLAGS, "--cache-dir", str(cache),
                     "--max-majority-share", "0.5", "--max-majority-weight", "0.5", "--device", "cpu",
                     "--json", str(tmp_path / "balanced.json"))
    assert proc.returncode == 0, proc.stderr
    gates = {g["name"]: g for g in json.loads((tmp_path / "balanced.json").read_text())["gates"]}
    assert gates["max_majority_weight"]["passed"] is True
    assert gates["max_majority_weight"]["value"] <= 0.35


def test_cli_refuses_bad_input_with_one_line(saved_sets, tmp_path):
    existing = tmp_path / "exists.json"
    existing.write_text("{}")
    cases = [
        [str(saved_sets["aligned"]), "--real", "cmnist-fg", "--json", str(existing)],
        [str(tmp_path / "missing.pt"), "--real", "cmnist-fg"],
        [str(saved_sets["aligned"]), "--real", "cmnist-fg", "--zca", "--space", "raw"],
        [str(saved_sets["aligned"]), "--real", "cmnist-fg", "--max-majority-share", "1.5"],
        [str(saved_sets["aligned"]), "--real", "cmnist-fg", *SMALL_FLAGS, "--unknown-quantile", "1.0"],
        [str(saved_sets["aligned"]), "--real", "cmnist-fg", *SMALL_FLAGS, "--n-boot", "3"],
    ]
    for args in cases:
        proc = run_probe(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert existing.read_text() == "{}"

"""The audit's own logic: pixel spaces, compatibility checks, references, seeds, outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ddaudit.auditing import (
    ReferenceStore,
    check_compatible,
    derive_seeds,
    fit_zca,
    pixel_warning,
    random_subset,
    resolve_space,
    to_real_space,
)
from ddaudit.data import GroupTensors, RealData
from ddaudit.errors import ConfigError, InputError
from ddaudit.io import SyntheticSet
from ddaudit.report import json_ready, to_markdown, write_json, write_text


def make_real(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), classes=3, groups=2) -> RealData:
    g = torch.Generator().manual_seed(0)
    n = 60
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = torch.arange(n) % classes
    a = (torch.arange(n) // classes) % groups
    data = GroupTensors(x, y, a)
    return RealData(
        name="toy", test=data, train=data, num_classes=classes, num_groups=groups, channel=3, im_size=(8, 8),
        mean=mean, std=std, class_names=[str(i) for i in range(classes)], group_names=["g0", "g1"],
    )


def syn(images, labels, **kw) -> SyntheticSet:
    return SyntheticSet(images=images, labels=labels, format="tensors", path="x.pt", **kw)


def test_raw_pixels_are_normalised_with_the_dataset_statistics():
    real = make_real()
    raw = torch.rand(6, 3, 8, 8)
    out, space = to_real_space(raw, real, "raw", None, None)
    mean = torch.tensor(real.mean).view(1, 3, 1, 1)
    std = torch.tensor(real.std).view(1, 3, 1, 1)
    assert space == "raw"
    assert torch.allclose(out, (raw - mean) / std)


def test_user_normalisation_is_converted_to_the_dataset_normalisation():
    real = make_real()
    raw = torch.rand(6, 3, 8, 8)
    user_mean, user_std = [0.1, 0.2, 0.3], [0.5, 0.5, 0.5]
    saved = (raw - torch.tensor(user_mean).view(1, 3, 1, 1)) / torch.tensor(user_std).view(1, 3, 1, 1)
    out, _ = to_real_space(saved, real, "normalized", user_mean, user_std)
    expected, _ = to_real_space(raw, real, "raw", None, None)
    assert torch.allclose(out, expected, atol=1e-6)
    # Already in the dataset's space: untouched.
    same, _ = to_real_space(saved, real, "normalized", None, None)
    assert torch.equal(same, saved)


def test_bad_statistics_flags():
    real = make_real()
    x = torch.zeros(2, 3, 8, 8)
    with pytest.raises(ConfigError, match="go together"):
        to_real_space(x, real, "normalized", [0.1], None)
    with pytest.raises(ConfigError, match="1 or 3 values"):
        to_real_space(x, real, "normalized", [0.1, 0.2], [1.0, 1.0])
    with pytest.raises(ConfigError, match="positive"):
        to_real_space(x, real, "normalized", [0.1], [0.0])
    with pytest.raises(ConfigError, match="unknown --space"):
        resolve_space("hsv", syn(x, torch.zeros(2, dtype=torch.long)))


def test_space_auto_follows_the_reader_hint():
    x, y = torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long)
    assert resolve_space("auto", syn(x, y, meta={"space_hint": "raw"})) == "raw"
    assert resolve_space("auto", syn(x, y, meta={"space_hint": "normalized"})) == "normalized"
    assert resolve_space("auto", syn(x, y)) == "normalized"


def test_zca_whitens_the_training_data():
    g = torch.Generator().manual_seed(1)
    mix = torch.randn(12, 12, generator=g)
    x = (torch.randn(4000, 12, generator=g) @ mix).reshape(4000, 3, 2, 2)
    whiten = fit_zca(x, eps=1e-6)
    flat = whiten(x).reshape(4000, -1).double()
    cov = torch.cov(flat.T)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=0.05)
    # ZCA keeps images close to themselves (symmetric transform), unlike PCA whitening.
    assert torch.allclose(whiten(x).mean(0), torch.zeros(3, 2, 2), atol=1e-3)


def test_compatibility_errors_say_what_to_do():
    real = make_real()
    with pytest.raises(InputError, match="1x8x8 but toy test images are 3x8x8"):
        check_compatible(syn(torch.zeros(3, 1, 8, 8), torch.arange(3)), real)
    with pytest.raises(InputError, match="3 classes"):
        check_compatible(syn(torch.zeros(3, 3, 8, 8), torch.tensor([0, 1, 5])), real)
    with pytest.raises(InputError, match="no images for class"):
        check_compatible(syn(torch.zeros(2, 3, 8, 8), torch.tensor([0, 1])), real)
    check_compatible(syn(torch.zeros(3, 3, 8, 8), torch.arange(3)), real)


def test_pixel_warning_flags_unnormalised_pixels():
    real = make_real()
    assert pixel_warning(torch.randn(50, 3, 8, 8), real.test.x) is None
    assert "--space" in pixel_warning(torch.rand(50, 3, 8, 8) * 255, real.test.x)


def test_random_subset_matches_per_class_counts_and_is_seeded():
    real = make_real()
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    a = random_subset(real.train, labels, 3, seed=5)
    b = random_subset(real.train, labels, 3, seed=5)
    c = random_subset(real.train, labels, 3, seed=6)
    assert torch.bincount(a.y, minlength=3).tolist() == [2, 1, 3]
    assert torch.equal(a.x, b.x)
    assert not torch.equal(a.x, c.x)


def test_seeds_are_stable_and_distinct():
    assert derive_seeds(0, 5) == derive_seeds(0, 5)
    assert len(set(derive_seeds(0, 20))) == 20
    assert derive_seeds(0, 3) != derive_seeds(1, 3)
    assert derive_seeds(0, 3, stream=1) != derive_seeds(0, 3)


def test_reference_store_computes_once_and_caches_full_reference_on_disk(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.arange(6).reshape(2, 3)

    memory: dict = {}
    store = ReferenceStore(memory, tmp_path)
    first = store.get("full", {"k": 1}, compute)
    again = ReferenceStore(memory, tmp_path).get("full", {"k": 1}, compute)
    from_disk = ReferenceStore(None, tmp_path).get("full", {"k": 1}, compute)
    assert len(calls) == 1
    assert np.array_equal(first, again) and np.array_equal(first, from_disk)
    ReferenceStore(None, tmp_path).get("full", {"k": 2}, compute)
    assert len(calls) == 2


def test_json_has_no_nan_and_files_are_never_clobbered(tmp_path):
    report = {"metrics": {"x": {"mean": float("nan"), "ci": [np.float64(0.25), math.inf]}}, "n": np.int64(3)}
    path = write_json(tmp_path / "r.json", report)
    assert json.loads(path.read_text()) == {"metrics": {"x": {"mean": None, "ci": [0.25, None]}}, "n": 3}
    with pytest.raises(ConfigError, match="--force"):
        write_text(path, "other")
    assert json.loads(path.read_text())["n"] == 3
    write_text(path, "other", force=True)
    assert path.read_text() == "other"
    with pytest.raises(ConfigError, match="does not exist"):
        write_text(tmp_path / "missing" / "r.json", "x")
    assert json_ready((1, np.array([1.5]))) == [1, [1.5]]


def test_markdown_lists_metrics_cells_and_warnings():
    report = {
        "status": "not_gated",
        "synthetic": {"path": "s.pt", "format": "dc", "images": 20, "ipc": 10},
        "real": {"name": "toy", "class_names": ["a", "b"], "group_names": ["g0", "g1"]},
        "settings": {"num_eval": 2, "seed": 0, "protocol": {"name": "quick", "model": "MLP", "epochs": 3, "aug": "none"}},
        "metrics": {"deo_max": {"mean": 0.5, "std": 0.1, "ci": [0.4, 0.6]}},
        "cells": [{"class": 0, "group": 1, "count": 4, "accuracy": 0.25}, {"class": 1, "group": 0, "count": 0, "accuracy": None}],
        "warnings": ["something small"],
    }
    text = to_markdown(report)
    assert "| DEO_M | 50.00 ± 10.00 | [40.00, 60.00] |" in text
    assert "25.00 (4)" in text and "empty (0)" in text
    assert "- something small" in text

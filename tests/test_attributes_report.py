"""An audit over two protected attributes: the ``attributes`` section and its JSON, rich, Markdown and HTML
views; a single-attribute audit of the same data shows none of it."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from rich.console import Console

from ddaudit import audit
from ddaudit.data import load_real
from ddaudit.io import SyntheticSet
from ddaudit.metrics import attribute_metrics, compute_metrics
from ddaudit.report import AuditReport, to_html

TINY = {"model": "ConvNetW32", "epochs": 4}
OPTIONS = dict(protocol="quick", protocol_overrides=TINY, num_eval=2, n_boot=20, seed=0, device="cpu", reference=False)


@pytest.fixture(scope="module")
def real():
    return load_real("cmnist-fgbg", n_train=400, n_test=20)


def aligned_set(real) -> SyntheticSet:
    """Two training digits per class, each in the class's own stroke and background colours."""
    rows = []
    for c in range(real.num_classes):
        own = (real.train.y == c) & (real.train.attrs[:, 0] == c // 2) & (real.train.attrs[:, 1] == c % 2)
        rows += torch.nonzero(own).flatten()[:2].tolist()
    return SyntheticSet(images=real.train.x[rows].clone(), labels=real.train.y[rows].clone(), format="tensors",
                        path="aligned")


@pytest.fixture(scope="module")
def report(real):
    return audit(aligned_set(real), real, **OPTIONS)


def test_the_report_carries_each_attribute_and_the_intersection(report, real):
    data = report.to_dict()
    section = data["attributes"]
    assert section["attributes"] == ["foreground", "background"]
    assert list(section["per_attribute"]) == ["foreground", "background"]
    assert data["real"]["attributes"] == ["foreground", "background"] and data["real"]["num_groups"] == 10
    # The headline metrics are the intersection's (the audit's groups are the intersections), and they are
    # what the attribute metrics compute afresh from the saved predictions.
    y, pred, attrs = (report.predictions[k] for k in ("y_true", "y_pred", "attributes"))
    assert np.array_equal(attrs, real.test.attrs.numpy())
    fresh = attribute_metrics(y, attrs, pred, num_classes=10, attributes=real.attributes, values=real.attribute_values,
                              train_y=real.train.y.numpy(), train_attrs=real.train.attrs.numpy(), n_boot=20, seed=0,
                              class_names=real.class_names)
    assert fresh["intersection"]["cells"] == section["intersection"]["cells"]
    for name in ("deo_max", "deo_avg", "worst_group_accuracy", "bias_amplification"):
        for key in ("per_evaluator", "interval", "ci"):
            assert fresh["intersection"]["metrics"][name][key] == pytest.approx(data["metrics"][name][key], abs=1e-12)
            assert section["intersection"]["metrics"][name][key] == pytest.approx(data["metrics"][name][key], abs=1e-12)
    # Each marginal view is the audit with that attribute as the group.
    for k, name in enumerate(["foreground", "background"]):
        direct = compute_metrics(y, attrs[:, k], pred, num_classes=10, num_groups=(5, 2)[k], n_boot=0,
                                 train_y=real.train.y.numpy(), train_a=real.train.attrs[:, k].numpy())
        view = section["per_attribute"][name]["metrics"]
        for metric in ("deo_max", "accuracy_gap", "equalized_odds_difference", "bias_amplification"):
            assert view[metric]["per_evaluator"] == pytest.approx(direct.metrics[metric]["per_evaluator"], abs=1e-12)


def test_views_show_the_section_and_survive_a_json_round_trip(report):
    markdown = report.to_markdown()
    assert "Several protected attributes" in markdown
    assert "| foreground x background (intersection) |" in markdown
    assert markdown.count("| foreground |") == 1 and "| background |" in markdown
    assert AuditReport.from_dict(report.to_dict()).to_markdown() == markdown
    page = to_html(report.to_dict())
    assert '<section id="attributes">' in page and "foreground x background (intersection)" in page
    console = Console(file=io.StringIO(), width=250, record=True)
    report.render(console)
    text = console.export_text()
    assert "each one, and their intersection" in text and "background" in text


def test_a_single_attribute_audit_is_unchanged(real):
    single = load_real("cmnist-fgbg", n_train=400, n_test=20, sensitive="foreground")
    data = audit(aligned_set(real), single, **OPTIONS).to_dict()
    assert "attributes" not in data and "attributes" not in data["real"]
    assert data["real"]["group_names"] == ["red", "green", "blue", "yellow", "magenta"]
    rebuilt = AuditReport.from_dict(data)
    assert "Several protected attributes" not in rebuilt.to_markdown()
    assert 'id="attributes"' not in to_html(data)

"""Pictures and the HTML page: what is drawn is what the data say, and the page is self-contained."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ddaudit.report import PictureInputs, render_pictures, save_figures, to_html
from ddaudit.report._plots import BORDER, FRAMED_BACKGROUND, GAP, UNSURE_GREY, group_colours, tile_canvas

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_group_colours_use_colour_names_when_every_group_has_one():
    named = group_colours(3, ["red", "white", "blue"])
    assert named.tolist() == [[1, 0, 0], [1, 1, 1], [0, 0, 1]]
    generic = group_colours(3, ["female", "male", "other"])
    assert len({tuple(c) for c in generic.tolist()}) == 3


def test_tiles_are_framed_in_their_group_colour_and_unsure_frames_are_dashed():
    pixels = torch.rand(4, 3, 6, 6)
    labels = torch.tensor([0, 0, 1, 1])
    colours = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0], [1.0, 1.0, 0]])
    unsure = np.array([False, False, False, True])
    canvas, pitch = tile_canvas(pixels, labels, 2, per_row=2, border_colours=colours, unsure=unsure)
    for index, (row, col) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        top, left = GAP + row * pitch, GAP + col * (6 + 2 * BORDER + GAP)
        inner = canvas[top + BORDER:top + BORDER + 6, left + BORDER:left + BORDER + 6]
        assert np.allclose(inner, pixels[index].permute(1, 2, 0).numpy())
        frame = canvas[top, left:left + 6 + 2 * BORDER]
        if unsure[index]:
            assert any(np.allclose(p, UNSURE_GREY) for p in frame) and any(np.allclose(p, colours[index]) for p in frame)
        else:
            assert np.allclose(frame, colours[index])
    assert np.allclose(canvas[0, 0], FRAMED_BACKGROUND)


def fake_report(status: str = "fail") -> dict:
    """A report shaped like check's, with a composition, as the views read it."""
    cells = [{"class": c, "group": g, "count": 30 if (c, g) != (1, 0) else 5, "accuracy": 0.9 if c == g else 0.2}
             for c in range(2) for g in range(2)]
    return {
        "schema": "ddaudit.report/1", "ddaudit_version": "0.1.0", "status": status,
        "synthetic": {"path": "sets/<script>alert(1)</script>.pt", "format": "dc", "images": 4, "ipc": 2, "space": "normalized"},
        "real": {"name": "toy", "num_classes": 2, "num_groups": 2, "class_names": ["zero", "one"],
                 "group_names": ["red", "blue"], "test_size": 120, "train_size": 40},
        "settings": {"num_eval": 2, "seed": 0, "confidence": 0.95, "min_group_size": 20,
                     "protocol": {"name": "quick", "model": "ConvNetW32", "epochs": 5, "aug": "none"}},
        "metrics": {"accuracy": {"mean": 0.55, "std": 0.01, "ci": [0.5, 0.6]},
                    "deo_max": {"mean": 0.7, "std": 0.02, "ci": [0.6, 0.8]}},
        "cells": cells, "reference": {}, "amplification": {},
        "composition": {
            "mean_majority_share": 1.0, "max_majority_share": 1.0, "mean_normalized_entropy": 0.0,
            "mean_js_real": 0.05, "real_mean_majority_share": 0.9, "uncertain": {"count": 1, "indices": [3]},
            "classifier": {"accuracy": 0.99, "cached": False},
            "classes": [{"class": c, "images": 2, "counts": [2 * (c == 0), 2 * (c == 1)], "shares": [float(c == 0), float(c == 1)],
                         "majority_group": c, "majority_share": 1.0, "groups_covered": 1, "normalized_entropy": 0.0,
                         "js_real": 0.05, "real_majority_group": c, "real_majority_share": 0.9, "uncertain": c}
                        for c in range(2)],
        },
        "gates": [{"name": "max_deo_max", "metric": "deo_max", "operator": "<=", "threshold": 0.3, "value": 0.7,
                   "passed": False, "inconclusive": False, "reason": "", "basis": "mean"}],
        "warnings": ["a <b>warning</b>"],
    }


@pytest.fixture(scope="module")
def pictures():
    generator = torch.Generator().manual_seed(0)
    inputs = PictureInputs(torch.rand(4, 3, 8, 8, generator=generator), torch.tensor([0, 0, 1, 1]),
                           groups=torch.tensor([0, 0, 1, 1]), confidence=torch.tensor([0.9, 0.9, 0.9, 0.4]),
                           ref_pixels=torch.rand(4, 3, 8, 8, generator=generator), ref_labels=torch.tensor([0, 0, 1, 1]))
    return render_pictures(fake_report(), inputs)


def test_every_picture_is_drawn_as_png(pictures):
    assert list(pictures) == ["synthetic_by_group", "composition", "accuracy_by_cell", "distilled_vs_reference"]
    assert all(png.startswith(PNG_MAGIC) and len(png) > 2000 for png in pictures.values())


def test_save_figures_never_overwrites_without_force(pictures, tmp_path):
    from ddaudit.errors import ConfigError

    written = save_figures(pictures, tmp_path / "plots", force=False)
    assert sorted(written) == sorted(pictures)
    assert (tmp_path / "plots" / "composition.png").read_bytes() == pictures["composition"]
    (tmp_path / "plots" / "composition.png").write_bytes(b"mine")
    with pytest.raises(ConfigError, match="--force"):
        save_figures(pictures, tmp_path / "plots", force=False)
    assert (tmp_path / "plots" / "composition.png").read_bytes() == b"mine"


def test_html_is_self_contained_and_escaped(pictures):
    page = to_html(fake_report(), pictures)
    for section in ("verdict", "gates", "metrics", "composition", "cells", "pictures", "warnings", "settings"):
        assert f'<section id="{section}"' in page
    assert "<script" not in page.replace("&lt;script&gt;", "")
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched: every source is a data URI
    assert page.count('src="data:image/png;base64,') == len(pictures)
    assert "&lt;b&gt;warning&lt;/b&gt;" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert 'data-status="fail"' in page and "FAIL" in page
    assert "[60.00, 80.00]" in page  # the metric's interval, in percent


def test_html_without_gates_or_metrics_says_so():
    report = fake_report(status="not_gated")
    report.update(gates=[], metrics={}, cells=[])
    page = to_html(report, {})
    assert "NOT GATED" in page and "No gate was set" in page
    assert '<section id="metrics"' not in page and '<section id="composition"' in page

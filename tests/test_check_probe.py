"""`ddaudit check` runs the composition probe: its section, gate, pictures and page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddaudit.data import load_real

DDAUDIT = str(Path(sys.executable).parent / "ddaudit")
DATA = ["--real", "cmnist-fg", "--real-option", "n_train=2000", "--real-option", "n_test=60"]
FAST = ["--protocol", "quick", "--model", "ConvNetW32", "--epochs", "20", "--num-eval", "2", "--n-boot", "100",
        "--device", "cpu"]


@pytest.fixture(scope="module")
def collapsed(tmp_path_factory) -> Path:
    """Ten real digits per class, all in the class's majority colour."""
    real = load_real("cmnist-fg", n_train=2000, n_test=60)
    rows = torch.cat([torch.nonzero((real.train.y == c) & (real.train.a == c)).flatten()[:10] for c in range(10)])
    path = tmp_path_factory.mktemp("sets") / "res_collapsed.pt"
    torch.save({"data": [[real.train.x[rows], real.train.y[rows]]]}, path)
    return path


@pytest.fixture(scope="module")
def checked(collapsed, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("check")
    proc = subprocess.run(
        [DDAUDIT, "check", str(collapsed), *DATA, *FAST, "--cache-dir", str(out / "cache"),
         "--json", str(out / "report.json"), "--plots", str(out / "plots"), "--html", str(out / "report.html"),
         "--max-majority-share", "0.5", "--gate-on", "mean"],
        capture_output=True, text=True, timeout=900,
    )
    return {"proc": proc, "out": out}


def test_check_report_holds_the_composition_and_its_gate(checked):
    proc, out = checked["proc"], checked["out"]
    assert proc.returncode == 1, proc.stderr  # every class collapsed: the majority-share gate fails
    report = json.loads((out / "report.json").read_text())
    comp = report["composition"]
    assert comp["mean_majority_share"] >= 0.9 and comp["max_majority_share"] == 1.0
    assert [c["majority_group"] for c in comp["classes"]] == list(range(10))
    gate = next(g for g in report["gates"] if g["name"] == "max_majority_share")
    assert gate["passed"] is False and gate["value"] == comp["mean_majority_share"]
    for key in ("mean_majority_share_interval", "mean_majority_weight_interval"):
        low, high = comp[key]
        assert 0.0 <= low <= comp[key.replace("_interval", "")] <= high <= 1.0
    assert comp["interval_method"] == "bootstrap_percentile"
    assert all("unknown" in c and "hull_residual" in c for c in comp["classes"])
    assert report["metrics"]["deo_max"]["mean"] >= 0.8  # the evaluators agree with the probe
    assert "predicted majority" in proc.stderr


def test_check_writes_every_picture_and_the_page(checked):
    out = checked["out"]
    names = sorted(p.name for p in (out / "plots").iterdir())
    assert names == ["accuracy_by_cell.png", "composition.png", "distilled_vs_reference.png", "synthetic_by_group.png"]
    page = (out / "report.html").read_text()
    for section in ("verdict", "gates", "metrics", "composition", "cells", "pictures"):
        assert f'<section id="{section}"' in page
    assert page.count("data:image/png;base64,") == 4


def test_no_probe_leaves_the_composition_out(collapsed, tmp_path):
    proc = subprocess.run([DDAUDIT, "check", str(collapsed), *DATA, *FAST, "--no-probe", "--no-reference",
                           "--json", str(tmp_path / "r.json"), "--plots", str(tmp_path / "plots")],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "composition" not in json.loads((tmp_path / "r.json").read_text())
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["accuracy_by_cell.png", "distilled_vs_reference.png"]


def test_composition_gate_without_probe_is_a_usage_error(collapsed):
    proc = subprocess.run([DDAUDIT, "check", str(collapsed), *DATA, *FAST, "--no-probe", "--max-majority-share", "0.5"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "drop --no-probe" in proc.stderr
    assert "Traceback" not in proc.stderr

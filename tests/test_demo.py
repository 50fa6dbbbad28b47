"""`ddaudit demo` end to end with tiny settings: files, reports, pictures, safety."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from ddaudit.io import load_synthetic

DDAUDIT = str(Path(sys.executable).parent / "ddaudit")
TINY = ["--preset", "cpu", "--iterations", "3", "--num-eval", "1", "--eval-epochs", "3", "--device", "cpu"]


def test_demo_writes_reports_sets_and_pictures(tmp_path):
    out = tmp_path / "demo"
    both = tmp_path / "both.json"
    proc = subprocess.run([DDAUDIT, "demo", *TINY, "--out", str(out), "--json", str(both)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "vanilla DM" in proc.stderr and "fair DM (sync)" in proc.stderr
    combined = json.loads(both.read_text())
    assert set(combined) == {"vanilla", "fair"}
    for variant in ("vanilla", "fair"):
        report = json.loads((out / f"{variant}.json").read_text())
        assert report == combined[variant]
        assert report["schema"] == "ddaudit.report/1"
        assert report["demo"]["mode"] == ("none" if variant == "vanilla" else "sync")
        synthetic = load_synthetic(report["synthetic"]["path"])
        assert synthetic.format == "dc" and synthetic.images.shape == (100, 3, 32, 32)
    vanilla = load_synthetic(combined["vanilla"]["synthetic"]["path"]).images
    fair = load_synthetic(combined["fair"]["synthetic"]["path"]).images
    assert not torch.equal(vanilla, fair)
    for picture in ("synthetic_sets.png", "group_accuracy.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second run refuses to overwrite the first run's files.
    again = subprocess.run([DDAUDIT, "demo", *TINY, "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert again.returncode == 2 and "--force" in again.stderr

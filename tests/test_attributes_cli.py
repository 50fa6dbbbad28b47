"""``ddaudit check --sensitive``: choosing attributes on the command line, as a user would."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from ddaudit.cli import app
from ddaudit.data import load_real

DATA = ["--real", "cmnist-fgbg", "--real-option", "n_train=400", "--real-option", "n_test=10"]
FAST = ["--protocol", "quick", "--model", "ConvNetW32", "--epochs", "2", "--num-eval", "1", "--n-boot", "0",
        "--no-probe", "--no-reference"]


def test_check_reports_both_attributes_or_the_one_chosen(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = load_real("cmnist-fgbg", n_train=400, n_test=10)
    rows = [int(torch.nonzero(real.train.y == c)[0]) for c in range(10)]
    torch.save({"images": real.train.x[rows].clone(), "labels": real.train.y[rows].clone()}, tmp_path / "set.pt")

    both = CliRunner().invoke(app, ["check", "set.pt", *DATA, *FAST, "--json", "both.json", "--markdown", "both.md"])
    assert both.exit_code == 0, both.stderr
    report = json.loads((tmp_path / "both.json").read_text())
    assert list(report["attributes"]["per_attribute"]) == ["foreground", "background"]
    assert report["real"]["group_names"][1] == "foreground=red, background=grey"
    assert "foreground x background (intersection)" in (tmp_path / "both.md").read_text()
    assert "each one, and their intersection" in both.stderr

    one = CliRunner().invoke(app, ["check", "set.pt", *DATA, *FAST, "--sensitive", "background", "--json", "one.json"])
    assert one.exit_code == 0, one.stderr
    single = json.loads((tmp_path / "one.json").read_text())
    assert "attributes" not in single and single["real"]["group_names"] == ["black", "grey"]
    assert "intersection" not in one.stderr

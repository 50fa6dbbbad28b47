"""End-to-end audits on the embedded preset: the product's core promise.

A distilled set made only of bias-aligned images (every class drawn in its own
colour) must be reported as unfair; a set whose colours are balanced within each
class must not. Sets are built from real training digits, so the evaluators
learn real digits, and the CLI runs as a user would run it.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddaudit.auditing import audit
from ddaudit.data import load_real

DDAUDIT = str(Path(sys.executable).parent / "ddaudit")
SMALL = {"n_test": 60}
FAST = ["--protocol", "quick", "--model", "ConvNetW32", "--epochs", "60", "--num-eval", "2", "--n-boot", "200"]


@pytest.fixture(scope="module")
def real():
    return load_real("cmnist-fg", **SMALL)


def pick(real, per_class: int, balanced: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Training rows: all in the class's own colour, or one per colour."""
    xs, ys = [], []
    for cls in range(real.num_classes):
        in_class = (real.train.y == cls)
        if balanced:
            rows = [int(torch.nonzero(in_class & (real.train.a == g))[0]) for g in range(real.num_groups)]
            rows = (rows * per_class)[:per_class]
        else:
            rows = torch.nonzero(in_class & (real.train.a == cls)).flatten()[:per_class].tolist()
        xs.append(real.train.x[rows])
        ys.append(torch.full((len(rows),), cls))
    return torch.cat(xs), torch.cat(ys)


def save_dc(path: Path, x: torch.Tensor, y: torch.Tensor) -> Path:
    torch.save({"data": [[x.clone(), y.clone()]], "accs_all_exps": {"ConvNet": []}}, path)
    return path


@pytest.fixture(scope="module")
def sets(real, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sets")
    aligned = save_dc(folder / "res_DM_cmnist_ConvNet_10ipc.pt", *pick(real, 10, balanced=False))
    balanced = save_dc(folder / "res_DMfair_cmnist_ConvNet_10ipc.pt", *pick(real, 10, balanced=True))
    return aligned, balanced


def run_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DDAUDIT, "check", *args], capture_output=True, text=True, timeout=600)


def test_aligned_set_is_unfair_and_balanced_set_is_not(sets, tmp_path):
    aligned, balanced = sets
    reports = {}
    for name, path in (("aligned", aligned), ("balanced", balanced)):
        out = tmp_path / f"{name}.json"
        proc = run_check(str(path), "--real", "cmnist-fg", "--real-option", "n_test=60", *FAST, "--json", str(out))
        assert proc.returncode == 0, proc.stderr
        reports[name] = json.loads(out.read_text())
    a, b = reports["aligned"]["metrics"], reports["balanced"]["metrics"]
    assert a["deo_max"]["mean"] >= 0.8
    assert b["deo_max"]["mean"] < a["deo_max"]["mean"] - 0.3
    assert a["accuracy"]["mean"] < b["accuracy"]["mean"] - 0.2
    assert reports["aligned"]["schema"] == "ddaudit.report/1"
    assert reports["aligned"]["synthetic"]["format"] == "dc"
    assert reports["aligned"]["synthetic"]["ipc"] == 10
    assert len(reports["aligned"]["cells"]) == 100
    # The amplification factor compares against a real subset with the same IPC.
    amp = reports["aligned"]["amplification"]["deo_max"]
    ref = reports["aligned"]["reference"]["random_subset"]["metrics"]["deo_max"]["mean"]
    assert amp["difference"] == pytest.approx(a["deo_max"]["mean"] - ref)
    # Gating the saved reports: a threshold between the two fails the aligned set only.
    threshold = str(round((a["deo_max"]["mean"] + b["deo_max"]["mean"]) / 2, 3))
    junit = tmp_path / "gates.xml"
    for name, expected in (("aligned", 1), ("balanced", 0)):
        gate = subprocess.run(
            [DDAUDIT, "gate", str(tmp_path / f"{name}.json"), "--max-deo-max", threshold, "--gate-on", "mean",
             "--junit", str(junit), "--force"],
            capture_output=True, text=True, timeout=120,
        )
        assert gate.returncode == expected, gate.stderr
        failures = int(ET.parse(junit).getroot().get("failures"))
        assert failures == expected
    # On cells of 6 test images the gating interval contains the midpoint threshold: inconclusive.
    gate = subprocess.run([DDAUDIT, "gate", str(tmp_path / "aligned.json"), "--max-deo-max", threshold],
                          capture_output=True, text=True, timeout=120)
    assert gate.returncode == 3, gate.stderr


def test_report_metrics_recompute_from_saved_predictions(sets, tmp_path):
    aligned, _ = sets
    out, preds = tmp_path / "r.json", tmp_path / "p.npz"
    proc = run_check(str(aligned), "--real", "cmnist-fg", "--real-option", "n_test=60", *FAST,
                     "--no-reference", "--json", str(out), "--save-predictions", str(preds))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    data = np.load(preds)
    y, g, yhat = data["y_true"], data["group"], data["y_pred"]
    assert yhat.shape == (2, len(y))
    # DEO_M written out from its definition: max over classes of the group gap in per-cell accuracy.
    for e in range(yhat.shape[0]):
        gaps = []
        for c in range(10):
            accs = [np.mean(yhat[e][(y == c) & (g == a)] == c) for a in range(10) if np.any((y == c) & (g == a))]
            gaps.append(max(accs) - min(accs))
        assert report["metrics"]["deo_max"]["per_evaluator"][e] == pytest.approx(max(gaps))
        assert report["metrics"]["deo_avg"]["per_evaluator"][e] == pytest.approx(np.mean(gaps))
        assert report["metrics"]["accuracy"]["per_evaluator"][e] == pytest.approx(np.mean(yhat[e] == y))


def test_same_seed_same_json(sets, tmp_path):
    _, balanced = sets
    texts = []
    for i in range(2):
        out = tmp_path / f"r{i}.json"
        proc = run_check(str(balanced), "--real", "cmnist-fg", "--real-option", "n_test=60", *FAST, "--json", str(out))
        assert proc.returncode == 0, proc.stderr
        texts.append(out.read_text())
    assert texts[0] == texts[1]


def test_outputs_are_never_overwritten_without_force(sets, tmp_path):
    aligned, _ = sets
    out = tmp_path / "mine.json"
    out.write_text("precious")
    proc = run_check(str(aligned), "--real", "cmnist-fg", *FAST, "--json", str(out))
    assert proc.returncode == 2
    assert "--force" in proc.stderr
    assert out.read_text() == "precious"


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p.write_bytes(b"not a torch file"), "not"),
        (lambda p: torch.save({"data": [[torch.zeros(20, 1, 28, 28), torch.arange(20) % 10]]}, p), "1x28x28"),
        (lambda p: torch.save({"data": [[torch.zeros(20, 3, 32, 32), torch.arange(20) % 10 + 5]]}, p), "classes"),
        (lambda p: torch.save({"data": [[torch.full((20, 3, 32, 32), float("nan")), torch.arange(20) % 10]]}, p), "NaN"),
        (lambda p: torch.save({"data": [[torch.zeros(9, 3, 32, 32), torch.arange(9)]]}, p), "class"),
    ],
    ids=["corrupt", "size-mismatch", "labels-out-of-range", "nan-pixels", "empty-class"],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, make, expected):
    path = tmp_path / "res_DM_x_ConvNet_2ipc.pt"
    make(path)
    proc = run_check(str(path), "--real", "cmnist-fg", *FAST)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert expected.lower() in lines[0].lower()
    assert "Traceback" not in proc.stderr


def test_missing_file_and_unknown_dataset(tmp_path):
    proc = run_check(str(tmp_path / "nope.pt"), "--real", "cmnist-fg")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    path = save_dc(tmp_path / "res_DM_x_ConvNet_1ipc.pt", torch.zeros(10, 3, 32, 32), torch.arange(10))
    proc = run_check(str(path), "--real", "no-such-dataset")
    assert proc.returncode == 2 and "cmnist-fg" in proc.stderr


def test_python_api_matches_report_shape(real, sets):
    aligned, _ = sets
    result = audit(aligned, real, protocol="quick", protocol_overrides={"model": "ConvNetW32", "epochs": 20},
                   num_eval=2, n_boot=100, reference=False)
    report = result.report
    for name in ("accuracy", "worst_group_accuracy", "deo_max", "deo_avg"):
        entry = report["metrics"][name]
        assert set(entry) >= {"mean", "std", "ci", "per_evaluator"}
        assert len(entry["per_evaluator"]) == 2
        assert 0.0 <= entry["mean"] <= 1.0
    assert report["settings"]["evaluator_seeds"] == result.report["settings"]["evaluator_seeds"]
    assert result.predictions["y_pred"].shape == (2, len(real.test))


def test_check_reports_recovery_of_weights_and_pseudo_groups(real, sets, tmp_path):
    from ddaudit.mitigate import save_groups, save_weights

    aligned_rows = torch.as_tensor(real.meta["bias_aligned_train"])
    weights = torch.where(aligned_rows, 1.0, 4.0)
    save_weights(tmp_path / "w.pt", weights, settings={}, dataset="cmnist-fg")
    save_groups(tmp_path / "g.pt", real.train.a.clone(), settings={}, dataset="cmnist-fg")
    out = tmp_path / "r.json"
    proc = run_check(str(sets[0]), "--real", "cmnist-fg", "--real-option", "n_test=60", "--protocol", "quick",
                     "--model", "MLP", "--epochs", "2", "--num-eval", "1", "--no-reference", "--n-boot", "50",
                     "--weights", str(tmp_path / "w.pt"), "--pseudo-groups", str(tmp_path / "g.pt"), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    recovery = json.loads(out.read_text())["recovery"]
    assert recovery["weights"]["ratio"] == pytest.approx(4.0)
    assert recovery["weights"]["auc"] == pytest.approx(1.0)
    assert recovery["pseudo_groups"]["ari"] == pytest.approx(1.0)
    assert "4.0x" in proc.stderr

"""`ddaudit demo` end to end with tiny settings: files, reports, pictures, safety."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from ddaudit.data import load_real
from ddaudit.io import load_synthetic
from ddaudit.mitigate import BiasModelSettings, LabelFreeSettings, label_free

DDAUDIT = str(Path(sys.executable).parent / "ddaudit")
TINY = ["--preset", "cpu", "--iterations", "3", "--num-eval", "1", "--eval-epochs", "3", "--surrogate-epochs", "1",
        "--device", "cpu"]
VARIANTS = ("vanilla", "fair", "label_free")


def test_demo_writes_reports_sets_and_pictures(tmp_path):
    out = tmp_path / "demo"
    both = tmp_path / "both.json"
    # The demo runs with this process's thread count, so the in-process recomputation below adds the
    # same numbers in the same order (ddaudit.reproducibility: same seed and threads, same figures).
    threads = torch.get_num_threads()
    proc = subprocess.run([DDAUDIT, "demo", *TINY, "--out", str(out), "--json", str(both), "--threads", str(threads)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "vanilla DM" in proc.stderr and "fair DM (sync)" in proc.stderr and "label-free DM" in proc.stderr
    combined = json.loads(both.read_text())
    assert set(combined) == set(VARIANTS)
    for variant in VARIANTS:
        report = json.loads((out / f"{variant}.json").read_text())
        assert report == combined[variant]
        assert report["schema"] == "ddaudit.report/1"
        assert report["demo"]["mode"] == ("none" if variant == "vanilla" else "sync")
        assert report["settings"]["threads"] == threads
        # The fair sets match every group at every step; the vanilla set is DM as published.
        assert (report["demo"]["settings"]["batches"], report["demo"]["settings"]["init"]) == ("balanced", "balanced")
        synthetic = load_synthetic(report["synthetic"]["path"])
        assert synthetic.format == "dc" and synthetic.images.shape == (100, 3, 32, 32)
    images = {v: load_synthetic(combined[v]["synthetic"]["path"]).images for v in VARIANTS}
    assert not torch.equal(images["vanilla"], images["fair"])
    assert not torch.equal(images["fair"], images["label_free"])
    # The label-free set says how it was made and how well its pseudo-groups recover the colours;
    # the same pseudo-groups, recomputed from images and class labels only, give that ARI in sklearn.
    found = combined["label_free"]["demo"]["label_free"]
    real = load_real("cmnist-fg", bias_ratio=0.9)
    settings = LabelFreeSettings(bias_model=BiasModelSettings(epochs=1))
    groups = label_free((real.train.x, real.train.y), settings).groups.numpy()
    y, a = real.train.y.numpy(), real.train.a.numpy()
    ari = sum(adjusted_rand_score(a[y == c], groups[y == c]) * (y == c).sum() for c in range(10)) / len(y)
    assert found["recovery"]["ari"] == pytest.approx(ari)
    assert combined["label_free"]["demo"]["groups"] == "pseudo"
    assert found["settings"]["surrogate"] == "bias" and found["surrogate_epochs"] == 1
    assert 0 <= found["recovery"]["ari"] <= 1 and 0.5 < found["recovery"]["auc"] <= 1
    assert found["ess_median_fraction"] >= found["settings"]["min_ess"] - 1e-9
    for picture in ("synthetic_sets.png", "group_accuracy.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second run refuses to overwrite the first run's files.
    again = subprocess.run([DDAUDIT, "demo", *TINY, "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert again.returncode == 2 and "--force" in again.stderr


@pytest.fixture(scope="module")
def own_data(tmp_path_factory):
    """Group-labelled tensors files of the kind a user brings: background-coloured digits, raw layout."""
    folder = tmp_path_factory.mktemp("own")
    real = load_real("cmnist-bg", n_train=200, n_test=5, bias_ratio=0.8)
    for split, part in (("train", real.train), ("test", real.test)):
        torch.save({"x": part.x, "y": part.y, "a": part.a, "group_names": list(real.group_names)},
                   folder / f"{split}.pt")
    return folder


def test_demo_runs_the_whole_story_on_the_users_own_tensors(own_data, tmp_path):
    out = tmp_path / "demo"
    spec = f"tensors:{own_data / 'train.pt'},{own_data / 'test.pt'}"
    proc = subprocess.run([DDAUDIT, "demo", *TINY, "--real", spec, "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    for variant in VARIANTS:
        report = json.loads((out / f"{variant}.json").read_text())
        assert report["real"]["name"].startswith("tensors") and report["real"]["train_size"] == 200
        assert report["demo"]["bias_ratio"] is None  # tensors take no bias ratio: the data are what they are
        assert report["real"]["group_names"] == load_real("cmnist-bg", n_test=5).group_names
    sets = sorted(path.name for path in out.glob("res_*.pt"))
    assert sets == ["res_DM-FairDD-pseudo_tensors_ConvNetW32_10ipc.pt", "res_DM-FairDD_tensors_ConvNetW32_10ipc.pt",
                    "res_DM_tensors_ConvNetW32_10ipc.pt"]


@pytest.mark.parametrize("case, message", [
    ("test-only", "has no training split"),
    ("bias-ratio", "bias_ratio"),
])
def test_demo_refuses_unusable_real_data_with_one_line_before_distilling(own_data, tmp_path, case, message):
    spec = f"tensors:{own_data / 'test.pt'}" if case == "test-only" else \
        f"tensors:{own_data / 'train.pt'},{own_data / 'test.pt'}"
    extra = ["--bias-ratio", "0.9"] if case == "bias-ratio" else []
    proc = subprocess.run([DDAUDIT, "demo", *TINY, "--real", spec, *extra, "--out", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in proc.stderr
    assert not list((tmp_path / "d").glob("res_*.pt"))

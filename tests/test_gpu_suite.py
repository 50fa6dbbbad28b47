"""benchmarks/gpu_suite.sh --smoke: every step of the GPU suite runs on the CPU and reports its figures.

The suite is run once (about a minute on two cores); the tests read what it left:
each step succeeded, the fragment shows each section's figures, and those figures
are the ones in the steps' own JSON lines.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "gpu_suite.sh"
STEPS = ["engine", "reference", "hooks_dm", "hooks_dc", "demo", "run", "torchrun"]


def _suite(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SUITE), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-suite") / "tmp"
    proc = _suite("--smoke", "--out", str(out), cwd=out.parent)
    return proc, out


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_every_step_of_the_smoke_run_succeeds(smoke):
    proc, out = smoke
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "steps.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["step"] for r in rows] == STEPS
    assert all(r["status"] == "ok" and r["rc"] == "0" for r in rows), rows
    fragment = (out / "gpu_results.md").read_text()
    assert fragment in proc.stdout  # printed as well as written
    assert "smoke run" in fragment and "torch " + torch.__version__ in fragment
    for name in STEPS:  # one row per step in the status table, each with its command
        assert re.search(rf"^\| {name} \| ok \| [\d.]+ \| \d+ \|$", fragment, re.M)


def test_the_fragment_shows_each_sections_figures_from_the_steps_json(smoke):
    _, out = smoke
    fragment = (out / "gpu_results.md").read_text()

    engine = _lines(out / "engine.json")[-1]
    assert engine["speedup"] == pytest.approx(engine["sequential_s"] / engine["batched_s"], rel=0.02)
    assert engine["prediction_agreement"] >= 0.9  # same seeds and data: the engines agree
    assert f"| sequential (baseline) | {engine['sequential_s']} |" in fragment
    assert f"Speed-up **{engine['speedup']}x**" in fragment

    reference = _lines(out / "reference.json")[-1]
    assert reference["speedup"] == pytest.approx(reference["reference"]["wall_s"] / reference["ddaudit"]["wall_s"], abs=0.01)
    assert reference["test_images"] == 50  # n_test=5 digits x 10 colours on both sides
    assert f"| {reference['reference']['wall_s']} | {reference['ddaudit']['wall_s']} | **{reference['speedup']}x** |" in fragment

    dm = _lines(out / "hooks_dm.json")[-1]
    dc = _lines(out / "hooks_dc.json")[-1]
    assert set(dm["seconds_per_iteration"]) == {"dm_vanilla", "dm_sync_rescale", "dm_sync_loop"}
    assert set(dc["seconds_per_iteration"]) == {"dc_vanilla", "dc_sync"}
    seconds = dc["seconds_per_iteration"]
    assert dc["ratios"]["dc_sync_over_vanilla"] == pytest.approx(seconds["dc_sync"] / seconds["dc_vanilla"], rel=0.01)
    assert f"| DM sync, row rescaling | {dm['seconds_per_iteration']['dm_sync_rescale']} |" in fragment
    assert f"| DC sync, per-group real gradients | {seconds['dc_sync']} |" in fragment

    reports = json.loads((out / "demo_reports.json").read_text())
    assert set(reports) == {"vanilla", "fair", "label_free"}
    accuracy = reports["fair"]["metrics"]["accuracy"]["mean"] * 100
    assert f"| fair | {accuracy:.2f} |" in fragment

    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["intercepted_calls"] > 0 and summary["device"] == "cpu"
    assert (out / "run" / "result" / "res_DM_MNIST_ConvNet_1ipc.pt").is_file()
    assert f"{summary['intercepted_calls']} loss calls intercepted" in fragment

    launches = _lines(out / "torchrun.json")
    assert [(r["processes"], r["torchrun"]) for r in launches] == [(1, False), (2, True), (1, True)]
    assert all(r["ok"] and r["metrics_equal_baseline"] for r in launches)
    assert [r["world_size_in_report"] for r in launches] == [1, 2, 1]
    assert "| torchrun | 2 | cpu | yes |" in fragment


def test_bad_arguments_are_refused_in_one_line(tmp_path):
    unknown = _suite("--fast", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown argument --fast" in unknown.stderr
    missing = _suite("--smoke", "--dc-checkout", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert missing.returncode == 2 and "is not a DatasetCondensation checkout" in missing.stderr
    if not torch.cuda.is_available():
        no_gpu = _suite("--out", str(tmp_path / "o"), cwd=tmp_path)
        assert no_gpu.returncode == 2 and "torch sees no CUDA GPU" in no_gpu.stderr and "--smoke" in no_gpu.stderr

"""``ddaudit gate`` run as CI runs it: the installed console script in a subprocess.

Reports are real ``ddaudit.report/1`` files built from evaluator predictions
(see ``test_gate.build_report``); every exit code of the issue is asserted.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import numpy as np

from test_gate import balanced_arrays, biased_arrays, deo_by_hand, standard_report

DDAUDIT = str(Path(sys.executable).parent / "ddaudit")
THRESHOLD_FLAGS = ["--max-deo-max", "--max-deo-avg", "--min-accuracy", "--min-worst-group-accuracy",
                   "--max-accuracy-gap", "--max-equalized-odds", "--max-amplification", "--max-amplification-diff"]
THRESHOLD_KEYS = [flag[2:].replace("-", "_") for flag in THRESHOLD_FLAGS]


def clean_env(**extra: str) -> dict:
    """The caller's environment without CI variables that would change the output."""
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "CI")}
    env.update(extra)
    return env


def run_gate(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([DDAUDIT, "gate", *args], capture_output=True, text=True, cwd=cwd,
                          env=env or clean_env(), timeout=120)


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("reports")
    y, a, preds = biased_arrays()
    assert deo_by_hand(y, a, preds)[0] > 0.3 > deo_by_hand(y, a, balanced_arrays()[2])[0]
    paths = {}
    for name in ("biased", "balanced", "undersized"):
        paths[name] = folder / f"ddaudit-{name}.json"
        paths[name].write_text(json.dumps(standard_report(name)))
    for name, report in small_cell_reports().items():
        paths[name] = folder / f"ddaudit-{name}.json"
        paths[name].write_text(json.dumps(report))
    return paths


def colour_report(per_cell: np.ndarray, *, own: float, other: float, evaluators: int = 3) -> dict:
    """A 10 classes x 10 colours report, built as ``ddaudit check`` builds it, where evaluators
    are right with probability *own* on each class's own colour and *other* elsewhere."""
    from ddaudit.metrics import compute_metrics
    from ddaudit.report import json_ready

    classes = groups = 10
    y = np.repeat(np.repeat(np.arange(classes), groups), per_cell.ravel())
    a = np.repeat(np.tile(np.arange(groups), classes), per_cell.ravel())
    rng = np.random.default_rng(0)
    right = rng.random((evaluators, y.size)) < np.where(a == y, own, other)
    preds = np.where(right, y, (y + 1) % classes)
    result = compute_metrics(y, a, preds, num_classes=classes, num_groups=groups, n_boot=200, seed=0)
    report = {
        "schema": "ddaudit.report/1", "status": "not_gated",
        "synthetic": {"path": "distilled/colour.pt"},
        "real": {"name": "colour", "num_classes": classes, "num_groups": groups,
                 "class_names": [str(k) for k in range(classes)], "group_names": [f"c{g}" for g in range(groups)]},
        "settings": {"confidence": 0.95, "num_eval": evaluators, "min_group_size": 20},
        "metrics": result.metrics, "cells": result.cells, "reference": {}, "amplification": {},
        "warnings": result.warnings, "gates": [],
    }
    return json.loads(json.dumps(json_ready(report)))


def small_cell_reports() -> dict[str, dict]:
    """The issue's case (1,500 test images, 8 to 27 per cell, 100 % on each class's own colour and
    0 % elsewhere), a fair set on cells of 15, and one on cells of 40 whose interval straddles 0.3."""
    rng = np.random.default_rng(13)
    sizes = rng.integers(9, 23, 100)
    sizes[:2] = (8, 27)
    while sizes.sum() != 1500:      # nudge cells other than the two extremes until 1,500 images
        step = 1 if sizes.sum() < 1500 else -1
        movable = np.nonzero((sizes[2:] + step >= 9) & (sizes[2:] + step <= 26))[0] + 2
        sizes[rng.choice(movable)] += step
    sizes = rng.permutation(sizes).reshape(10, 10)
    return {
        "colour-violation": colour_report(sizes, own=1.0, other=0.0),
        "colour-fair": colour_report(np.full((10, 10), 15), own=1.0, other=1.0),
        "colour-middling": colour_report(np.full((10, 10), 40), own=0.95, other=0.95),
    }


@pytest.fixture
def work(tmp_path) -> Path:
    """An empty working folder: no ddaudit.toml or pyproject.toml to pick up."""
    return tmp_path


def test_biased_report_fails_and_balanced_passes(reports, work):
    failed = run_gate(str(reports["biased"]), "--max-deo-max", "0.3", cwd=work)
    assert failed.returncode == 1, failed.stderr
    assert "FAIL" in failed.stderr and "--max-deo-max" in failed.stderr
    passed = run_gate(str(reports["balanced"]), "--max-deo-max", "0.4", cwd=work)
    assert passed.returncode == 0, passed.stderr
    assert "PASS" in passed.stderr


def test_certain_violation_on_small_cells_exits_1(reports, work):
    """The issue's case: 100 % vs 0 % on 8 to 27 images per cell can never be within 0.3."""
    report = json.loads(reports["colour-violation"].read_text())
    counts = [cell["count"] for cell in report["cells"]]
    assert min(counts) == 8 and max(counts) == 27 and sum(counts) == 1500
    assert sum(count < 20 for count in counts) > 50
    low, high = report["metrics"]["deo_max"]["interval"]
    assert report["metrics"]["deo_max"]["mean"] == 1.0 and 0.3 < low <= high == 1.0
    out = work / "gated.json"
    proc = run_gate(str(reports["colour-violation"]), "--max-deo-max", "0.3", "--json", str(out), cwd=work)
    assert proc.returncode == 1, proc.stderr
    gate = json.loads(out.read_text())["gates"][0]
    assert gate["passed"] is False and gate["inconclusive"] is False
    assert gate["interval"] == pytest.approx([low, high]) and gate["value"] == pytest.approx(low)
    assert "lies at or above 0.3" in gate["reason"] and "below min_group_size 20" in gate["reason"]
    # The point estimate says the same; the decision does not rest on it.
    assert run_gate(str(reports["colour-violation"]), "--max-deo-max", "0.3", "--gate-on", "mean",
                    cwd=work).returncode == 1


def test_certain_pass_on_small_cells_exits_0(reports, work):
    report = json.loads(reports["colour-fair"].read_text())
    assert all(cell["count"] == 15 for cell in report["cells"])
    assert report["metrics"]["deo_max"]["interval"][1] < 0.3
    proc = run_gate(str(reports["colour-fair"]), "--max-deo-max", "0.3", "--min-accuracy", "0.9", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stderr and "below min_group_size 20" in one_line(proc.stderr)


def test_straddling_interval_exits_3_and_says_what_would_settle_it(reports, work):
    report = json.loads(reports["colour-middling"].read_text())
    low, high = report["metrics"]["deo_max"]["interval"]
    estimate = report["metrics"]["deo_max"]["mean"]
    assert low < 0.3 < high and estimate < 0.3
    args = [str(reports["colour-middling"]), "--max-deo-max", "0.3"]
    out = work / "gated.json"
    pending = run_gate(*args, "--json", str(out), cwd=work)
    assert pending.returncode == 3, pending.stderr
    gate = json.loads(out.read_text())["gates"][0]
    assert gate["inconclusive"] and "contains the threshold 0.3" in gate["reason"]
    # Half-widths shrink as 1/sqrt(n): the upper end must move from `high` to 0.3.
    test_low, test_high = report["metrics"]["deo_max"]["interval_test"]
    margin = report["metrics"]["deo_max"]["interval_margin"]
    factor = ((test_high - estimate) / np.sqrt((0.3 - estimate) ** 2 - margin ** 2)) ** 2
    assert f"roughly {factor:.1f}x the test images" in gate["settle"]
    assert factor > 1 and f"smallest cell 40 -> about {int(np.ceil(40 * factor))}" in gate["settle"]
    assert "--inconclusive" in pending.stderr
    assert run_gate(*args, "--inconclusive", "pass", cwd=work).returncode == 0
    assert run_gate(*args, "--inconclusive", "fail", cwd=work).returncode == 1
    assert run_gate(*args, "--gate-on", "mean", cwd=work).returncode == 0


def test_undersized_cell_warns_and_widens(reports, work):
    wide = run_gate(str(reports["undersized"]), "--max-deo-max", "0.9", cwd=work)
    assert wide.returncode == 0, wide.stderr
    assert "below min_group_size 20" in one_line(wide.stderr)
    quiet = run_gate(str(reports["undersized"]), "--max-deo-max", "0.9", "--min-group-size", "5", cwd=work)
    assert quiet.returncode == 0 and "min_group_size" not in quiet.stderr
    pending = run_gate(str(reports["undersized"]), "--max-deo-max", "0.3", cwd=work)
    assert pending.returncode == 3 and "smallest cell 5" in one_line(pending.stderr)


def test_report_without_intervals_still_gates(reports, work):
    report = json.loads(reports["undersized"].read_text())
    for entry in report["metrics"].values():
        for key in ("interval", "interval_method", "interval_test", "interval_margin"):
            entry.pop(key, None)
    old = work / "old-report.json"
    old.write_text(json.dumps(report))
    pending = run_gate(str(old), "--max-deo-max", "0.9", "--gate-on", "mean", cwd=work)
    assert pending.returncode == 3, pending.stderr
    assert "n=5" in one_line(pending.stderr)
    assert run_gate(str(old), "--max-deo-max", "0.9", "--gate-on", "mean", "--min-group-size", "5",
                    cwd=work).returncode == 0


def test_exit_zero_reports_without_failing(reports, work):
    proc = run_gate(str(reports["biased"]), "--max-deo-max", "0.3", "--exit-zero", cwd=work)
    assert proc.returncode == 0
    assert "FAIL" in proc.stderr


def test_no_threshold_is_not_gated(reports, work):
    out = work / "out.json"
    proc = run_gate(str(reports["biased"]), "--json", str(out), cwd=work)
    assert proc.returncode == 0
    assert json.loads(out.read_text())["status"] == "not_gated"


def test_gate_on_ci_straddling_is_inconclusive(reports, work):
    report = json.loads(reports["biased"].read_text())
    low, high = report["metrics"]["deo_max"]["interval"]
    middle = f"{(low + high) / 2:.6f}"
    assert run_gate(str(reports["biased"]), "--max-deo-max", middle, "--gate-on", "ci", cwd=work).returncode == 3


def test_amplification_gates(reports, work):
    report = json.loads(reports["biased"].read_text())
    ratio = report["amplification"]["deo_max"]["ratio"]
    assert ratio > 2
    low, _ = report["amplification"]["deo_max"]["ratio_interval"]
    diff_low, diff_high = report["amplification"]["deo_max"]["difference_interval"]
    assert 0 < low < ratio
    assert run_gate(str(reports["biased"]), "--max-amplification", f"{0.9 * low:.4f}", cwd=work).returncode == 1
    assert run_gate(str(reports["biased"]), "--max-amplification-diff", f"{min(1.0, diff_high + 0.01):.4f}",
                    cwd=work).returncode == 0
    assert run_gate(str(reports["biased"]), "--max-amplification-diff", f"{(diff_low + diff_high) / 2:.4f}",
                    cwd=work).returncode == 3
    # On the point value (as before gating intervals) the ratio passes a loose threshold.
    assert run_gate(str(reports["biased"]), "--max-amplification", f"{ratio + 0.5:.3f}", "--gate-on", "mean",
                    cwd=work).returncode == 0


def test_bad_threshold_name_in_a_profile_gives_2_listing_valid_names(reports, work):
    (work / "pyproject.toml").write_text(
        "[tool.ddaudit]\nmax_deo_max = 0.3\n[tool.ddaudit.profiles.strict]\nmax_deo_mx = 0.1\n")
    proc = run_gate(str(reports["balanced"]), "--profile", "strict", cwd=work)
    assert proc.returncode == 2
    message = one_line(proc.stderr)
    assert "max_deo_mx" in message and "profiles.strict" in message
    assert all(key in message for key in THRESHOLD_KEYS)
    assert "Traceback" not in proc.stderr


def test_unknown_profile_gives_2_listing_profiles(reports, work):
    (work / "ddaudit.toml").write_text("[profiles.ci]\nmax_deo_max = 0.3\n[profiles.release]\nmax_deo_max = 0.2\n")
    proc = run_gate(str(reports["balanced"]), "--profile", "nightly", cwd=work)
    assert proc.returncode == 2
    assert "available profiles: ci, release" in one_line(proc.stderr)


def test_unknown_threshold_flag_gives_2_listing_valid_flags(reports, work):
    proc = run_gate(str(reports["balanced"]), "--max-deo", "0.3", cwd=work)
    assert proc.returncode == 2
    message = one_line(proc.stderr.replace("│", " "))
    assert all(flag in message for flag in THRESHOLD_FLAGS)


def test_threshold_out_of_range_gives_2(reports, work):
    proc = run_gate(str(reports["balanced"]), "--max-deo-max", "30", cwd=work)
    assert proc.returncode == 2
    assert "write 0.3 for 30 %" in one_line(proc.stderr)


def test_config_file_thresholds_apply_and_flags_override(reports, work):
    (work / "pyproject.toml").write_text("[project]\nname = 'x'\n[tool.ddaudit]\nmax-deo-max = 0.4\n")
    assert run_gate(str(reports["biased"]), cwd=work).returncode == 1
    assert run_gate(str(reports["balanced"]), cwd=work).returncode == 0
    assert run_gate(str(reports["biased"]), "--max-deo-max", "1.0", cwd=work).returncode == 0
    other = work / "gates.toml"
    other.write_text("min_accuracy = 0.99\n")
    assert run_gate(str(reports["balanced"]), "--config", str(other), cwd=work).returncode == 1


@pytest.mark.parametrize("content, expected", [
    (None, "does not exist"),
    ("{not json", "is not a JSON file"),
    (json.dumps({"schema": "other/1", "metrics": {}}), "is not a ddaudit report"),
    (json.dumps([1, 2]), "is not a ddaudit report"),
])
def test_bad_report_gives_2_with_one_message(work, content, expected):
    path = work / "ddaudit-report.json"
    if content is not None:
        path.write_text(content)
    proc = run_gate(str(path), "--max-deo-max", "0.3", cwd=work)
    assert proc.returncode == 2
    assert expected in one_line(proc.stderr)
    assert "Traceback" not in proc.stderr


def test_junit_file_parses_and_counts_failures(reports, work):
    junit = work / "gates.xml"
    out = work / "gated.json"
    proc = run_gate(str(reports["biased"]), "--max-deo-max", "0.3", "--max-deo-avg", "0.9", "--min-accuracy", "0.99",
                    "--max-amplification-diff", "0.01", "--junit", str(junit), "--json", str(out), cwd=work)
    assert proc.returncode == 1
    gated = json.loads(out.read_text())
    failed = [g for g in gated["gates"] if not g["passed"] and not g["inconclusive"]]
    assert gated["status"] == "fail" and len(failed) == 3
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    assert int(root.get("failures")) == len(failed) == len(root.findall(".//testcase/failure"))
    assert int(root.get("tests")) == len(gated["gates"]) == 4
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["min_accuracy.threshold"] == "0.99"
    assert float(props["max_deo_max.estimate"]) == pytest.approx(gated["metrics"]["deo_max"]["mean"])
    assert float(props["max_deo_max.value"]) == pytest.approx(gated["metrics"]["deo_max"]["interval"][0])


def test_existing_outputs_need_force(reports, work):
    junit = work / "gates.xml"
    junit.write_text("mine")
    refused = run_gate(str(reports["biased"]), "--max-deo-max", "0.3", "--junit", str(junit), cwd=work)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert junit.read_text() == "mine"
    forced = run_gate(str(reports["biased"]), "--max-deo-max", "0.3", "--junit", str(junit), "--force", cwd=work)
    assert forced.returncode == 1
    assert ET.parse(junit).getroot().tag == "testsuites"


def test_json_to_stdout_is_the_gated_report(reports, work):
    proc = run_gate(str(reports["balanced"]), "--max-deo-max", "0.4", "--json", "-", cwd=work)
    assert proc.returncode == 0
    report = json.loads(proc.stdout)
    assert report["status"] == "pass" and report["gates"][0]["name"] == "max_deo_max"
    assert report["schema"] == "ddaudit.report/1"


def test_several_reports_are_gated_together(reports, work):
    junit = work / "all.xml"
    proc = run_gate(str(reports["balanced"]), str(reports["biased"]), "--max-deo-max", "0.3",
                    "--junit", str(junit), cwd=work)
    assert proc.returncode == 1
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("failures") for s in suites] == ["0", "1"]
    both = run_gate(str(reports["balanced"]), str(reports["undersized"]), "--max-deo-max", "0.3", cwd=work)
    assert both.returncode == 3


def test_github_annotations_and_step_summary(reports, work):
    summary = work / "summary.md"
    env = clean_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary), CI="true")
    proc = run_gate(str(reports["biased"]), str(reports["undersized"]), "--max-deo-max", "0.3", cwd=work, env=env)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("::error ")]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("::warning ")]
    assert len(errors) == 1 and "max_deo_max" in errors[0]
    assert len(warnings) == 1 and "contains the threshold 0.3" in warnings[0] and "smallest cell 5" in warnings[0]
    text = summary.read_text()
    assert text.count("### ddaudit fairness gates") == 2
    assert "FAIL" in text and "INCONCLUSIVE" in text and "| `--max-deo-max` |" in text
    quiet = run_gate(str(reports["biased"]), "--max-deo-max", "0.3", cwd=work)
    assert "::error" not in quiet.stderr


def test_plain_output_when_not_a_terminal(reports, work):
    proc = run_gate(str(reports["biased"]), "--max-deo-max", "0.3", cwd=work, env=clean_env(CI="true"))
    assert "\x1b[" not in proc.stderr
    assert "\r" not in proc.stderr


def test_gate_is_fast_and_never_imports_torch(reports, work):
    code = (
        "import sys, time\n"
        "start = time.perf_counter()\n"
        f"sys.argv = ['ddaudit', 'gate', {str(reports['biased'])!r}, '--max-deo-max', '0.3']\n"
        "from ddaudit.cli import main\n"
        "try:\n    main()\nexcept SystemExit as done:\n    code = done.code\n"
        "print(code, 'torch' in sys.modules, time.perf_counter() - start)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=work,
                          env=clean_env(), timeout=120)
    exit_code, torch_loaded, seconds = proc.stdout.split()
    assert exit_code == "1"
    assert torch_loaded == "False"
    assert float(seconds) < 1.0


def test_unwritable_step_summary_only_warns(reports, work):
    env = clean_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(work))
    proc = run_gate(str(reports["biased"]), "--max-deo-max", "0.3", cwd=work, env=env)
    assert proc.returncode == 1
    assert "cannot append the gate table" in proc.stderr and "Traceback" not in proc.stderr


def test_collect_gate_args_merges_flags_over_the_configuration(reports, work):
    from ddaudit.cli._gate_options import collect_gate_args
    from ddaudit.errors import ConfigError

    (work / "ddaudit.toml").write_text("max_deo_max = 0.3\n[profiles.lenient]\nmax_deo_max = 1.0\n")
    junit = work / "check.xml"
    junit.write_text("")
    args = collect_gate_args(max_deo_avg=0.9, junit=work / "new.xml", cwd=work)
    assert args.settings.thresholds == {"max_deo_max": 0.3, "max_deo_avg": 0.9}
    assert args.min_group_size == 20
    lenient = collect_gate_args(profile="lenient", exit_zero=True, cwd=work)
    assert lenient.settings.thresholds == {"max_deo_max": 1.0} and lenient.settings.exit_zero
    with pytest.raises(ConfigError, match="--force"):
        collect_gate_args(junit=junit, cwd=work)
    with pytest.raises(ConfigError, match="available profiles: lenient"):
        collect_gate_args(profile="strict", cwd=work)
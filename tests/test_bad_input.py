"""Bad input, tried as a new user would: every case exits 2 with one line, before any training.

Each case runs a command in-process (typer's CliRunner) inside a fresh folder
holding good inputs, with every training entry point (evaluators, DM
distillation, the SupCon surrogate, the probe's group classifier, a
third-party script) replaced by a trap. A case passes when the command exits 2,
writes exactly one line to stderr (``error: ...``, no traceback), never reaches
a trap, and leaves every file in the folder as it was.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ddaudit.cli import app

FIXTURES = Path(__file__).parent / "fixtures"
ROUND1 = FIXTURES / "round1" / "round1.json"
DC_CODEBASE = FIXTURES / "codebases" / "datasetcondensation"
BROKEN_CODEBASE = FIXTURES / "codebases" / "broken_dc"
SMALL = ["--real-option", "n_test=20"]
#: A folder that exists but where no file can be created, even by root.
UNWRITABLE = "/proc"


class TrainingReached(BaseException):
    """Raised by a trap: the command got as far as training (BaseException so nothing swallows it)."""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Good inputs every case starts from (copied into each case's own folder)."""
    folder = tmp_path_factory.mktemp("good")
    torch.manual_seed(0)
    images = torch.randn(10, 3, 32, 32)
    labels = torch.arange(10)
    torch.save({"data": [[images, labels]], "accs_all_exps": {"ConvNet": []}}, folder / "res_DM_cmnist_ConvNet_1ipc.pt")
    torch.save({"images": images, "labels": labels}, folder / "second.pt")
    torch.save(torch.tensor(0.01), folder / "lr_best.pt")
    shutil.copy(ROUND1, folder / "report.json")
    shutil.copytree(DC_CODEBASE, folder / "codebase")
    (folder / "existing.json").write_text("{}\n")
    (folder / "outputs").mkdir()
    return folder


@pytest.fixture
def work(inputs, tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "work"
    shutil.copytree(inputs, folder)
    monkeypatch.chdir(folder)
    for name in ("CI", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "DDAUDIT_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture(autouse=True)
def traps(monkeypatch) -> list[str]:
    """Replace every entry point that trains (or runs a third-party script) with a trap."""
    import ddaudit.distill
    import ddaudit.distributed
    import ddaudit.evaluate
    import ddaudit.evaluate.engine
    import ddaudit.hooks.patchers._session
    import ddaudit.mitigate.surrogate
    import ddaudit.mitigate.without_labels
    import ddaudit.probe._probe

    reached: list[str] = []

    def trap(name: str) -> Callable:
        def reached_training(*args, **kwargs):
            reached.append(name)
            raise TrainingReached(name)

        return reached_training

    for module, name in ((ddaudit.evaluate, "train_and_predict"), (ddaudit.distributed, "train_and_predict"), (ddaudit.evaluate.engine, "train_and_predict"),
                         (ddaudit.distill, "distill_dm"), (ddaudit.mitigate.surrogate, "surrogate_embeddings"),
                         (ddaudit.mitigate.without_labels, "label_free"),
                         (ddaudit.probe._probe, "load_or_train"),
                         (ddaudit.hooks.patchers._session, "run_as_main")):
        monkeypatch.setattr(module, name, trap(f"{module.__name__}.{name}"))
    return reached


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under *folder* with a hash of its content and its modification time."""
    state = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            state[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest() + str(path.stat().st_mtime_ns)
        else:
            state[str(path.relative_to(folder))] = "dir"
    return state


# ---------------------------------------------------------------- the catalogue
# (id, argv, setup(work) run first or None, a fragment the message must contain or None)

SYN = "res_DM_cmnist_ConvNet_1ipc.pt"
CHECK = ["check", SYN, "--real", "cmnist-fg", *SMALL]


def write(name: str, content: bytes | str) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        path = work / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return setup


def save_tensor(name: str, value) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        torch.save(value, work / name)
    return setup


def save_set(name: str, images, labels) -> Callable[[Path], None]:
    return save_tensor(name, {"images": images, "labels": labels})


class Unpicklable:
    """A class a weights_only load must refuse to build."""


def damaged_report(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        report = json.loads((work / "report.json").read_text())
        change(report)
        (work / "damaged.json").write_text(json.dumps(report))
    return setup


def set_key(path: tuple, value) -> Callable[[dict], None]:
    def change(report: dict) -> None:
        node = report
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


CHECK_FILES = [
    ("check-missing-set", ["check", "nope.pt", "--real", "cmnist-fg"], None, "does not exist"),
    ("check-empty-file", ["check", "empty.pt", "--real", "cmnist-fg"], write("empty.pt", b""), None),
    ("check-garbage-file", ["check", "garbage.pt", "--real", "cmnist-fg"], write("garbage.pt", b"\x00not a tensor" * 10), None),
    ("check-pickle-with-code", ["check", "code.pt", "--real", "cmnist-fg"], save_tensor("code.pt", {"images": Unpicklable()}), None),
    ("check-second-set-broken", [*CHECK[:2], "bad.pt", *CHECK[2:]], write("bad.pt", b"garbage"), "bad.pt"),
    ("check-second-set-missing", [*CHECK[:2], "missing.pt", *CHECK[2:]], None, "missing.pt"),
    ("check-wrong-image-size", ["check", "small.pt", "--real", "cmnist-fg"],
     save_set("small.pt", torch.randn(10, 3, 16, 16), torch.arange(10)), "16x16"),
    ("check-label-out-of-range", ["check", "labels.pt", "--real", "cmnist-fg"],
     save_set("labels.pt", torch.randn(10, 3, 32, 32), torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 12])), "labels"),
    ("check-missing-class", ["check", "nine.pt", "--real", "cmnist-fg"],
     save_set("nine.pt", torch.randn(9, 3, 32, 32), torch.arange(9)), "class"),
    ("check-npz-without-images", ["check", "other.npz", "--real", "cmnist-fg"],
     lambda w: np.savez(w / "other.npz", weights=np.ones(3)), None),
    ("check-unknown-format", [*CHECK, "--format", "zip"], None, "zip"),
    ("check-index-out-of-range", [*CHECK, "--index", "5"], None, None),
    ("check-lr-file-missing", [*CHECK, "--lr-file", "nope_lr.pt"], None, "nope_lr.pt"),
    ("check-lr-file-garbage", [*CHECK, "--lr-file", "lr_bad.pt"], write("lr_bad.pt", b"garbage"), "lr_bad.pt"),
    ("check-lr-file-negative", [*CHECK, "--lr-file", "lr_neg.pt"], save_tensor("lr_neg.pt", torch.tensor(-1.0)), "positive"),
    ("check-lr-and-lr-file", [*CHECK, "--lr-file", "lr_best.pt", "--lr", "0.1"], None, "--lr-file"),
    ("check-weights-missing", [*CHECK, "--weights", "nope_w.pt"], None, "nope_w.pt"),
    ("check-weights-garbage", [*CHECK, "--weights", "w_bad.pt"], write("w_bad.pt", b"garbage"), None),
    ("check-pseudo-groups-garbage", [*CHECK, "--pseudo-groups", "g_bad.pt"], write("g_bad.pt", b"garbage"), None),
    ("check-weights-wrong-length", [*CHECK, "--weights", "w_short.pt"],
     save_tensor("w_short.pt", {"weights": torch.ones(7)}), None),
]

CHECK_OPTIONS = [
    ("check-unknown-preset", ["check", SYN, "--real", "nosuchdata"], None, "nosuchdata"),
    ("check-preset-root-missing", ["check", SYN, "--real", "cifar10-s:/nonexistent/root"], None, None),
    ("check-real-option-malformed", ["check", SYN, "--real", "cmnist-fg", "--real-option", "n_test"], None, "KEY=VALUE"),
    ("check-real-option-unknown", ["check", SYN, "--real", "cmnist-fg", "--real-option", "colour=3"], None, "colour"),
    ("check-n-boot-negative", [*CHECK, "--n-boot", "-1"], None, "--n-boot"),
    ("check-n-boot-not-a-number", [*CHECK, "--n-boot", "abc"], None, "--n-boot"),
    ("check-num-eval-zero", [*CHECK, "--num-eval", "0"], None, "--num-eval"),
    ("check-confidence-above-one", [*CHECK, "--confidence", "1.5"], None, "--confidence"),
    ("check-device-tpu", [*CHECK, "--device", "tpu"], None, "tpu"),
    ("check-device-malformed", [*CHECK, "--device", "cuda:x"], None, "cuda:x"),
    ("check-engine-unknown", [*CHECK, "--engine", "turbo"], None, "turbo"),
    ("check-space-unknown", [*CHECK, "--space", "hsv"], None, "hsv"),
    ("check-zca-contradicts-space", [*CHECK, "--zca", "--space", "raw"], None, "--zca"),
    ("check-mean-without-std", [*CHECK, "--mean", "0.5"], None, "--std"),
    ("check-mean-wrong-channels", [*CHECK, "--mean", "0.1", "--mean", "0.2", "--std", "1"], None, "--mean"),
    ("check-std-zero", [*CHECK, "--mean", "0.5", "--std", "0"], None, "--std"),
    ("check-protocol-unknown", [*CHECK, "--protocol", "fastest"], None, "fastest"),
    ("check-model-unknown", [*CHECK, "--model", "NoSuchNet"], None, "NoSuchNet"),
    ("check-aug-unknown", [*CHECK, "--aug", "wild"], None, "wild"),
    ("check-epochs-zero", [*CHECK, "--epochs", "0"], None, "epochs"),
    ("check-batch-size-zero", [*CHECK, "--batch-size", "0"], None, "batch"),
    ("check-mtt-without-lr", [*CHECK, "--protocol", "mtt"], None, "lr"),
    ("check-missing-real", ["check", SYN], None, "--real"),
    ("check-cache-dir-is-a-file", [*CHECK, "--cache-dir", "existing.json", "--full-reference"], None, "existing.json"),
]

CHECK_OUTPUTS = [
    ("check-json-equals-markdown", [*CHECK, "--json", "out.json", "--markdown", "out.json"], None, "out.json"),
    ("check-json-equals-junit", [*CHECK, "--json", "o.json", "--junit", "o.json"], None, "o.json"),
    ("check-json-overwrites-input", [*CHECK, "--json", SYN, "--force"], None, SYN),
    ("check-json-exists", [*CHECK, "--json", "existing.json"], None, "--force"),
    ("check-json-folder-missing", [*CHECK, "--json", "nofolder/out.json"], None, "nofolder"),
    ("check-json-unwritable-folder", [*CHECK, "--json", f"{UNWRITABLE}/ddaudit-report.json"], None, UNWRITABLE),
    ("check-json-is-a-folder", [*CHECK, "--json", "outputs"], None, "outputs"),
    ("check-predictions-unwritable", [*CHECK, "--save-predictions", f"{UNWRITABLE}/p.npz"], None, UNWRITABLE),
    ("check-json-with-two-sets", [*CHECK[:2], "second.pt", *CHECK[2:], "--json", "out.json"], None, "--json"),
    ("check-threshold-percent", [*CHECK, "--max-deo-max", "30"], None, "0.3"),
    ("check-threshold-not-a-number", [*CHECK, "--max-deo-max", "high"], None, "--max-deo-max"),
    ("check-threshold-flag-unknown", [*CHECK, "--max-deo", "0.3"], None, "--max-deo-max"),
    ("check-gate-on-unknown", [*CHECK, "--gate-on", "median"], None, "median"),
    ("check-min-group-size-negative", [*CHECK, "--min-group-size", "-1"], None, "--min-group-size"),
    ("check-profile-without-config", [*CHECK, "--profile", "release"], None, "release"),
    ("check-config-missing", [*CHECK, "--config", "nope.toml"], None, "nope.toml"),
    ("check-config-not-toml", [*CHECK, "--config", "bad.toml"], write("bad.toml", "max_deo_max = = 3"), "bad.toml"),
    ("check-config-unknown-key", [*CHECK, "--config", "typo.toml"], write("typo.toml", "max_deo_mx = 0.3\n"), "max_deo_mx"),
]

GATE = [
    ("gate-report-missing", ["gate", "nope.json"], None, "nope.json"),
    ("gate-report-not-json", ["gate", "bad.json"], write("bad.json", "{not json"), "JSON"),
    ("gate-report-is-a-list", ["gate", "list.json"], write("list.json", "[1, 2]"), None),
    ("gate-report-wrong-schema", ["gate", "other.json"], write("other.json", '{"schema": "other/1"}'), "schema"),
    ("gate-metrics-not-object", ["gate", "damaged.json", "--max-deo-max", "0.3"],
     damaged_report(set_key(("metrics",), [1, 2])), "metrics"),
    ("gate-cells-not-objects", ["gate", "damaged.json", "--max-deo-max", "0.3"],
     damaged_report(set_key(("cells",), [1, 2, 3])), "cells"),
    ("gate-cell-count-text", ["gate", "damaged.json", "--max-deo-max", "0.3"],
     damaged_report(lambda r: r["cells"][0].update(count="six")), "count"),
    ("gate-metric-mean-text", ["gate", "damaged.json", "--max-deo-max", "0.3"],
     damaged_report(lambda r: r["metrics"]["deo_max"].update(mean="high")), "deo_max"),
    ("gate-amplification-not-object", ["gate", "damaged.json", "--max-amplification", "2"],
     damaged_report(set_key(("amplification", "deo_max"), 3)), "amplification"),
    ("gate-class-names-not-list", ["gate", "damaged.json", "--max-deo-max", "0.3"],
     damaged_report(set_key(("real", "class_names"), "digits")), "class_names"),
    ("gate-ci-malformed", ["gate", "damaged.json", "--max-deo-max", "0.3", "--gate-on", "ci"],
     damaged_report(lambda r: r["metrics"]["deo_max"].update(ci=[0.1])), "ci"),
    ("gate-json-overwrites-report", ["gate", "report.json", "--json", "report.json", "--force"], None, "report.json"),
    ("gate-json-equals-junit", ["gate", "report.json", "--json", "g.json", "--junit", "g.json"], None, "g.json"),
    ("gate-json-with-two-reports", ["gate", "report.json", "existing.json", "--json", "g.json"], None, "--json"),
    ("gate-junit-unwritable", ["gate", "report.json", "--junit", f"{UNWRITABLE}/gates.xml"], None, UNWRITABLE),
    ("gate-report-is-a-folder", ["gate", "outputs"], None, "outputs"),
    ("gate-inconclusive-unknown", ["gate", "report.json", "--inconclusive", "maybe"], None, "maybe"),
]

WEIGHTS = [
    ("weights-output-exists", ["weights", "--real", "cmnist-fg", "-o", "existing.json"], None, "--force"),
    ("weights-same-outputs", ["weights", "--real", "cmnist-fg", "-o", "w.pt", "--pseudo-groups", "w.pt"], None, None),
    ("weights-device-tpu", ["weights", "--real", "cmnist-fg", "-o", "w.pt", "--device", "tpu"], None, "tpu"),
    ("weights-normalize-unknown", ["weights", "--real", "cmnist-fg", "-o", "w.pt", "--normalize", "none"], None, None),
    ("weights-unknown-preset", ["weights", "--real", "nosuchdata", "-o", "w.pt"], None, "nosuchdata"),
    ("weights-epochs-zero", ["weights", "--real", "cmnist-fg", "-o", "w.pt", "--epochs", "0"], None, "epochs"),
    ("weights-output-unwritable", ["weights", "--real", "cmnist-fg", "-o", f"{UNWRITABLE}/w.pt"], None, UNWRITABLE),
    ("weights-model-unknown", ["weights", "--real", "cmnist-fg", "-o", "w.pt", "--model", "NoSuchNet"], None, "NoSuchNet"),
]

RUN = [
    ("run-no-script", ["run", "--codebase", "datasetcondensation"], None, "--"),
    ("run-unknown-codebase", ["run", "--codebase", "tensorflow", "--", "codebase/main_DM.py"], None, "tensorflow"),
    ("run-script-missing", ["run", "--codebase", "datasetcondensation", "--", "codebase/nope.py"], None, "nope.py"),
    ("run-summary-exists", ["run", "--codebase", "datasetcondensation", "--mode", "none", "--summary", "existing.json",
                            "--", "codebase/main_DM.py"], None, "--force"),
    ("run-summary-unwritable", ["run", "--codebase", "datasetcondensation", "--mode", "none", "--summary",
                                f"{UNWRITABLE}/s.json", "--", "codebase/main_DM.py"], None, UNWRITABLE),
    ("run-groups-missing", ["run", "--codebase", "datasetcondensation", "--groups", "nope_groups.pt", "--",
                            "codebase/main_DM.py"], None, "nope_groups.pt"),
    ("run-mode-unknown", ["run", "--codebase", "datasetcondensation", "--mode", "fairest", "--",
                          "codebase/main_DM.py"], None, "fairest"),
    ("run-fork-not-as-expected", ["run", "--codebase", "datasetcondensation", "--mode", "sync", "--groups", "g.npy",
                                  "--", "broken/main.py"],
     lambda w: (shutil.copytree(BROKEN_CODEBASE, w / "broken"), np.save(w / "g.npy", np.zeros(10, dtype=np.int64))),
     None),
    ("run-weights-without-file", ["run", "--codebase", "datasetcondensation", "--mode", "weights", "--",
                                  "codebase/main_DM.py"], None, "weights"),
    ("run-sample-without-weights", ["run", "--codebase", "datasetcondensation", "--mode", "none", "--sample-by-weight",
                                    "--", "codebase/main_DM.py"], None, "--weights"),
    ("run-sample-and-mode-weights", ["run", "--codebase", "datasetcondensation", "--mode", "weights", "--weights",
                                     "w.npy", "--sample-by-weight", "--", "codebase/main_DM.py"],
     lambda w: np.save(w / "w.npy", np.ones(90)), "twice"),
    ("run-sample-codebase-without-draws", ["run", "--codebase", "mtt", "--mode", "none", "--weights", "w.npy",
                                           "--sample-by-weight", "--", "codebase/main_DM.py"],
     lambda w: np.save(w / "w.npy", np.ones(90)), "permutation"),
    ("run-balanced-without-groups", ["run", "--codebase", "datasetcondensation", "--mode", "none", "--batches",
                                     "balanced", "--", "codebase/main_DM.py"], None, "--groups FILE or --dataset"),
    ("run-balanced-and-sample-by-weight", ["run", "--codebase", "datasetcondensation", "--mode", "none", "--groups",
                                           "g.npy", "--weights", "w.npy", "--sample-by-weight", "--batches", "balanced",
                                           "--", "codebase/main_DM.py"],
     lambda w: (np.save(w / "w.npy", np.ones(90)), np.save(w / "g.npy", np.zeros(90, dtype=np.int64))), "use one"),
    ("run-balanced-codebase-without-draws", ["run", "--codebase", "mtt", "--mode", "none", "--groups", "g.npy",
                                             "--batches", "balanced", "--", "codebase/main_DM.py"],
     lambda w: np.save(w / "g.npy", np.zeros(90, dtype=np.int64)), "permutation"),
    ("run-batches-unknown", ["run", "--codebase", "datasetcondensation", "--batches", "stratified", "--",
                             "codebase/main_DM.py"], None, "stratified"),
    ("run-weights-negative", ["run", "--codebase", "datasetcondensation", "--mode", "weights", "--weights", "w.npy",
                              "--", "codebase/main_DM.py"],
     lambda w: np.save(w / "w.npy", np.r_[np.ones(89), -1.0]), "non-negative"),
    ("run-weights-nan", ["run", "--codebase", "datasetcondensation", "--mode", "none", "--weights", "w.npy",
                         "--sample-by-weight", "--", "codebase/main_DM.py"],
     lambda w: np.save(w / "w.npy", np.r_[np.ones(89), np.nan]), "finite"),
]

DEMO = [
    ("demo-ipc-zero", ["demo", "--ipc", "0"], None, "--ipc"),
    ("demo-bias-ratio-above-one", ["demo", "--bias-ratio", "1.5"], None, "--bias-ratio"),
    ("demo-dataset-unknown", ["demo", "--dataset", "nosuchdata"], None, "nosuchdata"),
    ("demo-out-is-a-file", ["demo", "--out", "existing.json"], None, "existing.json"),
    ("demo-json-exists", ["demo", "--out", "outputs", "--json", "existing.json"], None, "--force"),
    ("demo-device-tpu", ["demo", "--device", "tpu"], None, "tpu"),
    ("demo-preset-unknown", ["demo", "--preset", "tpu-pod"], None, "tpu-pod"),
]

PROBE = [
    ("probe-missing-set", ["probe", "nope.pt", "--real", "cmnist-fg"], None, "nope.pt"),
    ("probe-device-tpu", ["probe", SYN, "--real", "cmnist-fg", "--device", "tpu"], None, "tpu"),
    ("probe-json-overwrites-input", ["probe", SYN, "--real", "cmnist-fg", "--json", SYN, "--force"], None, SYN),
]

def attribute_files(test_columns: int = 2, constant: bool = False) -> Callable[[Path], None]:
    """A train and a test tensors file of 3x32x32 images with an (N, K) attribute table."""
    def setup(work: Path) -> None:
        for name, n, columns in (("train.pt", 20, 2), ("test.pt", 10, test_columns)):
            table = torch.stack([torch.arange(n) % (k + 2) for k in range(columns)], dim=1)
            if constant:
                table[:, 1] = 1
            torch.save({"x": torch.zeros(n, 3, 32, 32), "y": torch.arange(n) % 10, "a": table,
                        "attributes": ["colour", "gender", "age"][:columns]}, work / name)
    return setup


TENSORS = ["check", SYN, "--real", "tensors:train.pt,test.pt"]
ATTRIBUTES = [
    ("check-sensitive-unknown-name", [*TENSORS, "--sensitive", "colour,hair"], attribute_files(), "hair"),
    ("check-sensitive-unknown-preset-attribute", ["check", SYN, "--real", "cmnist-fgbg", "--sensitive", "stroke"],
     None, "stroke"),
    ("check-sensitive-named-twice", [*TENSORS, "--sensitive", "colour,Colour"], attribute_files(), "twice"),
    ("check-sensitive-one-value", [*TENSORS, "--sensitive", "colour,gender"], attribute_files(constant=True),
     "single value"),
    ("check-groups-wrong-columns", TENSORS, attribute_files(test_columns=3), "attribute column"),
    ("check-sensitive-single-attribute-preset", [*CHECK, "--sensitive", "colour"], None, "sensitive"),
]

CASES = [*CHECK_FILES, *CHECK_OPTIONS, *CHECK_OUTPUTS, *GATE, *WEIGHTS, *RUN, *DEMO, *PROBE, *ATTRIBUTES]


def test_the_catalogue_is_large_and_unique():
    assert len(CASES) >= 60
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("name,argv,setup,fragment", CASES, ids=[case[0] for case in CASES])
def test_bad_input_exits_2_with_one_line_before_training(name, argv, setup, fragment, work, traps):
    if setup is not None:
        setup(work)
    before = snapshot(work)
    result = CliRunner().invoke(app, argv)
    assert not traps, f"{name}: reached training ({traps}) before refusing the input"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, (name, result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    if fragment is not None:
        assert fragment in lines[0], lines[0]
    assert snapshot(work) == before, f"{name}: a file in the working folder changed"

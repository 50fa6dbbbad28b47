"""FairDD and COBRA forks and ``--device cpu``: the fixtures in tests/fixtures/codebases/{fairdd,cobra}
read (image, label, group) rows, have their own fair mode and CUDA-bound metric code. Expected losses
are recomputed here from the drawn rows with the formulas written out."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from ddaudit.cli import app
from ddaudit.data import load_real
from ddaudit.errors import PatchError
from ddaudit.hooks.patchers import patch
from ddaudit.hooks.patchers._forks import option_values

FIXTURES = Path(__file__).parent / "fixtures" / "codebases"
FAIRDD, COBRA = FIXTURES / "fairdd", FIXTURES / "cobra"
PRESET = {"dataset": "cmnist-fg", "dataset_options": {"n_train": 80, "n_test": 4}}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def traced(script, argv, **options):
    with patch("datasetcondensation", script, **options) as session:
        session.run([str(a) for a in argv])
        trace = list(sys.modules["utils"].TRACE)
    return session.summary, trace


def paired(trace, kind):
    last, out = None, []
    for entry in trace:
        if entry["kind"] == "draw":
            last = entry["idx"]
        elif entry["kind"] == kind:
            out.append((entry, last))
    return out


def test_fairdd_dm_under_sync_equals_the_forks_own_fairdd_loss(tmp_path):
    argv = ["--Iteration", 2, "--ipc", 1, "--batch_real", 6]
    ours, ours_trace = traced(FAIRDD / "main_DM.py", argv + ["--save_path", tmp_path / "a"], mode="sync",
                              device="cpu", **PRESET)
    theirs, theirs_trace = traced(FAIRDD / "main_DM.py", argv + ["--FairDD", "--save_path", tmp_path / "b"],
                                  mode="none", device="cpu", **PRESET)
    assert ours.fork == theirs.fork == "fairdd"
    mine, fork = [e["loss"] for e in ours_trace if e["kind"] == "dm"], [e["loss"] for e in theirs_trace if e["kind"] == "dm"]
    assert len(mine) == len(fork) == 3 * 10
    np.testing.assert_allclose(mine, fork, rtol=1e-5)
    saved = [torch.load(tmp_path / d / "res_DM_TOY_ConvNet_1ipc.pt", weights_only=True)["data"][-1][0] for d in "ab"]
    torch.testing.assert_close(saved[0], saved[1], rtol=1e-4, atol=1e-5)
    assert ours.calls_by_site["embed"] == 30 and theirs.calls_by_site["embed"] == 30


def test_fork_rows_carry_the_preset_groups_train_and_test(tmp_path):
    summary, trace = traced(FAIRDD / "main_DM.py", ["--Iteration", 0, "--ipc", 1, "--batch_real", 6,
                                                    "--save_path", tmp_path], mode="none", device="cpu", **PRESET)
    real = load_real("cmnist-fg", n_train=80, n_test=4)
    (evaluation,) = [e for e in trace if e["kind"] == "eval"]  # the metric code read datum[2] of every test row
    assert 0.0 <= evaluation["acc"] <= 1.0
    seen = {int(c): {int(g): n for g, n in groups.items()} for c, groups in summary.groups_seen.items()}
    expected: dict[int, dict[int, int]] = {}
    for entry, idx in paired(trace, "dm"):
        for g in real.train.a[idx].tolist():
            expected.setdefault(entry["c"], {}).setdefault(g, 0)
            expected[entry["c"]][g] += 1
    assert seen == expected
    assert any("(image, label, group)" in note for note in summary.notes)


@pytest.mark.parametrize("script, given", [
    (FAIRDD / "main_DM.py", ["--FairDD"]),
    (FAIRDD / "main_DM.py", ["--Fair"]),
    (COBRA / "train_dc.py", ["--mode", "cobra"]),
    (COBRA / "train_dc.py", ["--mode=fairdd"]),
])
def test_the_forks_own_fair_mode_is_refused_under_a_ddaudit_mode(tmp_path, script, given):
    with pytest.raises(PatchError, match="own fair mode"):
        with patch("datasetcondensation", script, mode="sync", device="cpu", **PRESET) as session:
            session.run(given + ["--save_path", str(tmp_path)])
    assert not (tmp_path / "res_DC_TOY_ConvNet_2ipc_cobra.pt").exists()
    result = CliRunner().invoke(app, ["run", "-c", "fairdd", "--dataset", "cmnist-fg", "--device", "cpu", "--",
                                      str(script), *given, "--save_path", str(tmp_path)])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--mode none" in errors[0]


def test_option_matching_follows_argparse_prefixes():
    options = ["--mode", "--model", "--FairDD"]
    assert option_values(["--mod", "x"], "--mode", options) == []  # ambiguous for argparse too
    assert option_values(["--mode", "cobra"], "--mode", options) == [("--mode", "cobra")]
    assert option_values(["--Fa"], "--FairDD", options) == [("--Fa", None)]
    assert option_values(["--model", "cobra"], "--mode", options) == []


def distance_wb(gw_syn, gw_real):
    total = 0.0
    for s, r in zip(gw_syn, gw_real):
        if r.ndim == 1:
            continue
        s, r = s.reshape(s.shape[0], -1), r.reshape(r.shape[0], -1)
        total = total + (1 - (s * r).sum(-1) / (s.norm(dim=-1) * r.norm(dim=-1) + 1e-6)).sum()
    return total


def test_cobra_dc_vanilla_under_sync_matches_one_real_gradient_per_group(tmp_path):
    summary, trace = traced(COBRA / "train_dc.py", ["--save_path", tmp_path, "--batch_real", 8], mode="sync",
                            device="cpu", **PRESET)
    real = load_real("cmnist-fg", n_train=80, n_test=4)
    terms = paired(trace, "dc")
    assert summary.fork == "cobra" and len(terms) == 2 * 10 and summary.calls_by_site == {"match_loss": 20}
    for entry, idx in terms:
        net, groups, c = entry["net"], real.train.a[idx], entry["c"]
        params = list(net.parameters())
        syn = entry["img_syn"]
        gw_syn = torch.autograd.grad(F.cross_entropy(net(syn), torch.full((syn.shape[0],), c)), params)
        expected = 0.0
        for g in torch.unique(groups):
            rows = entry["img_real"][groups == g]
            grads = torch.autograd.grad(F.cross_entropy(net(rows), torch.full((rows.shape[0],), c)), params)
            expected += float(distance_wb(gw_syn, grads))
        assert entry["loss"] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    from ddaudit.io import load_synthetic

    synthetic = load_synthetic(tmp_path / "res_DC_TOY_ConvNet_2ipc_vanilla.pt")
    assert synthetic.images.shape == (20, 3, 32, 32)


def test_device_cpu_runs_cuda_bound_code_and_is_undone(tmp_path):
    originals = (torch.cuda.is_available, torch.cuda.device_count)
    argv = ["--Iteration", 0, "--ipc", 1, "--batch_real", 6, "--save_path", tmp_path]
    if not torch.cuda.is_available():  # without the shim the fork's metric code needs a GPU
        with pytest.raises((RuntimeError, AssertionError)):
            traced(FAIRDD / "main_DM.py", argv, mode="none", **PRESET)
    summary, trace = traced(FAIRDD / "main_DM.py", argv, mode="none", device="cpu", **PRESET)
    assert summary.device == "cpu" and any(e["kind"] == "eval" for e in trace)
    assert (torch.cuda.is_available, torch.cuda.device_count) == originals
    assert torch.zeros(1).to("cpu").device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises((RuntimeError, AssertionError)):
            torch.zeros(1).cuda()

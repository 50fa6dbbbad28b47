"""Patchers run the fixture codebases (tests/fixtures/codebases) unchanged and must
reproduce FairDD's losses, recover the groups of real rows, count what they did and
undo every patch. Expected values are recomputed here from the fixtures' own
records (their TRACE lists) with independent implementations of the formulas."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from ddaudit.cli import app
from ddaudit.errors import ConfigError, InputError, PatchError
from ddaudit.hooks.patchers import load_groups, patch, run

FIXTURES = Path(__file__).parent / "fixtures" / "codebases"
DC = FIXTURES / "datasetcondensation"
DC_ROWS, DC_CLASSES = 90, 3


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def biased_groups(labels: np.ndarray, num_groups: int, bias: float, seed: int) -> np.ndarray:
    """Group = own class with probability *bias*, otherwise a uniformly random group."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(len(labels)) < bias, labels % num_groups, rng.integers(0, num_groups, len(labels)))


DC_LABELS = np.repeat(np.arange(DC_CLASSES), 30)
DC_GROUPS = biased_groups(DC_LABELS, 3, 0.7, seed=0)


def run_traced(codebase, script, argv, trace_module="utils", **options):
    """Run a fixture script under the patcher; return (summary, the fixture's TRACE)."""
    with patch(codebase, script, **options) as session:
        session.run([str(a) for a in argv])
        trace = list(sys.modules[trace_module].TRACE)
    return session.summary, trace


def paired(trace, kind):
    """(entry, indices of the draw that produced its real batch) for every *kind* entry."""
    last, out = None, []
    for entry in trace:
        if entry["kind"] == "draw":
            last = entry["idx"]
        elif entry["kind"] == kind:
            out.append((entry, last))
    return out


def raw_embed(net, x):
    """The fixture network's own embedding, bypassing the patcher's instance wrapper."""
    return type(net).embed(net, x)


def fairdd_dm(real_feat, groups, syn_feat, normalise=False):
    """FairDD's DM term: sum over groups present of ||mean real_g - mean syn||^2."""
    real_feat, syn_feat = real_feat.double(), syn_feat.double()
    present = torch.unique(groups)
    total = sum(((real_feat[groups == g].mean(0) - syn_feat.mean(0)) ** 2).sum() for g in present)
    return total / len(present) if normalise else total


# ------------------------------------------------------------------------------ DM


def test_dm_sync_loss_and_update_equal_fairdd(tmp_path):
    summary, trace = run_traced(
        "datasetcondensation", DC / "main_DM.py", ["--Iteration", 0, "--save_path", tmp_path], groups=DC_GROUPS
    )
    terms = paired(trace, "dm")
    assert len(terms) == DC_CLASSES
    syn = next(e for e in trace if e["kind"] == "before_step")["image_syn"].clone().requires_grad_(True)
    expected_total = 0.0
    for entry, idx in terms:
        groups = torch.as_tensor(DC_GROUPS[idx])
        real = raw_embed(entry["net"], entry["img_real"])
        expected = fairdd_dm(real, groups, raw_embed(entry["net"], entry["img_syn"]))
        assert entry["loss"] == pytest.approx(float(expected), rel=1e-5)
        c = entry["c"]
        expected_total = expected_total + fairdd_dm(real, groups, raw_embed(entry["net"], syn[2 * c : 2 * c + 2]))
    (gradient,) = torch.autograd.grad(expected_total, syn)
    saved = torch.load(tmp_path / "res_DM_TOY_ConvNet_2ipc.pt", weights_only=True)["data"][-1][0]
    torch.testing.assert_close(saved, (syn - 1.0 * gradient).detach().float(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["normalized", "barycenter", "weights"])
def test_dm_other_modes_match_their_formulas(tmp_path, mode):
    weights = np.random.default_rng(1).uniform(0.2, 2.0, DC_ROWS)
    options = {"groups": DC_GROUPS}
    if mode == "normalized":
        options.update(mode="sync", faithful=False)
    elif mode == "barycenter":
        options.update(mode="barycenter")
    else:
        options.update(mode="weights", weights=weights)
    summary, trace = run_traced("datasetcondensation", DC / "main_DM.py", ["--save_path", tmp_path], **options)
    for entry, idx in paired(trace, "dm"):
        groups = torch.as_tensor(DC_GROUPS[idx])
        real = raw_embed(entry["net"], entry["img_real"]).double()
        syn_mean = raw_embed(entry["net"], entry["img_syn"]).double().mean(0)
        if mode == "normalized":
            expected = fairdd_dm(real, groups, raw_embed(entry["net"], entry["img_syn"]), normalise=True)
        elif mode == "barycenter":
            centre = torch.stack([real[groups == g].mean(0) for g in torch.unique(groups)]).mean(0)
            expected = ((centre - syn_mean) ** 2).sum()
        else:
            w = torch.as_tensor(weights[idx]).unsqueeze(1)
            expected = (((w * real).sum(0) / w.sum() - syn_mean) ** 2).sum()
        assert entry["loss"] == pytest.approx(float(expected), rel=1e-5)
    assert summary.intercepted_calls == 3 * DC_CLASSES


def test_weighted_permutation_puts_each_row_first_in_proportion_to_its_weight():
    from ddaudit.hooks.patchers._draws import weighted_permutation

    rng = np.random.default_rng(0)
    weights = np.array([1.0, 2.0, 3.0, 4.0, 0.0])
    firsts = np.array([weighted_permutation(np.arange(5), weights, rng.random)[0] for _ in range(20000)])
    share = np.bincount(firsts, minlength=5) / len(firsts)
    # Successive sampling: the first row is row i with probability w_i / sum(w); a zero weight is never first.
    np.testing.assert_allclose(share, weights / weights.sum(), atol=0.012)
    orders = [weighted_permutation(np.arange(5), weights, rng.random) for _ in range(200)]
    assert all(sorted(order) == list(range(5)) and order[-1] == 4 for order in orders)
    # Rows without weight still come in random order (no fixed fallback order).
    unweighted = np.array([weighted_permutation(np.arange(4), np.zeros(4), rng.random)[0] for _ in range(4000)])
    np.testing.assert_allclose(np.bincount(unweighted, minlength=4) / 4000, 0.25, atol=0.03)


def test_sample_by_weight_draws_distinct_positive_weight_rows_and_leaves_the_loss_plain(tmp_path):
    rng = np.random.default_rng(3)
    weights = np.zeros(DC_ROWS)
    heavy = np.concatenate([rng.choice(np.arange(c * 30, c * 30 + 30), 20, replace=False) for c in range(DC_CLASSES)])
    weights[heavy] = rng.uniform(0.5, 2.0, heavy.size)

    def draws(seed):
        summary, trace = run_traced(
            "datasetcondensation", DC / "main_DM.py", ["--save_path", tmp_path / str(seed)],
            mode="none", weights=weights, sample_by_weight=True, seed=seed,
        )
        return summary, trace, [e["idx"] for e in trace if e["kind"] == "draw"]

    summary, trace, drawn = draws(0)
    assert summary.sampling == "weights" and summary.to_dict()["sampling"] == "weights"
    batches = [idx for idx in drawn if len(idx) == 16]
    assert len(batches) == 3 * DC_CLASSES  # one class batch per class and iteration
    for idx in drawn:  # every draw: distinct rows, all of positive weight while any remain (16 <= 20)
        assert len(set(idx.tolist())) == len(idx) and np.all(weights[idx] > 0)
    for entry, idx in paired(trace, "dm"):  # mode none: the script's own plain mean, on the rows drawn
        real = raw_embed(entry["net"], entry["img_real"]).double()
        expected = ((real.mean(0) - raw_embed(entry["net"], entry["img_syn"]).double().mean(0)) ** 2).sum()
        assert entry["loss"] == pytest.approx(float(expected), rel=1e-5)
    _, _, again = draws(0)
    _, _, other = draws(1)
    assert all(np.array_equal(a, b) for a, b in zip(drawn, again))
    assert not all(np.array_equal(a, b) for a, b in zip(drawn, other))
    _, plain = run_traced("datasetcondensation", DC / "main_DM.py", ["--save_path", tmp_path / "plain"], mode="none")
    assert any(np.any(weights[e["idx"]] == 0) for e in plain if e["kind"] == "draw")  # the patch made the difference


def test_sample_by_weight_is_refused_where_it_cannot_act(tmp_path):
    with pytest.raises(ConfigError, match="--weights"):
        patch("datasetcondensation", DC / "main_DM.py", mode="none", sample_by_weight=True)
    with pytest.raises(ConfigError, match="twice"):
        patch("datasetcondensation", DC / "main_DM.py", mode="weights", weights=np.ones(DC_ROWS), sample_by_weight=True)
    with pytest.raises(ConfigError, match="permutation"):
        patch("mtt", DC / "main_DM.py", mode="none", weights=np.ones(DC_ROWS), sample_by_weight=True)
    with pytest.raises(InputError, match="non-negative"):
        with patch("datasetcondensation", DC / "main_DM.py", mode="weights", weights=-np.ones(DC_ROWS)):
            pass


def test_dm_batchnorm_branch_splits_the_concatenated_batch(tmp_path):
    summary, trace = run_traced(
        "datasetcondensation", DC / "main_DM.py", ["--model", "ConvNetBN", "--save_path", tmp_path], groups=DC_GROUPS
    )
    draws = [e["idx"] for e in trace if e["kind"] == "draw"]
    steps = [e for e in trace if e["kind"] == "dm_bn"]
    assert len(steps) == 3 and summary.calls_by_site["embed"] == 3 and summary.batches == 3 * DC_CLASSES
    per_step = DC_CLASSES
    class_draws = draws[DC_CLASSES:]  # the --init real draws come first
    for step, entry in enumerate(steps):
        real = raw_embed(entry["net"], entry["img_real"])
        syn = raw_embed(entry["net"], entry["img_syn"])
        expected = 0.0
        for c in range(DC_CLASSES):
            idx = class_draws[step * per_step + c]
            expected += float(fairdd_dm(real[16 * c : 16 * (c + 1)], torch.as_tensor(DC_GROUPS[idx]), syn[2 * c : 2 * c + 2]))
        assert entry["loss"] == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------------------ DC / DSA


def distance(gw_syn, gw_real, metric):
    """DatasetCondensation's three gradient distances, written out independently."""
    if metric == "ours":
        total = 0.0
        for s, r in zip(gw_syn, gw_real):
            if r.ndim == 1:
                continue
            s, r = s.reshape(s.shape[0], -1), r.reshape(r.shape[0], -1)
            total = total + (1 - (s * r).sum(-1) / (s.norm(dim=-1) * r.norm(dim=-1) + 1e-6)).sum()
        return total
    s = torch.cat([g.reshape(-1) for g in gw_syn])
    r = torch.cat([g.reshape(-1) for g in gw_real])
    if metric == "mse":
        return ((s - r) ** 2).sum()
    return 1 - (s * r).sum() / (s.norm() * r.norm() + 1e-6)


def group_gradients(net, img_real, lab_real, groups):
    params = list(net.parameters())
    out = {}
    for g in torch.unique(groups):
        mask = groups == g
        out[int(g)] = torch.autograd.grad(F.cross_entropy(net(img_real[mask]), lab_real[mask]), params)
    return out


@pytest.mark.parametrize("metric", ["ours", "mse", "cos"])
def test_dc_sync_uses_one_real_gradient_per_group(tmp_path, metric):
    summary, trace = run_traced(
        "datasetcondensation", DC / "main.py",
        ["--dis_metric", metric, "--ipc", 2, "--method", "DSA", "--save_path", tmp_path], groups=DC_GROUPS,
    )
    terms = paired(trace, "dc")
    assert len(terms) == 2 * 2 * DC_CLASSES  # iterations x outer loops x classes
    for entry, idx in terms:
        net, groups = entry["net"], torch.as_tensor(DC_GROUPS[idx])
        params = list(net.parameters())
        gw_syn = torch.autograd.grad(F.cross_entropy(net(entry["img_syn"]), entry["lab_syn"]), params)
        per_group = group_gradients(net, entry["img_real"], entry["lab_real"], groups)
        expected = sum(float(distance(gw_syn, g, metric)) for g in per_group.values())
        assert entry["loss"] == pytest.approx(expected, rel=1e-4, abs=1e-5)
        full = torch.autograd.grad(F.cross_entropy(net(entry["img_real"]), entry["lab_real"]), params)
        for seen, plain in zip(entry["gw_real"], full):  # the script itself still sees the usual gradient
            torch.testing.assert_close(seen, plain, rtol=1e-4, atol=1e-6)
    assert summary.calls_by_site == {"match_loss": len(terms)}


def test_dc_normalized_divides_by_groups_present_and_barycenter_averages_gradients(tmp_path):
    _, trace = run_traced(
        "datasetcondensation", DC / "main.py", ["--dis_metric", "mse", "--save_path", tmp_path],
        groups=DC_GROUPS, faithful=False,
    )
    for entry, idx in paired(trace, "dc"):
        net, groups = entry["net"], torch.as_tensor(DC_GROUPS[idx])
        gw_syn = torch.autograd.grad(F.cross_entropy(net(entry["img_syn"]), entry["lab_syn"]), list(net.parameters()))
        per_group = group_gradients(net, entry["img_real"], entry["lab_real"], groups)
        expected = sum(float(distance(gw_syn, g, "mse")) for g in per_group.values()) / len(per_group)
        assert entry["loss"] == pytest.approx(expected, rel=1e-4)

    summary, trace = run_traced(
        "datasetcondensation", DC / "main.py", ["--save_path", tmp_path], groups=DC_GROUPS, mode="barycenter"
    )
    assert summary.calls_by_site == {"criterion": 2 * DC_CLASSES}
    assert "utils.match_loss" not in summary.patched
    for entry, idx in paired(trace, "dc"):
        per_group = group_gradients(entry["net"], entry["img_real"], entry["lab_real"], torch.as_tensor(DC_GROUPS[idx]))
        for layer, seen in enumerate(entry["gw_real"]):
            mean = torch.stack([g[layer] for g in per_group.values()]).mean(0)
            torch.testing.assert_close(seen, mean, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------ groups, summary, seeds


def test_summary_counts_groups_and_absent_batches_from_the_drawn_rows(tmp_path):
    summary, trace = run_traced(
        "datasetcondensation", DC / "main_DM.py", ["--save_path", tmp_path], groups=DC_GROUPS, mode="none"
    )
    terms = paired(trace, "dm")
    seen: dict[int, dict[int, int]] = {}
    absent = 0
    for entry, idx in terms:
        assert set(DC_LABELS[idx]) == {entry["c"]}
        counts = seen.setdefault(entry["c"], {})
        for g in DC_GROUPS[idx]:
            counts[int(g)] = counts.get(int(g), 0) + 1
        absent += bool(set(DC_GROUPS[DC_LABELS == entry["c"]]) - set(DC_GROUPS[idx]))
    data = summary.to_dict()
    assert data["intercepted_calls"] == len(terms) == 9
    assert data["batches"] == 9
    assert data["absent_group_batches"] == absent
    assert data["groups_seen"] == {str(c): {str(g): n for g, n in sorted(v.items())} for c, v in sorted(seen.items())}
    assert data["patched"] == ["time.time", "utils.get_dataset", "numpy.random.permutation", "utils.get_network"]


def test_seeds_are_pinned_despite_wall_clock_reseeding(tmp_path):
    def saved(seed, folder):
        run("datasetcondensation", DC / "main_DM.py", ["--dsa_strategy", "flip_color", "--save_path", folder],
            groups=DC_GROUPS, seed=seed)
        return torch.load(Path(folder) / "res_DM_TOY_ConvNet_2ipc.pt", weights_only=True)["data"][-1][0]

    first = saved(3, tmp_path / "a")
    time.sleep(0.05)
    again = saved(3, tmp_path / "b")
    other = saved(4, tmp_path / "c")
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_preset_is_injected_through_get_dataset(tmp_path):
    summary, trace = run_traced(
        "datasetcondensation", DC / "main_DM.py",
        ["--batch_real", 4, "--ipc", 1, "--Iteration", 0, "--init", "noise", "--save_path", tmp_path],
        dataset="cmnist-fg", dataset_options={"n_train": 60, "n_test": 5},
    )
    from ddaudit.data import load_real

    real = load_real("cmnist-fg", n_train=60, n_test=5)
    saved = torch.load(tmp_path / "res_DM_TOY_ConvNet_1ipc.pt", weights_only=True)["data"][-1][0]
    assert saved.shape == (10, 3, 32, 32)
    assert summary.dataset["preset"] == "cmnist-fg" and summary.dataset["script_asked"] == "TOY"
    for entry, idx in paired(trace, "dm"):
        torch.testing.assert_close(entry["img_real"], real.train.x[idx])
        expected = fairdd_dm(raw_embed(entry["net"], entry["img_real"]), real.train.a[idx],
                             raw_embed(entry["net"], entry["img_syn"]))
        assert entry["loss"] == pytest.approx(float(expected), rel=1e-5)


def test_a_groups_file_replaces_the_injected_presets_groups(tmp_path):
    """Pseudo-groups on an injected preset: --dataset brings the rows, --groups the groups matched."""
    from ddaudit.data import load_real

    real = load_real("cmnist-fg", n_train=60, n_test=5)
    pseudo = (real.train.a.numpy() + 1 + real.train.y.numpy()) % 3  # not the preset's groups
    np.save(tmp_path / "pseudo.npy", pseudo)
    argv = ["--batch_real", 4, "--ipc", 1, "--Iteration", 0, "--init", "noise", "--save_path", tmp_path]
    summary, trace = run_traced("datasetcondensation", DC / "main_DM.py", argv, groups=tmp_path / "pseudo.npy",
                                dataset="cmnist-fg", dataset_options={"n_train": 60, "n_test": 5})
    assert "pseudo.npy" in summary.group_source and "cmnist-fg" in summary.group_source
    pairs = list(paired(trace, "dm"))
    assert pairs
    for entry, idx in pairs:
        torch.testing.assert_close(entry["img_real"], real.train.x[idx])
        expected = fairdd_dm(raw_embed(entry["net"], entry["img_real"]), torch.as_tensor(pseudo[idx]),
                             raw_embed(entry["net"], entry["img_syn"]))
        assert entry["loss"] == pytest.approx(float(expected), rel=1e-5)

    np.save(tmp_path / "short.npy", pseudo[:-1])
    out = tmp_path / "refused"
    result = CliRunner().invoke(app, ["run", "-c", "datasetcondensation", "--mode", "sync", "--groups",
                                      str(tmp_path / "short.npy"), "--dataset", "cmnist-fg",
                                      "--dataset-option", "n_train=60", "--dataset-option", "n_test=5", "--",
                                      str(DC / "main_DM.py"), *map(str, argv[:-1]), str(out)])
    assert result.exit_code == 2, result.output
    assert "59 rows" in result.output and "60 training rows" in result.output
    assert not out.exists()


# ------------------------------------------------------------------------------ undo


def _global_state():
    return {
        "permutation": np.random.permutation,
        "time": time.time,
        "ce": torch.nn.CrossEntropyLoss,
        "grad": torch.autograd.grad,
        "loader": torch.utils.data.DataLoader,
        "path": list(sys.path),
        "argv": list(sys.argv),
        "utils": sys.modules.get("utils"),
        "main": sys.modules.get("__main__"),
        "numpy_rng": np.random.get_state()[1].copy(),
        "torch_rng": torch.get_rng_state(),
    }


def _assert_same_state(before):
    after = _global_state()
    for key in ("permutation", "time", "ce", "grad", "loader", "utils", "main"):
        assert after[key] is before[key], key
    assert after["path"] == before["path"] and after["argv"] == before["argv"]
    assert np.array_equal(after["numpy_rng"], before["numpy_rng"])
    assert torch.equal(after["torch_rng"], before["torch_rng"])
    assert "networks" not in sys.modules


@pytest.mark.parametrize("script", ["main.py", "main_DM.py"])
def test_patches_are_undone_after_success(tmp_path, script):
    foreign_utils = types.ModuleType("utils")
    sys.modules["utils"] = foreign_utils
    try:
        before = _global_state()
        with patch("datasetcondensation", DC / script, groups=DC_GROUPS) as session:
            assert np.random.permutation is not before["permutation"] and time.time is not before["time"]
            assert sys.modules["utils"] is not foreign_utils
            session.run(["--save_path", tmp_path])
        _assert_same_state(before)
        assert sys.modules["utils"] is foreign_utils
    finally:
        sys.modules.pop("utils", None)


def test_patches_are_undone_after_an_exception(tmp_path):
    before = _global_state()
    with pytest.raises(RuntimeError, match="--raise_at"):
        with patch("datasetcondensation", DC / "main_DM.py", groups=DC_GROUPS) as session:
            session.run(["--raise_at", 0, "--save_path", tmp_path])
    _assert_same_state(before)


def test_patch_stack_restores_everything_even_when_an_undo_fails():
    from ddaudit.hooks.patchers import PatchStack

    class Base:
        def method(self):
            return "base"

    class Child(Base):
        pass

    namespace = {"kept": 1}
    holder = types.SimpleNamespace(value=1)
    stack = PatchStack()
    stack.replace(Child, "method", lambda self: "patched")
    stack.replace(holder, "value", 2)
    stack.replace(holder, "added", 3)
    stack.replace_item(namespace, "kept", 10, name="ns.kept")
    stack.replace_item(namespace, "new", 11, name="ns.new")
    stack.callback(lambda: (_ for _ in ()).throw(ValueError("undo failed")))
    assert Child().method() == "patched" and holder.value == 2
    with pytest.raises(ValueError, match="undo failed"):
        stack.close()
    assert Child().method() == "base" and "method" not in vars(Child)
    assert holder.value == 1 and not hasattr(holder, "added")
    assert namespace == {"kept": 1}
    assert stack.names[:2] == [f"{__name__}.{Child.__qualname__}.method", "SimpleNamespace instance.value"]


# ------------------------------------------------------------------------------ refusals


def test_a_fork_with_another_match_loss_signature_is_refused():
    before = _global_state()
    with pytest.raises(PatchError, match=r"match_loss\(gw_syn, gw_real, args\).*found match_loss\(gradients_syn, gradients_real\)"):
        with patch("datasetcondensation", FIXTURES / "broken_dc" / "main.py", groups=[0, 1]):
            pass
    _assert_same_state(before)


@pytest.mark.parametrize("codebase,script", [
    ("datasetcondensation", "main_DM.py"), ("idm", "IDM_toy.py"), ("datadam", "main_DataDAM.py"),
])
def test_a_script_that_draws_real_batches_otherwise_is_refused_only_when_groups_are_needed(tmp_path, codebase, script):
    import shutil

    folder = tmp_path / codebase
    shutil.copytree(FIXTURES / codebase, folder)
    source = (folder / script).read_text()
    assert "np.random.permutation(" in source
    (folder / script).write_text(source.replace("np.random.permutation(", "np.random.default_rng(0).permutation("))
    before = _global_state()
    with pytest.raises(PatchError, match=rf"{codebase}: {script} does not draw real batches with np.random.permutation"):
        with patch(codebase, folder / script, groups=[0, 1]):
            pass
    _assert_same_state(before)
    with patch(codebase, folder / script, mode="none"):  # without groups no batch rows are needed
        pass
    _assert_same_state(before)


def test_a_run_that_reaches_no_loss_site_is_an_error(tmp_path):
    with pytest.raises(PatchError, match="no loss call reached them"):
        run("datasetcondensation", DC / "main_DM.py", ["--Iteration", -1, "--save_path", tmp_path], groups=DC_GROUPS)


def test_invalid_settings_and_group_files(tmp_path):
    with pytest.raises(ConfigError, match="needs the group of every training row"):
        patch("datasetcondensation", DC / "main_DM.py", mode="sync")
    with pytest.raises(ConfigError, match="supports --mode none|sync"):
        patch("idc", FIXTURES / "idc" / "condense.py", mode="barycenter", groups=[0])
    with pytest.raises(ConfigError, match="unknown codebase"):
        patch("nope", DC / "main_DM.py", groups=[0])
    np.save(tmp_path / "short.npy", DC_GROUPS[:-1])
    with pytest.raises(InputError, match="has 89 rows but the script's training set has 90"):
        run("datasetcondensation", DC / "main_DM.py", ["--save_path", tmp_path], groups=tmp_path / "short.npy")
    (tmp_path / "negative.txt").write_text("0\n-1\n")
    with pytest.raises(InputError, match="non-negative integers"):
        load_groups(tmp_path / "negative.txt")
    torch.save(torch.as_tensor(DC_GROUPS), tmp_path / "groups.pt")
    (tmp_path / "groups.txt").write_text("\n".join(map(str, DC_GROUPS)))
    assert np.array_equal(load_groups(tmp_path / "groups.pt"), load_groups(tmp_path / "groups.txt"))


# ------------------------------------------------------------------------------ CLI


def test_cli_runs_the_script_and_writes_the_summary(tmp_path):
    groups_file = tmp_path / "groups.npy"
    np.save(groups_file, DC_GROUPS)
    summary_file = tmp_path / "summary.json"
    before = _global_state()
    result = CliRunner().invoke(app, [
        "run", "--codebase", "datasetcondensation", "--groups", str(groups_file), "--summary", str(summary_file),
        "--", str(DC / "main_DM.py"), "--Iteration", "1", "--save_path", str(tmp_path),
    ])
    assert result.exit_code == 0, result.output
    _assert_same_state(before)
    data = json.loads(summary_file.read_text())
    assert data["intercepted_calls"] == 2 * DC_CLASSES
    assert "utils.get_network" in data["patched"] and "numpy.random.permutation" in data["patched"]
    assert "intercepted calls: 6" in result.output
    from ddaudit.io import load_synthetic

    synthetic = load_synthetic(tmp_path / "res_DM_TOY_ConvNet_2ipc.pt")
    assert synthetic.images.shape == (6, 1, 8, 8) and synthetic.ipc == 2


def test_cli_reports_refusals_and_script_failures_with_exit_codes(tmp_path):
    runner = CliRunner()
    missing_file = runner.invoke(app, ["run", "-c", "datasetcondensation", "--groups", str(tmp_path / "x.npy"),
                                       "--", str(DC / "main_DM.py")])
    assert missing_file.exit_code == 2 and "does not exist" in missing_file.output
    np.save(tmp_path / "groups.npy", [0, 1])
    refused = runner.invoke(app, ["run", "-c", "datasetcondensation", "--groups", str(tmp_path / "groups.npy"),
                                  "--", str(FIXTURES / "broken_dc" / "main.py")])
    assert refused.exit_code == 2 and "match_loss(gw_syn, gw_real, args)" in refused.output
    np.save(tmp_path / "dc.npy", DC_GROUPS)
    failed = runner.invoke(app, ["run", "-c", "datasetcondensation", "--groups", str(tmp_path / "dc.npy"), "--",
                                 str(DC / "main_DM.py"), "--raise_at", "0", "--save_path", str(tmp_path)])
    assert failed.exit_code == 1 and "raised RuntimeError" in failed.output
    missing = runner.invoke(app, ["run", "-c", "datasetcondensation", "--groups", str(tmp_path / "dc.npy")])
    assert missing.exit_code == 2 and "after `--`" in missing.output


# ------------------------------------------------------------------------------ MTT


MTT = FIXTURES / "mtt"
MTT_LABELS = np.repeat(np.arange(2), 40)
MTT_GROUPS = np.where(np.random.default_rng(2).random(80) < 0.9, MTT_LABELS, 1 - MTT_LABELS)


def _mtt_rows(trace):
    """Training-row index of every row of every recorded expert batch (images are unique)."""
    spec = importlib.util.spec_from_file_location("mtt_fixture_utils", MTT / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    flat = utils.get_dataset("TOY", "data")[6].images.flatten(1)
    out = []
    for entry in trace:
        if entry["kind"] == "train_batch":
            match = (entry["img"].flatten(1)[:, None, :] == flat[None]).all(-1)
            out.append(match.float().argmax(1).numpy())
    return out


def test_mtt_sample_draws_group_balanced_expert_batches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary, trace = run_traced("mtt", MTT / "buffer.py", [], groups=MTT_GROUPS)
    batches = _mtt_rows(trace)
    rows = np.concatenate(batches)
    assert summary.calls_by_site == {"expert_batch": len(batches)} and len(rows) == 2 * 2 * 80
    for c in (0, 1):
        minority = np.mean(MTT_GROUPS[rows[MTT_LABELS[rows] == c]] != c)
        assert 0.35 < minority < 0.65
    assert np.mean(MTT_GROUPS != MTT_LABELS) < 0.15
    assert (tmp_path / "buffers" / "TOY" / "Linear" / "replay_buffer_0.pt").is_file()


def test_mtt_reweight_weights_each_row_by_its_group_share(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary, trace = run_traced("mtt", MTT / "buffer.py", [], groups=MTT_GROUPS, experts="reweight")
    batches = _mtt_rows(trace)
    entries = [e for e in trace if e["kind"] == "train_batch"]
    assert summary.calls_by_site == {"expert_batch": len(entries)}
    for entry, rows in zip(entries, batches):
        scale = np.empty(len(rows))
        for i, r in enumerate(rows):
            c = MTT_LABELS[r]
            in_class = MTT_GROUPS[MTT_LABELS == c]
            present = np.unique(in_class)
            scale[i] = len(in_class) / (len(present) * np.sum(in_class == MTT_GROUPS[r]))
        per_row = F.cross_entropy(entry["output"], entry["lab"], reduction="none").double().numpy()
        assert entry["loss"] == pytest.approx(float(np.mean(scale * per_row)), rel=1e-5)


def test_mtt_buffer_on_cpu_saves_each_epoch_not_views_of_the_final_weights(tmp_path, monkeypatch):
    # buffer.py snapshots with p.detach().cpu(), which copies from a GPU but aliases on a CPU.
    monkeypatch.chdir(tmp_path)
    original_cpu = torch.Tensor.cpu
    outside = torch.zeros(3)
    with patch("mtt", MTT / "buffer.py", groups=MTT_GROUPS) as session:
        assert "torch.Tensor.cpu" in session.summary.patched
        assert outside.cpu() is outside  # only the script's own calls copy
        session.run(["--train_epochs", "3", "--num_experts", "1", "--save_interval", "1"])
    assert torch.Tensor.cpu is original_cpu
    trajectory = torch.load(tmp_path / "buffers" / "TOY" / "Linear" / "replay_buffer_0.pt")[0]
    assert len(trajectory) == 4
    for before, after in zip(trajectory, trajectory[1:]):
        assert not torch.equal(before[0], after[0])


def test_mtt_distill_runs_unchanged_on_the_injected_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run("mtt", MTT / "buffer.py", [], groups=MTT_GROUPS)
    summary = run("mtt", MTT / "distill.py", [], groups=MTT_GROUPS)
    assert summary.variant == "distill" and summary.intercepted_calls == 0
    assert (tmp_path / "logged_files" / "TOY" / "run" / "images_best.pt").is_file()
    with pytest.raises(ConfigError, match="--experts applies to codebases that train experts"):
        with patch("datasetcondensation", DC / "main_DM.py", groups=DC_GROUPS, experts="reweight"):
            pass


# ------------------------------------------------------------------------------ IDC / DREAM


IDC = FIXTURES / "idc"
IDC_LABELS = np.repeat(np.arange(3), 20)
IDC_GROUPS = biased_groups(IDC_LABELS, 3, 0.6, seed=4)


def idc_matchloss(match, model, img_real, lab_real, img_syn, lab_syn):
    """The fixture's matchloss (mse metric), written out independently."""
    if match == "feat":
        with torch.no_grad():
            real = model.get_feature(img_real, 0, 1)
        syn = model.get_feature(img_syn, 0, 1)
        return sum(((r.mean(0) - s.mean(0)) ** 2).sum() for r, s in zip(real, syn))
    params = list(model.parameters())
    g_real = torch.autograd.grad(F.cross_entropy(model(img_real), lab_real), params)
    g_syn = torch.autograd.grad(F.cross_entropy(model(img_syn), lab_syn), params)
    return sum(((r - s) ** 2).sum() for r, s in zip(g_real, g_syn) if r.ndim > 1)


@pytest.mark.parametrize("match", ["grad", "feat"])
def test_idc_matchloss_sums_over_groups(tmp_path, match):
    summary, trace = run_traced(
        "idc", IDC / "condense.py", ["--match", match, "--save_dir", tmp_path], trace_module="data", groups=IDC_GROUPS
    )
    last, checked = None, 0
    for entry in trace:
        if entry["kind"] == "class_sample":
            last = np.asarray(entry["idx"])
            continue
        groups = torch.as_tensor(IDC_GROUPS[last])
        expected = sum(
            idc_matchloss(match, entry["model"], entry["img_real"][groups == g], entry["lab_real"][groups == g],
                          entry["img_syn"], entry["lab_syn"]).item()
            for g in torch.unique(groups)
        )
        assert entry["loss"] == pytest.approx(expected, rel=1e-5)
        checked += 1
    assert checked == summary.intercepted_calls == 6
    assert (tmp_path / "data.pt").is_file()


def test_dream_groups_follow_the_query_positions_reused_between_refreshes(tmp_path):
    labels = np.array([0, 1] * 20)
    groups = biased_groups(labels, 2, 0.7, seed=5)
    summary, trace = run_traced(
        "dream", FIXTURES / "dream" / "condense.py", ["--niter", 2, "--save_dir", tmp_path], trace_module="new_strategy",
        groups=groups,
    )
    assert summary.variant == "dream" and len(trace) == summary.intercepted_calls == 16
    assert len({tuple(entry["rows"]) for entry in trace}) == 4  # one query per class per network, reused
    for entry in trace:
        g = torch.as_tensor(groups[entry["rows"]])
        feat = entry["model"](entry["img_real"]).double()
        syn_mean = entry["model"](entry["img_syn"]).double().mean(0)
        expected = sum(((feat[g == k].mean(0) - syn_mean) ** 2).sum() for k in torch.unique(g))
        assert entry["loss"] == pytest.approx(float(expected), rel=1e-5)

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


# ------------------------------------------------------------------------------ IDM, DataDAM

IDM, DATADAM = FIXTURES / "idm", FIXTURES / "datadam"
TOY_LABELS = np.repeat(np.arange(3), 30)
TOY_GROUPS = np.where(np.random.default_rng(5).random(90) < 0.75, TOY_LABELS % 2, 1 - TOY_LABELS % 2)


def fairdd_term(real, groups, syn):
    """FairDD's per-class term: sum over groups present of ||mean real_g - mean syn||^2."""
    real, syn, groups = real.double(), syn.double(), torch.as_tensor(groups)
    return sum(((real[groups == g].mean(0) - syn.mean(0)) ** 2).sum() for g in torch.unique(groups))


def test_idm_sync_matches_embed_channel_avg_per_group_and_injects_mtts_tuple(tmp_path):
    summary, trace = traced_as("idm", IDM / "IDM_toy.py", ["--save_path", tmp_path], groups=TOY_GROUPS)
    terms = paired(trace, "dm")
    assert len(terms) == 3 * 3 and summary.calls_by_site == {"embed_channel_avg": 9}
    for entry, idx in terms:
        net = entry["net"]
        raw = lambda x: type(net).embed_channel_avg(net, x, last=-1)  # noqa: E731
        expected = fairdd_term(raw(entry["img_real"]), TOY_GROUPS[idx], raw(entry["img_syn"]))
        assert entry["loss"] == pytest.approx(float(expected), rel=1e-5)
    preset, _ = traced_as("idm", IDM / "IDM_toy.py", ["--Iteration", 0, "--save_path", tmp_path / "p"], **PRESET)
    assert preset.dataset["preset"] == "cmnist-fg" and preset.intercepted_calls == 10


def attention(features):
    a = features.abs().sum(1).flatten(1)
    return a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)


def test_datadam_sync_matches_attention_maps_and_embedding_per_group(tmp_path):
    summary, trace = traced_as("datadam", DATADAM / "main_DataDAM.py", ["--save_path", tmp_path], groups=TOY_GROUPS)
    draws = [e["idx"] for e in trace if e["kind"] == "draw"]
    steps = [e for e in trace if e["kind"] == "dam"]
    assert len(steps) == 3 and summary.calls_by_site == {"forward": 3, "get_attention": 6}
    for step, entry in enumerate(steps):
        net = entry["net"]
        maps = {}
        for side in ("img_real", "img_syn"):
            x, found = entry[side], []
            for module in net.features:
                x = module(x)
                if isinstance(module, torch.nn.ReLU):
                    found.append(x.clone())
            maps[side] = [attention(f) for f in found] + [x.flatten(1)]
        per_class = [draws[3 * step + c] for c in range(3)]
        expected = []
        for layer in range(3):
            total = 0.0
            for c, idx in enumerate(per_class):
                real = maps["img_real"][layer][10 * c : 10 * (c + 1)]
                syn = maps["img_syn"][layer][2 * c : 2 * (c + 1)]
                total += float(fairdd_term(real, TOY_GROUPS[idx], syn))
            expected.append(total)
        np.testing.assert_allclose(entry["layers"], [100 * v for v in expected[:2]], rtol=1e-4)
        assert entry["output"] == pytest.approx(100 * 0.01 * expected[2], rel=1e-4)
    from ddaudit.io import load_synthetic

    assert load_synthetic(tmp_path / "res_DataDAM_TOY_ConvNet_2ipc_.pt").images.shape == (6, 1, 8, 8)


def test_datadam_refuses_zca_with_a_preset_and_a_script_of_another_layout(tmp_path):
    from ddaudit.errors import ConfigError

    with pytest.raises(ConfigError, match="--zca"):
        traced_as("datadam", DATADAM / "main_DataDAM.py", ["--zca", "1", "--save_path", tmp_path], **PRESET)
    with pytest.raises(PatchError, match="get_attention"):
        traced_as("datadam", FAIRDD / "main_DM.py", [], **PRESET)


def traced_as(codebase, script, argv, **options):
    with patch(codebase, script, **options) as session:
        session.run([str(a) for a in argv])
        trace = list(sys.modules["utils"].TRACE)
    return session.summary, trace


# ------------------------------------------------------------------------------ adapter

OTHER = FIXTURES / "otherfork"


def test_a_fork_no_patcher_knows_is_refused_with_the_adapter_fields_and_what_was_seen(tmp_path):
    with pytest.raises(PatchError) as refused:
        with patch("datasetcondensation", OTHER / "distill.py", groups=TOY_GROUPS):
            pass
    message = str(refused.value)
    assert "--adapter FILE" in message and "[dataset] module, function, returns" in message
    assert "from helpers: TRACE, build_net, load_data" in message and "features_of" in message
    summary_file = tmp_path / "summary.json"
    np.save(tmp_path / "groups.npy", TOY_GROUPS)
    result = CliRunner().invoke(app, ["run", "-c", "datasetcondensation", "--groups", str(tmp_path / "groups.npy"),
                                      "--summary", str(summary_file), "--", str(OTHER / "distill.py")])
    assert result.exit_code == 2
    import json

    data = json.loads(summary_file.read_text())
    assert "neither a DM script" in data["refusal"] and data["intercepted_calls"] == 0
    assert data["found"]["local_imports"] == {"helpers": ["TRACE", "build_net", "load_data"]}
    assert "features_of" in data["found"]["calls"]


def test_the_adapter_makes_the_unknown_fork_fair(tmp_path):
    with patch(None, OTHER / "distill.py", adapter=OTHER / "adapter.toml", groups=TOY_GROUPS) as session:
        session.run(["--out", str(tmp_path)])
        trace = list(sys.modules["helpers"].TRACE)
    terms = paired(trace, "dm")
    assert len(terms) == 2 * 3 and session.summary.calls_by_site == {"features_of": 6}
    assert session.summary.fork == "otherfork" and session.summary.variant == "embed"
    for entry, idx in terms:
        net = entry["net"]
        raw = lambda x: type(net).features_of(net, x)  # noqa: E731
        expected = fairdd_term(raw(entry["img_real"]), TOY_GROUPS[idx], raw(entry["img_syn"]))
        assert entry["loss"] == pytest.approx(float(expected), rel=1e-5)
    # the preset is handed over in the layout the adapter names: (train, test, num_classes, channel, im_size)
    result = CliRunner().invoke(app, ["run", "--adapter", str(OTHER / "adapter.toml"), "--dataset", "cmnist-fg",
                                      "--dataset-option", "n_train=60", "--", str(OTHER / "distill.py"),
                                      "--steps", "1", "--out", str(tmp_path / "preset")])
    assert result.exit_code == 0, result.output
    assert "intercepted calls: 10" in result.output
    assert torch.load(tmp_path / "preset" / "synthetic.pt", weights_only=True)["images"].shape == (20, 3, 32, 32)


def test_the_documented_example_adapter_describes_the_fixture_fork():
    from dataclasses import replace

    from ddaudit.hooks.patchers.adapter import load_adapter

    example = load_adapter(Path(__file__).parents[1] / "examples" / "adapter.toml")
    fixture = load_adapter(OTHER / "adapter.toml")
    assert replace(example, path="") == replace(fixture, path="")


@pytest.mark.parametrize("content, problem", [
    ("[dataset]\nmodule='helpers'\nfunction='load_data'\nreturns=['train']\n", "needs a [matching] table"),
    ("[dataset]\nmodule='helpers'\nfunction='load_data'\nreturns=['train', 'labels']\n[matching]\nkind='embed'\n",
     "[dataset] returns must list"),
    ("[dataset]\nmodule='helpers'\nfunction='load_data'\nreturns=['train']\n[matching]\nkind='embed'\n"
     "network_module='helpers'\nnetwork_function='build_net'\n", "[matching] method must be"),
    ("[dataset]\nmodule='helpers'\nfunction='missing'\nreturns=['train']\n[matching]\nkind='embed'\n"
     "network_module='helpers'\nnetwork_function='build_net'\nmethod='features_of'\n", "helpers.missing"),
    ("not toml [", "is not valid TOML"),
])
def test_bad_adapter_files_are_one_line_errors(tmp_path, content, problem):
    path = tmp_path / "adapter.toml"
    path.write_text(content)
    np.save(tmp_path / "g.npy", TOY_GROUPS)
    result = CliRunner().invoke(app, ["run", "--adapter", str(path), "--groups", str(tmp_path / "g.npy"), "--",
                                      str(OTHER / "distill.py"), "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and problem in result.output


NINE = '["channel", "im_size", "num_classes", "class_names", "mean", "std", "train", "test", "testloader"]'


@pytest.mark.parametrize("codebase, script, matching, trace_kind, argv", [
    ("datasetcondensation", FIXTURES / "datasetcondensation" / "main.py",
     'kind = "gradient"\nmatch_module = "utils"\nmatch_function = "match_loss"\n', "dc", ["--dis_metric", "ours"]),
    ("datadam", DATADAM / "main_DataDAM.py",
     'kind = "feature"\nnetwork_module = "utils"\nnetwork_function = "get_network"\n'
     'feature_module = "utils"\nfeature_function = "get_attention"\n', "dam", []),
])
def test_adapter_gradient_and_feature_kinds_reproduce_the_built_in_patchers(tmp_path, codebase, script, matching,
                                                                              trace_kind, argv):
    returns = NINE if codebase == "datasetcondensation" else NINE[:-1] + ', "none"]'
    path = tmp_path / "adapter.toml"
    path.write_text(f'[dataset]\nmodule = "utils"\nfunction = "get_dataset"\nreturns = {returns}\n'
                    f"[matching]\n{matching}")
    options = {"dataset": "cmnist-fg", "dataset_options": {"n_train": 300, "n_test": 4}}  # >= batch_real rows per class
    with patch(None, script, adapter=path, **options) as session:
        session.run([str(a) for a in argv + ["--save_path", tmp_path / "a"]])
        adapted = [e for e in sys.modules["utils"].TRACE if e["kind"] == trace_kind]
    with patch(codebase, script, **options) as builtin:
        builtin.run([str(a) for a in argv + ["--save_path", tmp_path / "b"]])
        reference = [e for e in sys.modules["utils"].TRACE if e["kind"] == trace_kind]
    assert len(adapted) == len(reference) > 0
    for mine, theirs in zip(adapted, reference):
        for key in ("loss", "layers", "output"):
            if key in theirs:
                np.testing.assert_allclose(mine[key], theirs[key], rtol=1e-5)
    assert session.summary.intercepted_calls == builtin.summary.intercepted_calls > 0


def test_device_accepts_only_cpu_and_cuda_and_the_summary_names_the_fork():
    result = CliRunner().invoke(app, ["run", "-c", "fairdd", "--dataset", "cmnist-fg", "--device", "tpu", "--",
                                      str(FAIRDD / "main_DM.py")])
    assert result.exit_code == 2 and "--device must be 'cpu' or 'cuda'" in result.output
    if not torch.cuda.is_available():  # --device cuda without a GPU is refused before the script starts
        result = CliRunner().invoke(app, ["run", "-c", "fairdd", "--dataset", "cmnist-fg", "--device", "cuda", "--",
                                          str(FAIRDD / "main_DM.py")])
        assert result.exit_code == 2 and "torch sees no CUDA GPU" in result.output and "Traceback" not in result.output
    none = CliRunner().invoke(app, ["run", "--dataset", "cmnist-fg", "--", str(FAIRDD / "main_DM.py")])
    assert none.exit_code == 2 and "--adapter FILE" in none.output


def test_identity_example_refuses_a_folder_without_fairdds_script(tmp_path):
    import subprocess

    example = Path(__file__).parents[1] / "examples" / "fairdd_dm_identity.py"
    done = subprocess.run([sys.executable, str(example), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "main_DM.py does not exist" in done.stderr


# ------------------------------------------------------------------------------ adapter: layer-wise feature losses

CAFE = FIXTURES / "cafe"
CAFE_LABELS = np.repeat(np.arange(10), 8)
CAFE_GROUPS = np.where(np.random.default_rng(7).random(80) < 0.7, CAFE_LABELS % 3, (CAFE_LABELS + 1) % 3)


def class_block_terms(real, groups, syn, num_classes=10):
    """Per class: (||mu_bar - m||^2, sum_g ||mu_g - m||^2, sum_g ||mu_g - mu_bar||^2) on class-major blocks."""
    real, syn, groups = real.double(), syn.double(), torch.as_tensor(groups)
    n, s = real.shape[0] // num_classes, syn.shape[0] // num_classes
    out = []
    for c in range(num_classes):
        r, g, m = real[c * n:(c + 1) * n], groups[c * n:(c + 1) * n], syn[c * s:(c + 1) * s].mean(0)
        mus = torch.stack([r[g == k].mean(0) for k in torch.unique(g)])
        bar = mus.mean(0)
        out.append((float(((bar - m) ** 2).sum()), float(((mus - m) ** 2).sum()), float(((mus - bar) ** 2).sum())))
    return out


@pytest.mark.parametrize("mode, faithful", [("barycenter", True), ("sync", True), ("sync", False)])
def test_feature_loss_adapter_matches_cafe_layers_to_group_targets(tmp_path, mode, faithful):
    np.save(tmp_path / "groups.npy", CAFE_GROUPS)
    with patch(None, CAFE / "distill.py", adapter=CAFE / "adapter.toml", mode=mode, faithful=faithful,
               groups=tmp_path / "groups.npy") as session:
        session.run(["--save_path", str(tmp_path / "out")])
        trace = list(sys.modules["utils"].TRACE)
    steps = [e for e in trace if e["kind"] == "cafe"]
    assert len(steps) == 2 and session.summary.calls_by_site == {"criterion_middle": 4}
    assert any("2 call(s) on tensors other than" in note for note in session.summary.notes)
    draws = [e["idx"] for e in trace if e["kind"] == "draw"]
    for step, entry in enumerate(steps):
        net = entry["net"]
        idx = np.concatenate(draws[20 * step: 20 * step + 10])  # 10 class draws, then 10 watcher draws
        groups = CAFE_GROUPS[idx]
        _, real_features = type(net).forward(net, entry["real"])
        _, syn_features = type(net).forward(net, entry["syn"])
        for k, value in zip((1, 2), entry["layers"]):
            terms = class_block_terms(real_features[-k].detach(), groups, syn_features[-k].detach())
            if mode == "barycenter" or not faithful:
                expected = sum(bar for bar, _, _ in terms)
            else:  # FairDD's sum over groups, less the spread term free of the synthetic images
                expected = sum(fair - spread for _, fair, spread in terms)
                assert expected < sum(fair for _, fair, _ in terms)
            assert value == pytest.approx(expected, rel=1e-4)
    assert (tmp_path / "out" / "res_CAFE_toy_1ipc.pt").is_file()


def test_feature_loss_adapter_in_mode_none_leaves_the_loss_unchanged(tmp_path):
    with patch(None, CAFE / "distill.py", adapter=CAFE / "adapter.toml", mode="none",
               dataset="cmnist-fg", dataset_options={"n_train": 80, "n_test": 4}) as session:
        session.run(["--save_path", str(tmp_path), "--Iteration", "1"])
        entry = next(e for e in sys.modules["utils"].TRACE if e["kind"] == "cafe")
    net = entry["net"]
    _, real_features = type(net).forward(net, entry["real"])
    _, syn_features = type(net).forward(net, entry["syn"])
    plain = [float(((real_features[-k].detach().view(10, 6, -1).mean(1)
                     - syn_features[-k].detach().view(10, 1, -1).mean(1)) ** 2).sum()) for k in (1, 2)]
    assert entry["layers"] == pytest.approx(plain, rel=1e-5) and session.summary.intercepted_calls == 2


@pytest.mark.parametrize("matching, problem", [
    ('kind = "feature"\nnetwork_module = "utils"\nnetwork_function = "get_network"\n'
     'feature_module = "distill"\nfeature_function = "criterion_middle"\n',
     'distill.criterion_middle takes 2 required arguments, not one batch of activations'),
    ('kind = "feature"\nnetwork_module = "utils"\nnetwork_function = "get_network"\n'
     'feature_module = "utils"\nfeature_function = "block_energy"\n',
     "utils.block_energy returned shape () for 20 rows of activations"),
    ('kind = "feature_loss"\nnetwork_module = "utils"\nnetwork_function = "get_network"\n'
     'loss_module = "utils"\nloss_function = "block_energy"\n',
     "utils.block_energy returned shape (10, 4, 3, 3), not a single loss value"),
])
def test_an_adapter_function_of_the_wrong_shape_is_refused_before_the_script_runs(tmp_path, matching, problem):
    path = tmp_path / "adapter.toml"
    path.write_text(f'[dataset]\nmodule = "utils"\nfunction = "get_dataset"\nreturns = {NINE}\n[matching]\n{matching}')
    result = CliRunner().invoke(app, ["run", "--adapter", str(path), "--dataset", "cmnist-fg",
                                      "--dataset-option", "n_train=80", "--", str(CAFE / "distill.py"),
                                      "--save_path", str(tmp_path / "out")])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2, result.output
    assert len(errors) == 1 and problem in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # main() never ran


def test_fork_identity_example_refuses_a_checkout_without_the_pairs_script(tmp_path):
    import subprocess

    example = Path(__file__).parents[1] / "examples" / "fork_identity.py"
    done = subprocess.run([sys.executable, str(example), str(tmp_path), "--pair", "cobra-idc-barycenter"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "train_idc.py does not exist" in done.stderr
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize("mode, faithful, own, site", [("barycenter", True, "cobra", "criterion"),
                                                       ("sync", False, "fairdd", "match_loss")])
def test_cobra_idc_vanilla_under_a_ddaudit_mode_equals_the_forks_own_mode(tmp_path, mode, faithful, own, site):
    """Same seed, same preset: ddaudit's mode on the vanilla script gives the fork's own losses step by step."""
    argv = ["--batch_real", 6, "--factor", 2]  # 6 real rows: not the 8 decoded synthetic rows of a class
    ours, ours_trace = traced(COBRA / "train_idc.py", argv + ["--save_path", tmp_path / "a"], mode=mode,
                              faithful=faithful, device="cpu", **PRESET)
    _, theirs_trace = traced(COBRA / "train_idc.py", argv + ["--mode", own, "--save_path", tmp_path / "b"], mode="none",
                             device="cpu", **PRESET)
    mine, reference = [e["loss"] for e in ours_trace if e["kind"] == "dc"], [e["loss"] for e in theirs_trace if e["kind"] == "dc"]
    assert ours.fork == "cobra" and ours.calls_by_site == {site: 20} and len(mine) == len(reference) == 20
    np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6)
    vanilla = [e["loss"] for e in traced(COBRA / "train_idc.py", argv + ["--save_path", tmp_path / "c"], mode="none",
                                         device="cpu", **PRESET)[1] if e["kind"] == "dc"]
    assert not np.allclose(vanilla, reference, rtol=1e-3)  # the fair mode changes the loss
    a = torch.load(tmp_path / "a" / "res_IDC_TOY_ConvNet_2ipc_vanilla.pt", weights_only=True)["data"][0][0]
    b = torch.load(tmp_path / "b" / f"res_IDC_TOY_ConvNet_2ipc_{own}.pt", weights_only=True)["data"][0][0]
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

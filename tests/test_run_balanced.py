"""``ddaudit run --batches balanced``: the fixture DatasetCondensation script runs
unchanged through the real patch session, and its real batches come out
group-balanced. Expected group counts are recomputed here by water filling,
independently of the library's order; the default ``uniform`` must stay the
script's own draw, equal to an unpatched run with the same numpy seed."""

from __future__ import annotations

import json
import random
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ddaudit.cli import app
from ddaudit.errors import ConfigError
from ddaudit.hooks.patchers import patch

FIXTURES = Path(__file__).parent / "fixtures" / "codebases"
DC = FIXTURES / "datasetcondensation"
SCRIPT = DC / "main_DM.py"
ROWS, CLASSES, PER_CLASS = 90, 3, 30
LABELS = np.repeat(np.arange(CLASSES), PER_CLASS)  # the fixture's get_dataset: 3 classes x 30 rows, in order
BATCH, IPC = 16, 2  # the fixture's --batch_real and --ipc defaults


def skewed_groups(seed: int = 0) -> np.ndarray:
    """Per class: one majority group of 21 rows and minorities of 4, 3 and 2, scattered over the class's rows."""
    rng = np.random.default_rng(seed)
    groups = np.empty(ROWS, dtype=np.int64)
    for c in range(CLASSES):
        block = np.repeat([c, (c + 1) % 4, (c + 2) % 4, (c + 3) % 4], [21, 4, 3, 2])
        groups[c * PER_CLASS:(c + 1) * PER_CLASS] = rng.permutation(block)
    return groups


GROUPS = skewed_groups()


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def water_level(sizes: list[int], n: int) -> int:
    """The largest k with sum(min(size, k)) <= n: every group gets min(size, k) rows, the rest share the remainder."""
    k = 0
    while sum(min(s, k + 1) for s in sizes) <= n and k < max(sizes):
        k += 1
    return k


def class_draws(argv, tmp_path, **options):
    """Run the fixture under ``patch``; return (summary, [(class, drawn row indices)] in draw order)."""
    with patch("datasetcondensation", SCRIPT, mode=options.pop("mode", "sync"), **options) as session:
        session.run([*map(str, argv), "--save_path", str(tmp_path)])
        trace = list(sys.modules["utils"].TRACE)
    return session.summary, [(e["c"], e["idx"]) for e in trace if e["kind"] == "draw"]


def balanced_problems(draws, groups) -> list[str]:
    """Every way a draw falls short of a water-filled share of its class's groups."""
    problems = []
    for c, idx in draws:
        in_class = np.flatnonzero(LABELS == c)
        present, sizes = np.unique(groups[in_class], return_counts=True)
        level = water_level(sizes.tolist(), len(idx))
        counts = {int(g): int(np.sum(groups[idx] == g)) for g in present}
        for g, size in zip(present.tolist(), sizes.tolist()):
            floor = max(min(len(idx) // len(present), size), min(level, size))
            if not floor <= counts[g] <= min(level + 1, size):
                problems.append(f"class {c} batch of {len(idx)}: group {g} has {counts[g]}, expected {floor}..{min(level + 1, size)}")
    return problems


def test_water_level_recomputed_by_hand():
    # The fixture's class: 21 + 4 + 3 + 2 rows. 16 rows: 7 + 4 + 3 + 2; 2 rows: no group twice.
    assert water_level([21, 4, 3, 2], 16) == 7
    assert water_level([21, 4, 3, 2], 2) == 0
    assert water_level([5, 5], 10) == 5


def test_balanced_batches_hold_every_group_as_water_filling_implies(tmp_path):
    summary, draws = class_draws([], tmp_path, groups=GROUPS, batches="balanced")
    assert summary.sampling == "balanced" and summary.to_dict()["sampling"] == "balanced"
    batches = [(c, idx) for c, idx in draws if len(idx) == BATCH]
    inits = [(c, idx) for c, idx in draws if len(idx) == IPC]
    assert len(batches) == 3 * CLASSES and len(inits) == CLASSES  # --Iteration 2: three steps, plus --init real
    assert balanced_problems(draws, GROUPS) == []
    for c, idx in batches:  # the water-filled share of 21/4/3/2 rows in 16: the majority exactly 7, minorities whole
        majority = np.sum(GROUPS[idx] == c)
        assert majority == 7 and len(np.unique(GROUPS[idx])) == 4
    for c, idx in inits:  # the --init real draw: two rows of two different groups
        assert len(np.unique(GROUPS[idx])) == IPC
    for c, idx in draws:  # distinct rows, all of the class the script asked for
        assert len(set(idx.tolist())) == len(idx) and np.all(LABELS[idx] == c)
    assert summary.absent_group_batches == 0 and summary.batches == 3 * CLASSES
    # The same run drawn uniformly misses that share (the test can tell the two apart).
    plain_summary, plain = class_draws([], tmp_path / "uniform", groups=GROUPS)
    assert plain_summary.sampling == "uniform"
    assert balanced_problems([d for d in plain if len(d[1]) == BATCH], GROUPS)
    assert plain_summary.absent_group_batches > 0


@pytest.mark.parametrize("mode", ["none", "barycenter", "weights"])
def test_balanced_combines_with_the_other_modes(tmp_path, mode):
    options = {"weights": np.ones(ROWS)} if mode == "weights" else {}
    summary, draws = class_draws(["--Iteration", 0], tmp_path, mode=mode, groups=GROUPS, batches="balanced", **options)
    assert len(draws) == 2 * CLASSES and balanced_problems(draws, GROUPS) == []
    assert summary.sampling == "balanced"


def test_balanced_prefixes_of_any_length_on_random_groups():
    from ddaudit.hooks.patchers._draws import balanced_permutation

    rng = np.random.RandomState(5)
    for trial in range(30):
        count = rng.randint(1, 40)
        groups = rng.randint(0, rng.randint(1, 6), count)
        indices = rng.choice(1000, count, replace=False)
        order = balanced_permutation(indices, groups, rng.random_sample)
        assert sorted(order.tolist()) == sorted(indices.tolist())
        group_of = dict(zip(indices.tolist(), groups.tolist()))
        present, sizes = np.unique(groups, return_counts=True)
        for n in range(1, count + 1):
            level = water_level(sizes.tolist(), n)
            taken = np.array([group_of[i] for i in order[:n].tolist()])
            for g, size in zip(present.tolist(), sizes.tolist()):
                assert min(level, size) <= np.sum(taken == g) <= min(level + 1, size), (trial, n, g)


def _unpatched_draws(argv, seed: int, save_path: Path):
    """The fixture run plainly (no ddaudit): python, numpy and torch seeded with *seed*; its draws."""
    saved_path, saved_argv = list(sys.path), list(sys.argv)
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    foreign = {name: sys.modules.pop(name) for name in ("utils", "networks") if name in sys.modules}
    try:
        sys.path.insert(0, str(DC))
        sys.argv = [str(SCRIPT), *map(str, argv), "--save_path", str(save_path)]
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        runpy.run_path(str(SCRIPT), run_name="__main__")
        trace = list(sys.modules["utils"].TRACE)
    finally:
        sys.path[:], sys.argv[:] = saved_path, saved_argv
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        for name in ("utils", "networks"):
            sys.modules.pop(name, None)
        sys.modules.update(foreign)
    return [(e["c"], e["idx"]) for e in trace if e["kind"] == "draw"]


@pytest.mark.parametrize("seed", [0, 7])
def test_uniform_default_is_the_scripts_own_draw_bit_for_bit(tmp_path, seed):
    _, default = class_draws([], tmp_path / "default", groups=GROUPS, seed=seed)
    _, uniform = class_draws([], tmp_path / "uniform", groups=GROUPS, seed=seed, batches="uniform")
    plain = _unpatched_draws([], seed, tmp_path / "plain")
    assert len(default) == len(plain) == 4 * CLASSES
    for (c1, a), (c2, b), (c3, p) in zip(default, uniform, plain):
        assert c1 == c2 == c3 and np.array_equal(a, p) and np.array_equal(b, p)
    _, balanced = class_draws([], tmp_path / "balanced", groups=GROUPS, seed=seed, batches="balanced")
    assert not all(np.array_equal(a, b) for (_, a), (_, b) in zip(balanced, plain))


def test_same_seed_same_balanced_draws_another_seed_others(tmp_path):
    _, first = class_draws([], tmp_path / "a", groups=GROUPS, seed=3, batches="balanced")
    _, again = class_draws([], tmp_path / "b", groups=GROUPS, seed=3, batches="balanced")
    _, other = class_draws([], tmp_path / "c", groups=GROUPS, seed=4, batches="balanced")
    assert len(first) == len(again) == len(other) == 4 * CLASSES
    assert all(c == d and np.array_equal(a, b) for (c, a), (d, b) in zip(first, again))
    assert not all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, other))
    assert balanced_problems(other, GROUPS) == []


# ------------------------------------------------------------------------------ refusals


def test_the_python_api_refuses_what_the_cli_refuses():
    with pytest.raises(ConfigError, match="--groups FILE or --dataset PRESET"):
        patch("datasetcondensation", SCRIPT, mode="none", batches="balanced")
    with pytest.raises(ConfigError, match="use one"):
        patch("datasetcondensation", SCRIPT, mode="none", groups=GROUPS, weights=np.ones(ROWS),
              sample_by_weight=True, batches="balanced")
    with pytest.raises(ConfigError, match="permutation"):
        patch("mtt", SCRIPT, mode="none", groups=GROUPS, batches="balanced")
    with pytest.raises(ConfigError, match="uniform\\|balanced"):
        patch("datasetcondensation", SCRIPT, groups=GROUPS, batches="stratified")


def _error_lines(result) -> list[str]:
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("extra,fragment", [
    (["-c", "datasetcondensation", "--mode", "none"], "--batches balanced draws real rows evenly"),
    (["-c", "datasetcondensation", "--mode", "none", "--groups", "groups.npy", "--weights", "w.npy",
      "--sample-by-weight"], "use one"),
    (["-c", "mtt", "--mode", "none", "--groups", "groups.npy"], "np.random.permutation"),
])
def test_cli_refusals_exit_2_with_one_line_before_the_script_runs(tmp_path, monkeypatch, extra, fragment):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "groups.npy", GROUPS)
    np.save(tmp_path / "w.npy", np.ones(ROWS))
    result = CliRunner().invoke(app, ["run", *extra, "--batches", "balanced", "--", str(SCRIPT), "--save_path", "out"])
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr
    assert not (tmp_path / "out").exists()  # the script never ran


def _fork(tmp_path, replacement: str) -> Path:
    """A copy of the fixture codebase whose get_images draws with *replacement*."""
    fork = tmp_path / "fork"
    shutil.copytree(DC, fork)
    source = (fork / "main_DM.py").read_text()
    drawn = "np.random.permutation(indices_class[c])[:n]"
    assert drawn in source
    (fork / "main_DM.py").write_text(source.replace(drawn, replacement))
    return fork / "main_DM.py"


def test_cli_refuses_a_run_that_drew_no_class_batch_through_the_recorder(tmp_path):
    # A fork whose batches are drawn from every class's rows at once: nothing for balanced to act on.
    script = _fork(tmp_path, "np.random.permutation(sum(indices_class, []))[:n]")
    np.save(tmp_path / "groups.npy", GROUPS)
    common = ["run", "-c", "datasetcondensation", "--groups", str(tmp_path / "groups.npy")]
    argv = ["--", str(script), "--Iteration", "0", "--save_path", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*common, "--batches", "balanced", *argv])
    assert result.exit_code == 2, result.output
    lines = _error_lines(result)
    assert len(lines) == 1 and "--batches balanced but drew no class batch" in lines[0], result.stderr
    assert (tmp_path / "out").is_dir()  # the script did run: this refusal comes after it
    # The same fork drawn uniformly succeeds: the refusal is balanced's own.
    plain = CliRunner().invoke(app, [*common, *argv])
    assert plain.exit_code == 0, plain.output


def test_a_fork_drawing_positions_is_refused_at_its_first_real_batch(tmp_path):
    # Permuting positions (an int) hides the training rows from the recorder: refused, one line, exit 2.
    script = _fork(tmp_path, "np.asarray(indices_class[c])[np.random.permutation(len(indices_class[c]))][:n]")
    np.save(tmp_path / "groups.npy", GROUPS)
    result = CliRunner().invoke(app, [
        "run", "-c", "datasetcondensation", "--mode", "none", "--groups", str(tmp_path / "groups.npy"),
        "--batches", "balanced", "--", str(script), "--Iteration", "0", "--save_path", str(tmp_path / "out"),
    ])
    assert result.exit_code == 2, result.output
    lines = _error_lines(result)
    assert len(lines) == 1 and "np.random.permutation(indices_class[c])" in lines[0], result.stderr


def test_idm_balances_its_class_batches_and_leaves_its_mixed_class_batches_alone(tmp_path):
    with patch("idm", FIXTURES / "idm" / "IDM_toy.py", mode="sync", groups=GROUPS, batches="balanced") as session:
        session.run(["--save_path", str(tmp_path)])
        trace = list(sys.modules["utils"].TRACE)
    draws = [(e["c"], e["idx"]) for e in trace if e["kind"] == "draw"]
    assert len(draws) == 4 * CLASSES and balanced_problems(draws, GROUPS) == []
    # Two network-training batches over all classes per iteration, three iterations: the script's own order.
    assert session.recorder.mixed_class_draws == 6
    assert "--batches balanced: 6 draws spanning several classes kept the script's own order" in session.summary.notes


# ------------------------------------------------------------------------------ CLI


def test_cli_balanced_run_says_so_in_the_start_line_and_the_summary(tmp_path):
    np.save(tmp_path / "groups.npy", GROUPS)
    summary_file = tmp_path / "summary.json"
    result = CliRunner().invoke(app, [
        "run", "-c", "datasetcondensation", "--groups", str(tmp_path / "groups.npy"), "--batches", "balanced",
        "--summary", str(summary_file), "--", str(SCRIPT), "--save_path", str(tmp_path / "out"),
    ])
    assert result.exit_code == 0, result.output
    data = json.loads(summary_file.read_text())
    assert data["sampling"] == "balanced" and data["absent_group_batches"] == 0 and data["batches"] == 3 * CLASSES
    assert "mode sync, real batches group-balanced, seed 0" in result.output  # the start line
    assert "mode sync faithful, real batches group-balanced" in result.output  # the run summary
    default = CliRunner().invoke(app, [
        "run", "-c", "datasetcondensation", "--groups", str(tmp_path / "groups.npy"),
        "--summary", str(tmp_path / "default.json"), "--", str(SCRIPT), "--save_path", str(tmp_path / "out2"),
    ])
    assert default.exit_code == 0, default.output
    assert json.loads((tmp_path / "default.json").read_text())["sampling"] == "uniform"
    assert "group-balanced" not in default.output


def test_cli_help_shows_the_option():
    result = CliRunner().invoke(app, ["run", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--batches" in result.output and "uniform" in result.output and "balanced" in result.output
    unknown = CliRunner().invoke(app, ["run", "-c", "datasetcondensation", "--batches", "stratified", "--", str(SCRIPT)])
    assert unknown.exit_code == 2 and "stratified" in unknown.output

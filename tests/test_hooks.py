"""The pre-commit manifest and the GitHub composite action, exercised as their hosts run them.

pre-commit runs ``entry + args + filenames`` for the files its ``files`` pattern
matches; GitHub runs each ``run:`` script with ``bash --noprofile --norc -eo
pipefail`` after substituting ``${{ inputs.* }}``. Both are reproduced here on
real reports (and one real distilled set) and checked against the CLI.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from test_gate import standard_report

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MANIFEST = ROOT / "hooks" / ".pre-commit-hooks.yaml"
ACTION = ROOT / "hooks" / "action.yml"
EXAMPLES = ROOT / "examples" / "ci"
EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "CI")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def load_manifest(path: Path = MANIFEST) -> dict[str, dict]:
    return {hook["id"]: hook for hook in yaml.safe_load(path.read_text())}


def command_options(name: str) -> set[str]:
    """Every option string the real CLI command *name* declares."""
    import typer.main

    from ddaudit.cli import app

    command = typer.main.get_command(app).commands[name]
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts) if opt.startswith("-")}


def run_like_pre_commit(hook: dict, user_args: list[str] | None, candidates: list[str], cwd: Path):
    """What pre-commit does: keep files matching ``files``, then run entry + args + filenames."""
    matched = [name for name in candidates if re.search(hook["files"], name)]
    args = hook.get("args", []) if user_args is None else user_args
    command = shlex.split(hook["entry"]) + list(args) + (matched if hook.get("pass_filenames", True) else [])
    command[0] = str(BIN / command[0])
    return matched, subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=clean_env(PRE_COMMIT="1"),
                                   timeout=600)


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hook-reports")
    paths = {}
    for name in ("biased", "balanced", "undersized"):
        paths[name] = folder / f"ddaudit-{name}.json"
        paths[name].write_text(json.dumps(standard_report(name)))
    return paths


# ---------------------------------------------------------------- pre-commit


def test_root_manifest_is_the_hooks_manifest():
    assert yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text()) == yaml.safe_load(MANIFEST.read_text())


def test_manifest_declares_both_hooks_as_pre_commit_requires():
    hooks = load_manifest()
    assert set(hooks) == {"ddaudit-check", "ddaudit-gate"}
    for hook in hooks.values():
        assert {"id", "name", "entry", "language"} <= set(hook)
        assert hook["language"] == "python"
        assert shlex.split(hook["entry"])[0] == "ddaudit"
    check, gate = hooks["ddaudit-check"], hooks["ddaudit-gate"]
    assert shlex.split(check["entry"]) == ["ddaudit", "check"]
    assert set(check["stages"]) == {"pre-push", "manual"}
    assert check["require_serial"] is True
    assert re.search(check["files"], "distilled/res_DM_CIFAR10_ConvNet_10ipc.pt")
    assert not re.search(check["files"], "distilled/notes.ptx")
    assert shlex.split(gate["entry"]) == ["ddaudit", "gate"]
    assert re.search(gate["files"], "reports/ddaudit-report.json")
    assert re.search(gate["files"], "ddaudit.json")
    assert not re.search(gate["files"], "package.json")
    assert not re.search(gate["files"], "ddaudit/settings.json")


def test_gate_hook_fails_and_passes_as_the_cli_does(reports, tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.ddaudit]\nmax_deo_max = 0.4\n")
    hook = load_manifest()["ddaudit-gate"]
    unrelated = tmp_path / "package.json"
    unrelated.write_text("{}")
    for name, expected in (("biased", 1), ("balanced", 0), ("undersized", 3)):
        candidates = [str(reports[name]), str(unrelated)]
        matched, hooked = run_like_pre_commit(hook, None, candidates, tmp_path)
        assert matched == [str(reports[name])]
        direct = subprocess.run([str(BIN / "ddaudit"), "gate", str(reports[name])], capture_output=True, text=True,
                                cwd=tmp_path, env=clean_env(), timeout=120)
        assert hooked.returncode == direct.returncode == expected, hooked.stderr
    matched, together = run_like_pre_commit(hook, None, [str(p) for p in reports.values()], tmp_path)
    assert len(matched) == 3 and together.returncode == 1


def test_gate_hook_with_user_args(reports, tmp_path):
    hook = load_manifest()["ddaudit-gate"]
    _, strict = run_like_pre_commit(hook, ["--max-deo-max", "0.3"], [str(reports["biased"])], tmp_path)
    _, relaxed = run_like_pre_commit(hook, ["--max-deo-max", "0.3", "--exit-zero"], [str(reports["biased"])], tmp_path)
    assert strict.returncode == 1 and relaxed.returncode == 0


@pytest.mark.slow
def test_check_hook_trains_on_a_distilled_set_and_gates_it(tmp_path):
    import torch

    from ddaudit.data import load_real

    torch.set_num_threads(1)
    real = load_real("cmnist-fg", n_test=20)
    rows = [torch.nonzero((real.train.y == k) & (real.train.a == k)).flatten()[:2] for k in range(real.num_classes)]
    rows = torch.cat(rows)
    distilled = tmp_path / "distilled"
    distilled.mkdir()
    torch.save({"data": [[real.train.x[rows].clone(), real.train.y[rows].clone()]], "accs_all_exps": {}},
               distilled / "res_DM_cmnist_ConvNet_2ipc.pt")
    (tmp_path / "ddaudit.toml").write_text("min_accuracy = 0.99\nmin_group_size = 1\n")
    user_args = ["--real", "cmnist-fg", "--real-option", "n_test=20", "--protocol", "quick", "--model", "MLP",
                 "--epochs", "2", "--num-eval", "1", "--no-reference", "--n-boot", "0",
                 "--json", str(tmp_path / "ddaudit-report.json")]
    hook = load_manifest()["ddaudit-check"]
    matched, proc = run_like_pre_commit(hook, user_args, ["distilled/res_DM_cmnist_ConvNet_2ipc.pt", "README.md"],
                                        tmp_path)
    assert matched == ["distilled/res_DM_cmnist_ConvNet_2ipc.pt"]
    report = json.loads((tmp_path / "ddaudit-report.json").read_text())
    assert report["status"] == "fail" and report["metrics"]["accuracy"]["mean"] < 0.99
    assert proc.returncode == 1, proc.stderr
    regate = subprocess.run([str(BIN / "ddaudit"), "gate", str(tmp_path / "ddaudit-report.json"),
                             "--min-accuracy", "0.0"], capture_output=True, text=True, cwd=tmp_path,
                            env=clean_env(), timeout=120)
    assert regate.returncode == 0


def test_example_pre_commit_config_uses_the_manifest_hooks():
    config = yaml.safe_load((EXAMPLES / "pre-commit-config.yaml").read_text())
    hooks = load_manifest()
    (repo,) = config["repos"]
    used = {hook["id"]: hook for hook in repo["hooks"]}
    assert set(used) <= set(hooks)
    check_options = command_options("check")
    for arg in used["ddaudit-check"].get("args", []):
        if arg.startswith("--"):
            assert arg in check_options, arg


# ---------------------------------------------------------------- GitHub action


def load_action() -> dict:
    return yaml.safe_load(ACTION.read_text())


def step(action: dict, step_id: str) -> dict:
    return next(s for s in action["runs"]["steps"] if s.get("id") == step_id)


def substitute(text: str, inputs: dict, action_path: Path) -> str:
    def value(match: re.Match) -> str:
        expression = match.group(1)
        if expression.startswith("inputs."):
            return inputs[expression[len("inputs."):]]
        if expression == "github.action_path":
            return str(action_path)
        raise AssertionError(f"unexpected expression in a run step's env: {expression}")

    return EXPRESSION.sub(value, text)


def run_action_step(step_id: str, given: dict, cwd: Path, path_prefix: Path | None = None):
    """Run one composite step's script as the GitHub runner would; returns (process, outputs)."""
    action = load_action()
    inputs = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    unknown = set(given) - set(inputs)
    assert not unknown, unknown
    inputs.update(given)
    target = step(action, step_id)
    outputs_file = cwd / "github_output"
    outputs_file.write_text("")
    env = clean_env(GITHUB_OUTPUT=str(outputs_file), GITHUB_ACTIONS="true",
                    GITHUB_STEP_SUMMARY=str(cwd / "summary.md"), CI="true")
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    for key, value in target.get("env", {}).items():
        env[key] = substitute(str(value), inputs, ACTION.parent)
    script = cwd / f"{step_id}.sh"
    script.write_text(target["run"])
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)
    outputs = dict(line.split("=", 1) for line in outputs_file.read_text().splitlines() if "=" in line)
    return proc, outputs


def test_action_is_a_composite_with_declared_inputs_and_outputs():
    action = load_action()
    assert action["runs"]["using"] == "composite"
    text = ACTION.read_text()
    referenced = set(re.findall(r"inputs\.([A-Za-z0-9_-]+)", text))
    assert referenced <= set(action["inputs"])
    for name in ("synthetic", "real", "report", "thresholds", "profile"):
        assert name in action["inputs"]
    gate = step(action, "gate")
    for output in action["outputs"].values():
        match = re.fullmatch(r"\$\{\{ steps\.gate\.outputs\.([a-z-]+) \}\}", output["value"])
        assert match and f"echo \"{match.group(1)}=" in gate["run"]
    for s in action["runs"]["steps"]:
        assert "uses" in s or s.get("shell") == "bash"
    install = next(s for s in action["runs"]["steps"] if s.get("name") == "Install ddaudit")
    assert "pip install" in install["run"] and (ACTION.parent / ".." / "pyproject.toml").resolve().is_file()


def test_action_uploads_report_and_junit_even_on_failure():
    action = load_action()
    upload = next(s for s in action["runs"]["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert "always()" in upload["if"]
    paths = upload["with"]["path"]
    assert "steps.gate.outputs.report" in paths and "steps.gate.outputs.junit" in paths
    assert upload["with"]["name"] == "${{ inputs.artifact-name }}"


def test_action_gate_step_regates_a_report(reports, tmp_path):
    failing, outputs = run_action_step("gate", {"report": str(reports["biased"]), "thresholds": "--max-deo-max 0.3"},
                                       tmp_path)
    assert failing.returncode == 1, failing.stderr
    assert outputs["status"] == "fail" and outputs["exit-code"] == "1"
    gated = json.loads((tmp_path / outputs["report"]).read_text())
    junit = ET.parse(tmp_path / outputs["junit"]).getroot()
    assert gated["status"] == "fail"
    assert int(junit.get("failures")) == sum(not g["passed"] and not g["inconclusive"] for g in gated["gates"]) == 1
    assert "::error " in failing.stderr
    assert "### ddaudit fairness gates: FAIL" in (tmp_path / "summary.md").read_text()

    rerun, outputs = run_action_step("gate", {"report": str(reports["balanced"]), "thresholds": "--max-deo-max 0.4",
                                              "min-group-size": "10"}, tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert outputs["status"] == "pass" and outputs["exit-code"] == "0"


def test_action_gate_step_reads_a_profile(reports, tmp_path):
    (tmp_path / "ddaudit.toml").write_text("[profiles.ci]\nmax_deo_max = 0.3\ninconclusive = 'fail'\n")
    proc, outputs = run_action_step("gate", {"report": str(reports["undersized"]), "profile": "ci"}, tmp_path)
    assert proc.returncode == 1 and outputs["status"] == "inconclusive"


def test_action_check_step_runs_the_documented_check_command(tmp_path):
    recorder = tmp_path / "bin"
    recorder.mkdir()
    log = tmp_path / "argv.json"
    fake = recorder / "ddaudit"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open({str(log)!r}, 'w'))\n")
    fake.chmod(0o755)
    given = {"synthetic": "distilled/res_DM_CIFAR10_ConvNet_10ipc.pt", "real": "cifar10:data/cifar10",
             "thresholds": "--max-deo-max 0.3 --min-accuracy 0.5", "profile": "ci", "gate-on": "ci",
             "inconclusive": "fail", "min-group-size": "15", "args": "--protocol dm --num-eval 10"}
    proc, outputs = run_action_step("gate", given, tmp_path, path_prefix=recorder)
    assert proc.returncode == 0, proc.stderr
    argv = json.loads(log.read_text())
    assert argv[:4] == ["check", given["synthetic"], "--real", given["real"]]
    for flag, value in (("--max-deo-max", "0.3"), ("--min-accuracy", "0.5"), ("--profile", "ci"),
                        ("--gate-on", "ci"), ("--inconclusive", "fail"), ("--min-group-size", "15"),
                        ("--protocol", "dm"), ("--num-eval", "10"),
                        ("--json", outputs["report"]), ("--junit", outputs["junit"])):
        assert argv[argv.index(flag) + 1] == value
    options = command_options("check")
    assert {arg for arg in argv if arg.startswith("--")} <= options
    assert outputs["report"].endswith("ddaudit-report.json") and outputs["junit"].endswith("ddaudit-junit.xml")


def test_action_without_inputs_is_a_usage_error(tmp_path):
    proc, outputs = run_action_step("gate", {}, tmp_path)
    assert proc.returncode == 2 and outputs["exit-code"] == "2"
    assert "::error title=ddaudit::" in proc.stdout


def test_action_gate_flags_are_cli_options():
    gate_options = command_options("gate")
    script = step(load_action(), "gate")["run"]
    for flag in set(re.findall(r"(--[a-z][a-z-]+)", script)):
        assert flag in gate_options or flag in command_options("check"), flag


def test_example_workflow_uses_the_action_with_declared_inputs():
    workflow = yaml.safe_load((EXAMPLES / "fairness-gate.yml").read_text())
    inputs = load_action()["inputs"]
    uses = [s for job in workflow["jobs"].values() for s in job["steps"] if "/hooks@" in str(s.get("uses", ""))]
    assert len(uses) == 2
    for s in uses:
        assert set(s["with"]) <= set(inputs)
        assert ("synthetic" in s["with"] and "real" in s["with"]) or "report" in s["with"]
    check_options = command_options("check")
    audit = next(s for s in uses if "synthetic" in s["with"])
    for arg in shlex.split(audit["with"]["args"]):
        if arg.startswith("--"):
            assert arg in check_options, arg

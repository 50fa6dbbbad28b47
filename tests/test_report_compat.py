"""Saved round-1 reports keep working: the JSON view, the Markdown view and every gate decision.

``fixtures/round1/round1.json`` and ``round1.md`` were written by ``ddaudit check``
(tiny quick protocol, 2 evaluators) before the report became an object;
``round1_gates.json`` holds what ``ddaudit gate round1.json ... --json -`` answered
then for nine sets of flags.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ddaudit.cli import app
from ddaudit.gate import GateSettings, evaluate_gates
from ddaudit.report import AuditReport, to_markdown

FIXTURES = Path(__file__).parent / "fixtures" / "round1"
SAVED = json.loads((FIXTURES / "round1.json").read_text())
DECIDED = json.loads((FIXTURES / "round1_gates.json").read_text())


def test_the_json_view_of_a_saved_report_is_the_saved_json():
    report = AuditReport.from_dict(SAVED)
    # check wrote its (empty) gate outcome into the file; the object holds the audit only.
    as_saved = GateSettings(gate_on="mean")  # the settings check had then (its default gate_on was mean)
    assert report.to_dict(gates=evaluate_gates(report, as_saved)) == SAVED
    assert json.dumps(report.to_dict(gates=evaluate_gates(report, as_saved))) == json.dumps(SAVED)
    plain = report.to_dict()
    assert plain["status"] == "not_gated" and plain["gates"] == [] and "gate_settings" not in plain
    assert {k: v for k, v in plain.items()} == {k: v for k, v in SAVED.items() if k != "gate_settings"}


def test_the_markdown_view_of_a_saved_report_is_unchanged():
    assert to_markdown(AuditReport.from_dict(SAVED)) == (FIXTURES / "round1.md").read_text()
    assert to_markdown(SAVED) == (FIXTURES / "round1.md").read_text()


@pytest.mark.parametrize("case", DECIDED, ids=[" ".join(c["args"]) or "no-gate" for c in DECIDED])
def test_saved_reports_gate_identically(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ddaudit.toml / pyproject.toml to pick up
    for name in ("CI", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    saved = tmp_path / "round1.json"
    saved.write_text((FIXTURES / "round1.json").read_text())
    # ``--gate-on`` defaulted to ``mean`` then; the default is now ``ci`` (issue 13), so the
    # recorded runs are replayed with the setting they had.
    args = case["args"] if "--gate-on" in case["args"] else [*case["args"], "--gate-on", "mean"]
    result = CliRunner().invoke(app, ["gate", str(saved), *args, "--json", "-"])
    assert result.exit_code == case["exit_code"], result.output
    answer = json.loads(result.stdout)
    assert answer["status"] == case["status"]
    # Gate entries keep every recorded field (later versions only add fields).
    assert [{key: gate[key] for key in saved_gate} for gate, saved_gate in zip(answer["gates"], case["gates"])] \
        == case["gates"] and len(answer["gates"]) == len(case["gates"])
    assert answer["gate_settings"] == case["gate_settings"]
    # Gating never rewrites the report it reads.
    assert json.loads(saved.read_text()) == SAVED

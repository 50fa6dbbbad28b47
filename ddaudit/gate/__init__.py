"""Fairness gates: thresholds on an audit report that decide a CI exit code.

Thresholds come from flags or from ``[tool.ddaudit]`` / ``ddaudit.toml``
(:func:`resolve_gate_settings`); :func:`evaluate_gates` decides each one on a
report (an :class:`~ddaudit.report.AuditReport` or a saved ``ddaudit.report/1``
dict) and returns a :class:`GateOutcome` beside it, never written into it;
JUnit, GitHub and console views report the result.
Nothing here imports torch: re-gating a saved report takes a fraction of a second.
"""

from ddaudit.gate._config import (
    CONFIG_FILE,
    PYPROJECT_FILE,
    config_keys,
    find_config,
    read_config,
    resolve_gate_settings,
)
from ddaudit.gate._console import gate_table, is_plain_output, render_gates
from ddaudit.gate._evaluate import (
    FAIL,
    INCONCLUSIVE,
    NOT_GATED,
    PASS,
    GateOutcome,
    GateResult,
    combined_exit_code,
    evaluate_gates,
)
from ddaudit.gate._github import annotation_lines, emit_github, in_github_actions, summary_markdown
from ddaudit.gate._junit import junit_xml, write_junit
from ddaudit.gate._report import REPORT_SCHEMA, load_report
from ddaudit.gate._settings import (
    DEFAULT_MIN_GROUP_SIZE,
    GATE_ON_CHOICES,
    INCONCLUSIVE_CHOICES,
    GateSettings,
)
from ddaudit.gate._thresholds import AT_LEAST, AT_MOST, THRESHOLDS, Threshold

__all__ = [
    "AT_LEAST",
    "AT_MOST",
    "CONFIG_FILE",
    "DEFAULT_MIN_GROUP_SIZE",
    "FAIL",
    "GATE_ON_CHOICES",
    "INCONCLUSIVE",
    "INCONCLUSIVE_CHOICES",
    "NOT_GATED",
    "PASS",
    "PYPROJECT_FILE",
    "REPORT_SCHEMA",
    "THRESHOLDS",
    "GateOutcome",
    "GateResult",
    "GateSettings",
    "Threshold",
    "annotation_lines",
    "combined_exit_code",
    "config_keys",
    "emit_github",
    "evaluate_gates",
    "find_config",
    "gate_table",
    "in_github_actions",
    "is_plain_output",
    "junit_xml",
    "load_report",
    "read_config",
    "render_gates",
    "resolve_gate_settings",
    "summary_markdown",
    "write_junit",
]

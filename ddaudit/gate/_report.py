"""Reading a saved audit report back, refusing anything that is not one."""

from __future__ import annotations

import json
from pathlib import Path

from ddaudit.errors import InputError

REPORT_SCHEMA = "ddaudit.report/1"

REPORT_MISSING_MESSAGE = "{path} does not exist; write a report with `ddaudit check SYNTHETIC --real ... --json {path}`"
REPORT_NOT_JSON_MESSAGE = "{path} is not a JSON file ({error}); give the file written by `ddaudit check --json`"
REPORT_WRONG_SCHEMA_MESSAGE = (
    "{path} is not a ddaudit report (schema {schema!r}, expected {expected!r}); "
    "give the file written by `ddaudit check --json`"
)
REPORT_DAMAGED_MESSAGE = "{path}: 'metrics' is not a table of metrics; the report is damaged, write it again with `ddaudit check`"
REPORT_STRUCTURE_MESSAGE = "{path}: {where} {problem}; the report is damaged, write it again with `ddaudit check`"


def load_report(path: str | Path) -> dict:
    """The report dict saved by ``ddaudit check --json``, checked for its schema."""
    path = Path(path)
    if not path.is_file():
        raise InputError(REPORT_MISSING_MESSAGE.format(path=path))
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(REPORT_NOT_JSON_MESSAGE.format(path=path, error=detail)) from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    schema = report.get("schema") if isinstance(report, dict) else None
    if schema != REPORT_SCHEMA:
        raise InputError(REPORT_WRONG_SCHEMA_MESSAGE.format(path=path, schema=schema, expected=REPORT_SCHEMA))
    if not isinstance(report.get("metrics", {}), dict):
        raise InputError(REPORT_DAMAGED_MESSAGE.format(path=path))
    problem = structure_problem(report)
    if problem is not None:
        raise InputError(REPORT_STRUCTURE_MESSAGE.format(path=path, where=problem[0], problem=problem[1]))
    return report


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _summary_problem(entry) -> str | None:
    """What is wrong with one metric summary (``{"mean", "ci", ...}``), or None."""
    if not isinstance(entry, dict):
        return "is not an object"
    if "mean" in entry and entry["mean"] is not None and not _is_number(entry["mean"]):
        return "has a 'mean' that is not a number"
    ci = entry.get("ci")
    if ci is not None and not (isinstance(ci, list) and len(ci) == 2 and all(v is None or _is_number(v) for v in ci)):
        return "has a 'ci' that is not [low, high]"
    return None


def structure_problem(report: dict) -> tuple[str, str] | None:
    """``(where, problem)`` for the first part of *report* a gate or a view could not read, or None.

    Checks the shape every reader relies on: objects where objects belong,
    lists of objects for ``cells``, numbers where numbers belong.
    """
    for key in ("synthetic", "real", "settings", "reference", "amplification"):
        if key in report and not isinstance(report[key], dict):
            return f"'{key}'", "is not an object"
    for name, entry in report.get("metrics", {}).items():
        problem = _summary_problem(entry)
        if problem:
            return f"metric '{name}'", problem
    cells = report.get("cells", [])
    if not isinstance(cells, list):
        return "'cells'", "is not a list"
    for number, cell in enumerate(cells):
        if not isinstance(cell, dict):
            return f"'cells' entry {number}", "is not an object"
        for key in ("class", "group", "count"):
            if not isinstance(cell.get(key), int) or isinstance(cell.get(key), bool) or cell[key] < 0:
                return f"'cells' entry {number}", f"has no whole-number '{key}'"
    for name, entry in report.get("amplification", {}).items():
        if not isinstance(entry, dict):
            return f"amplification '{name}'", "is not an object"
        for key in ("ratio", "difference"):
            if entry.get(key) is not None and not _is_number(entry[key]):
                return f"amplification '{name}'", f"has a '{key}' that is not a number"
    for name, entry in report.get("reference", {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("metrics", {}), dict):
            return f"reference '{name}'", "is not an object with 'metrics'"
    real = report.get("real", {})
    for key in ("class_names", "group_names"):
        if key in real and not isinstance(real[key], list):
            return f"'real.{key}'", "is not a list"
    if "warnings" in report and not isinstance(report["warnings"], list):
        return "'warnings'", "is not a list"
    return None

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
    return report

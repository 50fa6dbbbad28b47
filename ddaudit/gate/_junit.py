"""JUnit XML for CI test views: one test case per gate.

Follows the common (Jenkins ``junit-10.xsd``) schema: properties live on the
test suite, so each gate's threshold, value and basis are suite properties
prefixed with the gate's name (with the estimate, its interval and method);
a failed gate is a ``<failure>``, an inconclusive one ``<skipped>`` (or
``<error>`` when inconclusive gates fail) whose message gives the interval,
the threshold and what data would settle it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

from ddaudit.gate._evaluate import FAIL, INCONCLUSIVE, GateOutcome

SUITES_NAME = "ddaudit"
CASE_CLASSNAME = "ddaudit.gates"


def junit_xml(suites: Sequence[tuple[str, GateOutcome]]) -> str:
    """The JUnit document for one ``(label, outcome)`` per gated report."""
    root = ET.Element("testsuites", name=SUITES_NAME)
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for index, (label, outcome) in enumerate(suites):
        suite = _suite(label, outcome, index)
        for key in totals:
            totals[key] += int(suite.get(key))
        root.append(suite)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: str | Path, suites: Sequence[tuple[str, GateOutcome]], *, force: bool = False) -> Path:
    """Write :func:`junit_xml` to *path*; an existing file is replaced only with *force*."""
    from ddaudit.report import write_text

    return write_text(path, junit_xml(suites), force)


def _suite(label: str, outcome: GateOutcome, index: int) -> ET.Element:
    settings = outcome.settings
    failures = outcome.count(FAIL)
    inconclusive = outcome.count(INCONCLUSIVE)
    as_errors = settings.inconclusive == "fail"
    suite = ET.Element("testsuite", {
        "name": f"ddaudit gates: {label}",
        "id": str(index),
        "tests": str(len(outcome.results)),
        "failures": str(failures),
        "errors": str(inconclusive if as_errors else 0),
        "skipped": str(0 if as_errors else inconclusive),
        "time": "0",
    })
    properties = ET.SubElement(suite, "properties")

    def prop(name: str, value: object) -> None:
        ET.SubElement(properties, "property", name=name, value="" if value is None else str(value))

    prop("status", outcome.status)
    for key, value in settings.describe().items():
        prop(key, value)
    for result in outcome.results:
        prop(f"{result.key}.metric", result.metric)
        prop(f"{result.key}.operator", result.operator)
        prop(f"{result.key}.threshold", f"{result.threshold:g}")
        prop(f"{result.key}.value", "" if result.value is None else repr(result.value))
        prop(f"{result.key}.basis", result.basis)
        prop(f"{result.key}.outcome", result.outcome)
        if result.interval is not None:
            prop(f"{result.key}.estimate", "" if result.estimate is None else repr(result.estimate))
            prop(f"{result.key}.interval_low", repr(result.interval[0]))
            prop(f"{result.key}.interval_high", repr(result.interval[1]))
            prop(f"{result.key}.interval_method", result.interval_method)
        if result.settle:
            prop(f"{result.key}.settle", result.settle)

    for result in outcome.results:
        case = ET.SubElement(suite, "testcase", {
            "classname": CASE_CLASSNAME,
            "name": f"{result.key} ({result.metric} {result.operator} {result.threshold:g})",
            "time": "0",
        })
        if result.outcome == FAIL:
            failure = ET.SubElement(case, "failure", message=result.sentence(), type="GateFailed")
            failure.text = result.sentence()
        elif result.outcome == INCONCLUSIVE:
            if as_errors:
                error = ET.SubElement(case, "error", message=result.sentence(), type="GateInconclusive")
                error.text = result.sentence()
            else:
                ET.SubElement(case, "skipped", message=result.sentence())
    return suite

"""Gates on a report over several protected attributes: each metric gate is decided on the
intersection (the report's own metrics) and on every attribute's marginal groups."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ddaudit.errors import EXIT_GATE_FAILED, EXIT_OK
from ddaudit.gate import GateSettings, evaluate_gates
from ddaudit.gate._junit import junit_xml
from ddaudit.metrics import attribute_metrics

ATTRIBUTES = ["colour", "age"]
VALUES = [["red", "green"], ["young", "old"]]


def two_attribute_report(*, wrong_green: float, rare_old: int) -> dict:
    """Two classes; colour splits every class in half and ``old`` rows are rare (small intersection cells).

    A share *wrong_green* of the green rows (every tenth row's position decides which) is
    misclassified and every red row is right, so colour's marginal DEO_M is about
    *wrong_green* on cells of 100 + *rare_old* rows.
    """
    rows = []
    for c in range(2):
        for colour in range(2):
            rows += [(c, colour, 0)] * 100 + [(c, colour, 1)] * rare_old
    table = np.array(rows)
    y, attrs = table[:, 0], table[:, 1:]
    wrong = (attrs[:, 0] == 1) & (np.arange(len(y)) % 10 < round(wrong_green * 10))
    pred = np.where(wrong, 1 - y, y)
    predictions = np.stack([pred, pred])  # two evaluators that agree
    section = attribute_metrics(y, attrs, predictions, num_classes=2, attributes=ATTRIBUTES, values=VALUES,
                                n_boot=200, seed=0, min_group_size=20, class_names=["0", "1"])
    joint = section["intersection"]
    return {
        "metrics": joint["metrics"], "cells": joint["cells"], "settings": {"confidence": 0.95},
        "real": {"class_names": ["0", "1"], "group_names": [row["group_name"] for row in joint["per_group"]]},
        "attributes": section,
    }


@pytest.fixture(scope="module")
def unfair():
    return two_attribute_report(wrong_green=0.3, rare_old=3)


def test_an_attribute_marginal_decides_what_small_intersections_leave_open(unfair):
    outcome = evaluate_gates(unfair, GateSettings(thresholds={"max_deo_max": 0.2}, min_group_size=20))
    by_key = {result.key: result for result in outcome.results}
    assert set(by_key) == {"max_deo_max", "max_deo_max[colour]", "max_deo_max[age]"}
    # The intersection's (class, colour, old) cells hold 3 rows: its interval is too wide to decide.
    joint = by_key["max_deo_max"]
    assert joint.inconclusive and joint.interval[0] < 0.2 < joint.interval[1]
    # Colour's own cells hold 103 rows and differ by about 30 points: the gate fails on them.
    colour = by_key["max_deo_max[colour]"]
    assert colour.outcome == "fail" and colour.metric == "attributes.colour.deo_max"
    assert colour.interval[0] > 0.2
    assert colour.estimate == pytest.approx(unfair["attributes"]["per_attribute"]["colour"]["metrics"]["deo_max"]["mean"])
    assert outcome.exit_code == EXIT_GATE_FAILED


def test_a_fair_report_passes_on_every_attribute_that_has_the_evidence():
    report = two_attribute_report(wrong_green=0.0, rare_old=30)
    outcome = evaluate_gates(report, GateSettings(thresholds={"max_deo_max": 0.3, "max_deo_avg": 0.3,
                                                              "min_accuracy": 0.5},
                                                  min_group_size=20))
    # Accuracy does not depend on the grouping: decided once, on the report.
    assert {r.key for r in outcome.results} == {
        "max_deo_max", "max_deo_max[colour]", "max_deo_max[age]",
        "max_deo_avg", "max_deo_avg[colour]", "max_deo_avg[age]", "min_accuracy"}
    assert all(r.outcome == "pass" for r in outcome.results), [r.sentence() for r in outcome.results]
    assert outcome.exit_code == EXIT_OK


def test_a_one_attribute_report_gates_as_before(unfair):
    single = {key: value for key, value in unfair.items() if key != "attributes"}
    outcome = evaluate_gates(single, GateSettings(thresholds={"max_deo_max": 0.2}, min_group_size=20))
    assert [r.key for r in outcome.results] == ["max_deo_max"]
    assert "attribute" not in json.dumps(outcome.to_dict()["gates"])


def test_junit_names_each_attributes_case_apart(unfair):
    outcome = evaluate_gates(unfair, GateSettings(thresholds={"max_deo_max": 0.2}, min_group_size=20))
    xml = junit_xml([("set.pt", outcome)])
    assert 'name="max_deo_max[colour] (attributes.colour.deo_max' in xml
    assert "max_deo_max[age].outcome" in xml
    saved = outcome.to_dict()["gates"]
    assert [g.get("attribute") for g in saved] == [None, "colour", "age"]

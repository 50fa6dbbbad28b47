"""The audit's steps, used one by one as a notebook would, and its determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddaudit import audit
from ddaudit.auditing import Evaluators, Measurer, derive_seeds, evaluation_protocol, load_inputs
from ddaudit.data import align_pixel_space, load_real
from ddaudit.io import SyntheticSet
from ddaudit.report import AuditReport

TINY = {"model": "ConvNetW32", "epochs": 4}


@pytest.fixture(scope="module")
def real():
    return load_real("cmnist-fg", n_test=10, n_train=400)


@pytest.fixture(scope="module")
def syn(real):
    rows = [int(torch.nonzero(real.train.y == k)[0]) for k in range(real.num_classes)]
    return SyntheticSet(images=real.train.x[rows].clone(), labels=real.train.y[rows].clone(), format="tensors",
                        path="tiny")


def test_same_seed_same_report_and_the_steps_compose_to_audit(real, syn):
    first = audit(syn, real, protocol="quick", protocol_overrides=TINY, num_eval=2, n_boot=50, seed=7, device="cpu")
    again = audit(syn, real, protocol="quick", protocol_overrides=TINY, num_eval=2, n_boot=50, seed=7, device="cpu")
    assert isinstance(first, AuditReport)
    assert first.to_dict() == again.to_dict()
    other = audit(syn, real, protocol="quick", protocol_overrides=TINY, num_eval=2, n_boot=50, seed=8, device="cpu",
                  reference=False)
    assert other.settings["evaluator_seeds"] != first.settings["evaluator_seeds"]

    # The same numbers, step by step.
    loaded, real_data = load_inputs(syn, real)
    aligned = align_pixel_space(loaded, real_data)
    proto = evaluation_protocol("quick", TINY, loaded)
    evaluators = Evaluators(proto, derive_seeds(7, 2), aligned.test.x, real_data.num_classes, "cpu",
                            precision=first.settings["precision"], compile=first.settings["compile"])
    preds = evaluators.predict("distilled set", aligned.syn_x, loaded.labels)
    assert np.array_equal(preds, first.predictions["y_pred"])
    measured = Measurer(aligned.test, aligned.train, real_data, 50, 0.95, 7, 20)(preds)
    assert measured.metrics["deo_max"]["per_evaluator"] == first.metrics["deo_max"]["per_evaluator"]
    assert first.per_class == measured.per_class and first.per_group == measured.per_group

"""Names of the choices library functions accept, kept free of heavy imports.

The CLI builds its option choices from these tuples without loading torch
(``ddaudit gate`` must start in a fraction of a second), and each library
module that owns a choice checks its input against the same tuple, so the
command line and the Python API cannot disagree.
"""

from __future__ import annotations

from enum import Enum

#: Default L-inf PGD budgets of the robustness audit, as ``--robustness-budgets`` takes them
#: (:data:`ddaudit.robustness.DEFAULT_BUDGETS` is this list parsed): the usual 2, 4 and 8 levels of 8-bit images.
PGD_BUDGETS = "2/255,4/255,8/255"
#: Pixel spaces a synthetic set can be saved in (:func:`ddaudit.data.to_real_space`).
SPACES = ("auto", "normalized", "raw", "zca")
#: Evaluator training engines (:func:`ddaudit.evaluate.train_and_predict`).
ENGINES = ("auto", "batched", "sequential")
#: Evaluator arithmetic and torch.compile use (``check --precision``, ``--compile``).
PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_SETTINGS = ("auto", "on", "off")
#: How a matching loss treats groups (:func:`ddaudit.fair_matching`, ``ddaudit run --mode``).
MATCHING_MODES = ("none", "sync", "barycenter", "weights")
#: How ``ddaudit run --batches`` draws a script's real batches (and the reference distillers' ``batches=``).
BATCH_SAMPLINGS = ("uniform", "balanced")
#: How MTT experts are made fair (``ddaudit run --experts``).
EXPERT_STRATEGIES = ("sample", "reweight")


def choice_enum(name: str, choices: tuple[str, ...]) -> type[Enum]:
    """A ``str`` Enum typer can show and validate, one member per choice."""
    return Enum(name, {choice: choice for choice in choices}, type=str)

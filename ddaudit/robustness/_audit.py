"""The ``robustness`` report section: accuracy per (class, group) cell under PGD and common corruptions.

A stratified subset of the real test set (``samples`` images, every cell in
its share) is attacked through each evaluator. A row counts as robust at a
budget when the clean image and every attack up to that budget leave it
correct, so only rows still robust are attacked at the next budget (robust
accuracy cannot rise with the budget, and a low-accuracy set costs little).
Accuracy, worst-group accuracy and DEO_M come from :mod:`ddaudit.metrics` with
the same gating intervals as the clean figures.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np
import torch

from ddaudit.data import RealData, fit_zca
from ddaudit.data._sampling import stratified_take
from ddaudit.choices import PGD_BUDGETS
from ddaudit.errors import ConfigError
from ddaudit.robustness._attacks import CORRUPTIONS, corrupt, pgd_linf

DEFAULT_STEPS = 10
SEVERITIES = (1, 3, 5)
FIGURES = ("accuracy", "worst_group_accuracy", "deo_max")
BATCH = 512
BAD_BUDGET = "--robustness-budgets: each budget is a fraction of the pixel range in [0, 1] (e.g. 8/255), got {value!r}"
BAD_SAMPLES = "--robustness-samples must be a whole number >= 1, got {value!r}"


def parse_budgets(text: str | list | tuple) -> tuple[float, ...]:
    """Budgets from ``"1/255,2/255,0.03"`` (or a sequence of numbers), each in [0, 1], sorted."""
    items = [part.strip() for part in text.split(",")] if isinstance(text, str) else list(text)
    budgets = []
    for item in items:
        try:
            if isinstance(item, str) and "/" in item:
                top, bottom = item.split("/")
                value = float(top) / float(bottom)
            else:
                value = float(item)
        except (TypeError, ValueError, ZeroDivisionError):
            raise ConfigError(BAD_BUDGET.format(value=item)) from None
        if isinstance(item, bool) or not 0 <= value <= 1 or value != value:
            raise ConfigError(BAD_BUDGET.format(value=item))
        budgets.append(value)
    if not budgets:
        raise ConfigError(BAD_BUDGET.format(value=text))
    return tuple(sorted(set(budgets)))


#: The L-inf budgets usual in the literature for 8-bit images (Madry et al.; DD-RobustBench): 2, 4 and 8 levels.
DEFAULT_BUDGETS = parse_budgets(PGD_BUDGETS)


def check_samples(samples) -> int:
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ConfigError(BAD_SAMPLES.format(value=samples))
    return int(samples)


def pixel_maps(real: RealData, space: str) -> tuple[Callable, Callable, bool]:
    """``(to_raw, to_model, clip)``: stored test tensors to raw [0, 1] pixels, and raw pixels to evaluator input."""
    if real.mean is None or real.std is None:
        return (lambda x: x), (lambda x: x), False
    c = real.channel
    mean = torch.tensor(real.mean, dtype=torch.float32).view(1, c, 1, 1)
    std = torch.tensor(real.std, dtype=torch.float32).view(1, c, 1, 1)
    whiten = fit_zca(real.train.x) if space == "zca" else (lambda x: x)
    return (lambda x: x * std + mean), (lambda x: whiten((x - mean.to(x.device)) / std.to(x.device))), True


def evaluator_forwards(ensemble) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """One differentiable forward per evaluator of a sequential or batched ensemble."""
    if hasattr(ensemble, "models"):
        return [model.eval() for model in ensemble.models]
    from torch.func import functional_call

    forwards = []
    for params, buffers in ensemble.chunks:
        count = next(iter(params.values())).shape[0]
        for i in range(count):
            one = ({k: v[i] for k, v in params.items()}, {k: v[i] for k, v in buffers.items()})
            forwards.append(partial(lambda p, x: functional_call(ensemble.base, p, (x,)), one))
    return forwards


def stratified_rows(y: np.ndarray, a: np.ndarray, num_groups: int, samples: int, seed: int) -> np.ndarray:
    """*samples* test rows (at most all), every (class, group) cell in its share, sorted."""
    cells = y * num_groups + a
    order = np.random.default_rng([seed, 27]).permutation(len(y))
    return np.sort(stratified_take(cells, min(samples, len(y)), order))


def _device_of(forward) -> torch.device:
    module = forward if isinstance(forward, torch.nn.Module) else forward.args[0][0]
    tensors = module.parameters() if isinstance(module, torch.nn.Module) else module.values()
    return next(iter(tensors)).device


def _predict(forward, raw: torch.Tensor, to_model, context) -> torch.Tensor:
    device = _device_of(forward)
    out = []
    with torch.no_grad(), context(device):
        for start in range(0, len(raw), BATCH):
            out.append(forward(to_model(raw[start:start + BATCH].to(device))).float().argmax(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def robust_predictions(forwards, raw: torch.Tensor, y: torch.Tensor, budgets, *, steps: int, to_model, clip: bool,
                       context, seed: int) -> dict[float, np.ndarray]:
    """Predictions ``(E, N)`` at budget 0 (clean) and each budget; a row once broken keeps its wrong label."""
    out = {0.0: [], **{b: [] for b in budgets}}
    for index, forward in enumerate(forwards):
        device = _device_of(forward)
        generator = torch.Generator().manual_seed(int(seed) + index)
        current = _predict(forward, raw, to_model, context)
        out[0.0].append(current.clone())
        for budget in budgets:
            alive = torch.nonzero(current == y).flatten()
            for start in range(0, len(alive), BATCH):
                rows = alive[start:start + BATCH]
                with context(device):
                    _, predicted = pgd_linf(forward, raw[rows].to(device), y[rows].to(device), budget, steps=steps,
                                            to_model=to_model, clip=clip, generator=generator, stop_on_success=True,
                                            return_predictions=True)
                current[rows] = predicted.cpu()
            out[budget].append(current.clone())
    return {budget: torch.stack(preds).numpy() for budget, preds in out.items()}


def corrupted_predictions(forwards, raw: torch.Tensor, *, to_model, context, seed: int) -> dict[tuple, np.ndarray]:
    """Predictions ``(E, N)`` for each corruption and severity (the same corrupted images for every evaluator)."""
    out = {}
    for name in CORRUPTIONS:
        for severity in SEVERITIES:
            images = corrupt(raw, name, severity, torch.Generator().manual_seed(int(seed) + severity))
            out[(name, severity)] = torch.stack([_predict(f, images, to_model, context) for f in forwards]).numpy()
    return out


def cell_figures(y: np.ndarray, a: np.ndarray, preds: np.ndarray, num_classes: int, num_groups: int,
                 confidence: float) -> dict:
    """Accuracy, worst-group accuracy and DEO_M (means over evaluators, gating intervals) and per-cell accuracy."""
    from ddaudit.metrics import accuracy, deo, worst_group_accuracy
    from ddaudit.metrics._counts import cell_accuracy, count_table
    from ddaudit.metrics._counts import cell_ids
    from ddaudit.metrics._interval_table import interval_table
    from ddaudit.metrics._intervals import disagreement

    correct, total = count_table(y, a, preds, num_classes, num_groups)
    shared = disagreement(preds == y[None, :], cell_ids(y, a, num_groups), num_classes * num_groups)
    acc = cell_accuracy(correct, total)
    values = {"accuracy": accuracy(correct, total), "worst_group_accuracy": worst_group_accuracy(acc),
              "deo_max": deo(acc)[0]}
    intervals = interval_table(correct, total, confidence, names=list(FIGURES),
                               disagreement=None if shared is None else shared.reshape(num_classes, num_groups))
    out = {}
    for name in FIGURES:
        per_evaluator = np.atleast_1d(values[name]).astype(float)
        out[name] = float(np.nanmean(per_evaluator)) if np.isfinite(per_evaluator).any() else None
        row = intervals.get(name)
        out[f"{name}_interval"] = None if row is None else [float(row["low"]), float(row["high"])]
    present = np.isfinite(acc).any(axis=0)
    mean_cells = np.where(present, np.nansum(acc, axis=0) / np.maximum(np.isfinite(acc).sum(axis=0), 1), np.nan)
    out["cells"] = [[None if np.isnan(v) else round(float(v), 6) for v in row] for row in mean_cells]
    return out


def robustness_section(ensembles: dict, real: RealData, space: str, *, samples: int, budgets, steps: int,
                       confidence: float, seed: int, progress=None) -> dict:
    """The section for the distilled set's ensemble (key ``"distilled"``) beside each reference's."""
    from ddaudit.evaluate._shared import compute_context

    samples = check_samples(samples)
    budgets = parse_budgets(budgets)
    to_raw, to_model, clip = pixel_maps(real, space)
    y_all, a_all = real.test.y.numpy(), real.test.a.numpy()
    rows = stratified_rows(y_all, a_all, real.num_groups, samples, seed)
    raw = to_raw(real.test.x[rows])
    y, a = real.test.y[rows], a_all[rows]
    results = {}
    for done, (name, ensemble) in enumerate(ensembles.items()):
        if progress is not None:
            progress("robustness: attacking evaluators", done, len(ensembles))
        context = partial(compute_context, getattr(ensemble, "precision", "fp32"))
        forwards = evaluator_forwards(ensemble)
        pgd = robust_predictions(forwards, raw, y, budgets, steps=steps, to_model=to_model, clip=clip,
                                 context=context, seed=seed)
        corrupted = corrupted_predictions(forwards, raw, to_model=to_model, context=context, seed=seed)
        figures = partial(cell_figures, y.numpy(), a, num_classes=real.num_classes, num_groups=real.num_groups,
                          confidence=confidence)
        results[name] = {
            "pgd": [{"budget": b, "budget_255": round(b * 255, 4), **figures(preds)} for b, preds in pgd.items()],
            "corruptions": [{"corruption": c, "severity": s, "parameter": CORRUPTIONS[c][s], **figures(preds)}
                            for (c, s), preds in corrupted.items()],
        }
    if progress is not None:
        progress("robustness: attacking evaluators", len(ensembles), len(ensembles))
    distilled = results.pop("distilled")
    gated = distilled["pgd"][-1]
    return {
        "accuracy": gated["accuracy"], "accuracy_interval": gated["accuracy_interval"],
        "deo_max": gated["deo_max"], "deo_max_interval": gated["deo_max_interval"],
        "worst_group_accuracy": gated["worst_group_accuracy"],
        "interval_method": "gating intervals of ddaudit.metrics (Clopper-Pearson / Newcombe bounds with the evaluator spread)",
        "gated_budget": gated["budget"],
        "samples": int(len(rows)),
        "attack": f"PGD L-inf in raw pixel space, {steps} steps, step 2.5 eps / steps, random start",
        "pixel_space": "raw [0, 1] pixels, normalised after the attack" if clip
        else "pixels as stored (the data have no normalisation constants; budgets are in stored units)",
        "budgets": list(budgets),
        "steps": steps,
        **distilled,
        "references": results,
    }

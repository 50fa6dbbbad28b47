"""The audit: load a distilled set and a real group-labelled dataset, train
evaluators on the distilled set, measure them on the real test set, and compare
against real-data references.

:func:`audit` reads as its six steps, each a function here that a notebook can
call on its own:

1. :func:`load_inputs` - the synthetic set (:mod:`ddaudit.io`) and the real data (:mod:`ddaudit.data`);
2. :func:`ddaudit.data.align_pixel_space` - both in one pixel space;
3. :class:`Evaluators` - train evaluators (:mod:`ddaudit.evaluate`) and predict the real test set;
4. :class:`Measurer` - every metric of the predictions (:mod:`ddaudit.metrics`), and with several
   protected attributes each one's and their intersection's (the ``attributes`` section);
5. :func:`measure_references` - the same for real-data references, through :mod:`ddaudit.reference_cache`;
6. :func:`assemble_report` - the :class:`~ddaudit.report.AuditReport`.

Data flows one way: ``io``/``data`` -> ``evaluate`` -> ``metrics`` ->
``report``. Every random draw comes from ``seed``: :func:`derive_seeds` gives
the evaluators' seeds (stream 0) and the reference subset's (stream 1); the
bootstrap uses ``seed`` itself. Nothing here prints; progress goes through a
callback so the CLI, a notebook or a test can each show it their own way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ddaudit._seeds import (  # noqa: F401 - seed streams and the reference subset kept importable from here
    EVALUATOR_STREAM,
    SUBSET_STREAM,
    derive_seeds,
    random_subset,
    random_subset_rows,
)
from ddaudit.data import (  # noqa: F401 - pixel-space names kept importable from here
    AlignedData,
    GroupTensors,
    RealData,
    align_pixel_space,
    check_compatible,
    fit_zca,
    load_real,
    pixel_warning,
    resolve_space,
    to_real_space,
)
from ddaudit.choices import PGD_BUDGETS
from ddaudit.devices import resolve_device
from ddaudit.errors import ConfigError
from ddaudit.io import SyntheticSet, load_synthetic
from ddaudit.reference_cache import ReferenceCache, ReferenceStore, content_hash  # noqa: F401
from ddaudit.report import SCHEMA, AuditReport  # noqa: F401 - SCHEMA kept importable from here
from ddaudit.reproducibility import numerics_key, runtime_settings

#: progress(phase, done, total): phase is a short human label.
Progress = Callable[[str, int, int], None]


def check_audit_options(*, num_eval: int, n_boot: int, confidence: float, min_group_size: int) -> None:
    """Refuse option values no audit can use, before anything is loaded or trained."""
    for name, value, least in (("--num-eval", num_eval, 1), ("--n-boot", n_boot, 0),
                               ("--min-group-size", min_group_size, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ConfigError(f"{name} must be a whole number >= {least}, got {value!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ConfigError(f"--confidence must lie strictly between 0 and 1, got {confidence!r}")


# ---------------------------------------------------------------- step 1: load


def load_inputs(synthetic: str | Path | SyntheticSet, real: str | RealData, *, format: str | None = None,
                index: int = -1, real_options: dict | None = None) -> tuple[SyntheticSet, RealData]:
    """The synthetic set and the real data, loaded (unless given loaded) and checked to fit together."""
    syn = synthetic if isinstance(synthetic, SyntheticSet) else load_synthetic(str(synthetic), format=format, index=index)
    real_data = real if isinstance(real, RealData) else load_real(real, **(real_options or {}))
    check_compatible(syn, real_data)
    return syn, real_data


def evaluation_protocol(name: str, overrides: dict | None, syn: SyntheticSet):
    """The protocol preset with the user's overrides; MTT takes the set's learned lr unless one is given."""
    from ddaudit.evaluate import get_protocol

    chosen = {k: v for k, v in (overrides or {}).items() if v is not None}
    if name == "mtt" and "lr" not in chosen and syn.lr is not None:
        chosen["lr"] = float(syn.lr)
    return get_protocol(name, **chosen)


# ---------------------------------------------------------------- step 3: train


@dataclass
class Evaluators:
    """Trains one evaluator per seed on a training set and predicts the real test images."""

    protocol: object
    seeds: list[int]
    test_x: torch.Tensor
    num_classes: int
    device: str
    engine: str = "auto"
    progress: Progress | None = None
    precision: str = "fp32"
    compile: str = "auto"
    #: When a dict, the trained ensembles are kept in it by name (the privacy and robustness audits attack them).
    models: dict | None = None

    def predict(self, label: str, x: torch.Tensor, y: torch.Tensor, name: str | None = None) -> np.ndarray:
        """Predictions ``(E, N_test)`` of evaluators trained on (*x*, *y*); *label* names the phase."""
        from ddaudit.distributed import train_and_predict  # divides evaluators over torchrun ranks, if any

        def step(done: int, total: int) -> None:
            if self.progress is not None:
                self.progress(f"training evaluators on the {label}", done, total)

        if self.models is not None:
            from ddaudit.evaluate.engine import check_images, train_evaluators

            check_images(x, self.test_x)
            ensemble = train_evaluators(
                x, y, protocol=self.protocol, seeds=self.seeds, num_classes=self.num_classes, device=self.device,
                engine=self.engine, precision=self.precision, compile=self.compile,
                test_size=self.test_x.shape[0], progress=step,
            )
            self.models[name or label] = ensemble
            return ensemble.predict(self.test_x.detach().float()).cpu().numpy()
        preds = train_and_predict(
            x, y, self.test_x, protocol=self.protocol, seeds=self.seeds, num_classes=self.num_classes,
            device=self.device, engine=self.engine, precision=self.precision, compile=self.compile, progress=step,
        )
        return preds.cpu().numpy()


# ---------------------------------------------------------------- step 4: measure


@dataclass
class Measurer:
    """Every metric of evaluator predictions on the (aligned) real test set."""

    test: GroupTensors
    train: GroupTensors | None
    real: RealData
    n_boot: int
    confidence: float
    seed: int
    min_group_size: int

    def __call__(self, preds: np.ndarray):
        from ddaudit.metrics import compute_metrics

        return compute_metrics(
            self.test.y.numpy(), self.test.a.numpy(), preds,
            num_classes=self.real.num_classes, num_groups=self.real.num_groups,
            train_y=None if self.train is None else self.train.y.numpy(),
            train_a=None if self.train is None else self.train.a.numpy(),
            n_boot=self.n_boot, confidence=self.confidence, seed=self.seed, min_group_size=self.min_group_size,
            class_names=self.real.class_names, group_names=self.real.group_names,
        )

    def attributes(self, preds: np.ndarray, intersection=None) -> dict | None:
        """Each protected attribute's metrics and their intersection's, when the real data has several
        (*intersection*: this measurer's result on *preds*, whose groups are the intersections)."""
        if self.real.attributes is None or self.test.attrs is None:
            return None
        from ddaudit.metrics import attribute_metrics

        train = self.train if self.train is not None and self.train.attrs is not None else None
        return attribute_metrics(
            self.test.y.numpy(), self.test.attrs.numpy(), preds, num_classes=self.real.num_classes,
            attributes=self.real.attributes, values=self.real.attribute_values,
            train_y=None if train is None else train.y.numpy(), train_attrs=None if train is None else train.attrs.numpy(),
            n_boot=self.n_boot, confidence=self.confidence, seed=self.seed, min_group_size=self.min_group_size,
            class_names=self.real.class_names, intersection=intersection,
        )


# ---------------------------------------------------------------- step 5: reference


def measure_references(
    syn: SyntheticSet, real: RealData, aligned: AlignedData, evaluators: Evaluators, measure: Measurer, *,
    seed: int, random: bool = True, full: bool = False, cache: ReferenceCache | None = None,
) -> tuple[dict[str, dict], dict[str, np.ndarray], list[str]]:
    """``(references, predictions, warnings)`` for the requested real-data references.

    ``random_subset`` trains on real rows with the synthetic set's per-class
    counts (drawn with the subset seed stream), ``full`` on the whole training
    set. Predictions come from *cache* when the same data, space, protocol and
    seeds were seen before.
    """
    if not (random or full):
        return {}, {}, []
    train = aligned.train
    if train is None:
        return {}, {}, [f"{real.name} has no training data: no reference, no amplification factor"]
    cache = cache if cache is not None else ReferenceCache()
    key = {"real": real.name, "meta": _plain(real.meta), "train": len(train), "space": aligned.space,
           "protocol": evaluators.protocol.to_dict(), "seeds": evaluators.seeds, "precision": evaluators.precision,
           "content": content_hash(train.x, train.y, train.a), "runtime": numerics_key()}
    wanted = []
    if random:
        subset = random_subset(train, syn.labels, real.num_classes, derive_seeds(seed, 1, stream=SUBSET_STREAM)[0])
        per_class = torch.bincount(syn.labels, minlength=real.num_classes).tolist()
        wanted.append(("random_subset", "random real subset", subset, {**key, "per_class": per_class}))
    if full:
        wanted.append(("full", "full real training set", train, key))
    references, predictions = {}, {}
    for name, label, data, data_key in wanted:
        if evaluators.models is not None:  # the attacks need the models, which the cache does not keep
            preds = evaluators.predict(label, data.x, data.y, name=name)
        else:
            preds = cache.get(name, data_key, lambda: evaluators.predict(label, data.x, data.y))
        references[name] = {"images": len(data), "metrics": measure(preds).metrics}
        predictions[f"y_pred_{name}"] = preds
    return references, predictions, []


def amplification_table(syn_metrics: dict, references: dict[str, dict]) -> dict[str, dict]:
    """Each disparity against the full reference when there is one, else the random subset."""
    from ddaudit.metrics import DISPARITY_METRICS, amplification

    chosen = "full" if "full" in references else ("random_subset" if references else None)
    if chosen is None:
        return {}
    by_ref = {name: amplification(syn_metrics, ref["metrics"]) for name, ref in references.items()}
    table = {}
    for metric in DISPARITY_METRICS:
        entry = dict(by_ref[chosen].get(metric, {"ratio": None, "difference": None}))
        entry["reference"] = chosen
        entry["by_reference"] = {name: values.get(metric) for name, values in by_ref.items()}
        table[metric] = entry
    return table


# ---------------------------------------------------------------- step 6: assemble


def assemble_report(syn: SyntheticSet, real: RealData, space: str, settings: dict, result,
                    references: dict, amplification: dict, warnings: list[str],
                    predictions: dict[str, np.ndarray]) -> AuditReport:
    """The :class:`AuditReport` of one audit."""
    real_entry = {
        "name": real.name,
        "num_classes": real.num_classes,
        "num_groups": real.num_groups,
        "class_names": list(real.class_names),
        "group_names": list(real.group_names),
        "test_size": len(real.test),
        "train_size": None if real.train is None else len(real.train),
    }
    if real.attributes is not None:  # several attributes: the groups are their intersections
        real_entry["attributes"] = list(real.attributes)
    return AuditReport(
        synthetic={
            "path": syn.path,
            "format": syn.format,
            "images": syn.num_images,
            "classes": len(syn.classes),
            "ipc": syn.ipc,
            "soft_labels": syn.soft_labels is not None,
            "space": space,
        },
        real=real_entry,
        settings=settings,
        metrics=result.metrics,
        cells=result.cells,
        reference=references,
        amplification=amplification,
        warnings=warnings,
        per_class=result.per_class,
        per_group=result.per_group,
        predictions=predictions,
    )


# ---------------------------------------------------------------- the audit


def audit(
    synthetic: str | Path | SyntheticSet,
    real: str | RealData,
    *,
    real_options: dict | None = None,
    format: str | None = None,
    index: int = -1,
    protocol: str = "dsa",
    protocol_overrides: dict | None = None,
    num_eval: int = 5,
    seed: int = 0,
    device: str = "auto",
    engine: str = "auto",
    precision: str = "auto",
    compile: str = "auto",
    reference: bool = True,
    full_reference: bool = False,
    cache_dir: str | Path | None = None,
    reference_cache: dict | None = None,
    min_group_size: int = 20,
    n_boot: int = 1000,
    confidence: float = 0.95,
    space: str = "auto",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    progress: Progress | None = None,
    privacy: bool = False,
    members: np.ndarray | str | Path | None = None,
    robustness: bool = False,
    robustness_samples: int = 1000,
    robustness_budgets: str | Sequence[float] = PGD_BUDGETS,
    pgd_steps: int = 10,
) -> AuditReport:
    """Audit one distilled set; returns an :class:`~ddaudit.report.AuditReport`
    (``to_dict()`` is the ``ddaudit.report/1`` JSON) holding the predictions too.

    *synthetic* is a path (any format :func:`ddaudit.io.load_synthetic` reads)
    or a loaded :class:`SyntheticSet`; *real* a ``--real`` spec such as
    ``"cmnist-fg"`` or a :class:`RealData`. Evaluators are trained with the
    named protocol preset (``dc``, ``dsa``, ``dm``, ``mtt``, ``quick``) and any
    overrides (``model``, ``epochs``, ``lr``, ``aug``, ``batch_size``); ``precision``
    (``auto``, ``fp32``, ``bf16``) is the evaluators' arithmetic (``auto``: bf16 on CPUs with native bf16),
    ``compile`` (``auto``, ``on``, ``off``) whether their forward passes go through ``torch.compile``.
    ``reference_cache`` (a dict) lets several audits on the same real data
    share reference predictions; ``cache_dir`` keeps the full-data reference on disk.

    ``privacy`` adds the membership-inference section (members: the whole real
    training split, or the 0/1 mask or file *members*), ``robustness`` the
    PGD/corruption section (``robustness_samples`` test images, budgets in raw
    [0, 1] pixels); both attack the trained evaluators, so with either the
    references are trained afresh rather than read from the cache.
    """
    check_audit_options(num_eval=num_eval, n_boot=n_boot, confidence=confidence, min_group_size=min_group_size)
    from ddaudit.distributed import world_size
    from ddaudit.evaluate import resolve_precision

    plan = attack_plan(privacy=privacy, robustness=robustness, members=members, samples=robustness_samples,
                       budgets=robustness_budgets, steps=pgd_steps)
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    syn, real_data = load_inputs(synthetic, real, format=format, index=index, real_options=real_options)
    aligned = align_pixel_space(syn, real_data, space, mean, std)
    proto = evaluation_protocol(protocol, protocol_overrides, syn)
    seeds = derive_seeds(seed, num_eval)
    split = plan.split(real_data, seed)

    evaluators = Evaluators(proto, seeds, aligned.test.x, real_data.num_classes, device, engine, progress,
                            precision, compile, models={} if plan.active else None)
    syn_preds = evaluators.predict("distilled set", aligned.syn_x,
                                   syn.soft_labels if syn.soft_labels is not None else syn.labels, name="distilled")
    measure = Measurer(aligned.test, aligned.train, real_data, n_boot, confidence, seed, min_group_size)
    syn_result = measure(syn_preds)

    references, ref_predictions, ref_warnings = measure_references(
        syn, real_data, aligned, evaluators, measure, seed=seed, random=reference, full=full_reference,
        cache=ReferenceCache(reference_cache, cache_dir),
    )
    settings = {
        "protocol": proto.to_dict(),
        "num_eval": num_eval,
        "seed": seed,
        "evaluator_seeds": seeds,
        "engine": engine,
        "precision": precision,
        "compile": compile,
        "device": device,
        "world_size": world_size(),
        "min_group_size": min_group_size,
        "n_boot": n_boot,
        "confidence": confidence,
        **runtime_settings(),
    }
    predictions = {"y_true": aligned.test.y.numpy(), "group": aligned.test.a.numpy(), "y_pred": syn_preds,
                   **ref_predictions}
    if aligned.test.attrs is not None:
        predictions["attributes"] = aligned.test.attrs.numpy()
    report = assemble_report(
        syn, real_data, aligned.space, settings, syn_result, references,
        amplification_table(syn_result.metrics, references),
        [*aligned.warnings, *syn_result.warnings, *ref_warnings], predictions,
    )
    by_attribute = measure.attributes(syn_preds, syn_result)
    if by_attribute is not None:
        report = report.with_section("attributes", by_attribute)
    for name, section in plan.sections(evaluators.models or {}, syn, real_data, aligned, split, seed=seed,
                                       n_boot=n_boot, confidence=confidence, progress=progress):
        report = report.with_section(name, section)
    return report


def attack_plan(**options):
    """The privacy/robustness options, checked before anything is loaded (:class:`ddaudit.attacks.AttackPlan`)."""
    from ddaudit.attacks import AttackPlan

    return AttackPlan.build(**options)


def _plain(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if isinstance(v, (int, float, str, bool))}

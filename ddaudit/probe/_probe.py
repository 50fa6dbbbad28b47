"""The probe: what a distilled set is made of, in seconds, without training evaluators.

A group classifier learnt on the real training images (:mod:`._classifier`)
labels every synthetic image with its most likely protected group; per class the
predicted group distribution is compared with the real class's and a uniform one
(:mod:`._composition`). A collapse onto the majority group, which evaluators
reveal as a large DEO_M after minutes of training, shows here as a majority
share near 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ddaudit._version import __version__
from ddaudit.data import GroupTensors, RealData, load_real
from ddaudit.errors import ConfigError, InputError
from ddaudit.io import SyntheticSet, load_synthetic
from ddaudit.probe._classifier import (
    ClassifierSettings,
    add_noise,
    default_cache_dir,
    embed_features,
    load_or_train,
    predict_proba,
    real_cell_features,
)
from ddaudit.probe._composition import composition
from ddaudit.probe._intervals import DEFAULT_N_BOOT, check_n_boot, probe_intervals
from ddaudit.probe._unknown import DEFAULT_UNKNOWN_QUANTILE, check_quantile, fit_detector
from ddaudit.reproducibility import runtime_settings

PROBE_SCHEMA = "ddaudit.probe/1"
DEFAULT_MIN_CONFIDENCE = 0.5
#: Residual distance (over the group means' spread) beyond which a class mean is called far off the hull.
HULL_WARNING = 1.0

#: progress(phase, done, total), as in :mod:`ddaudit.auditing`.
Progress = Callable[[str, int, int], None]


@dataclass
class ProbeResult:
    """The ``composition`` section plus what pictures need: the images and their predictions.

    ``report`` is a JSON-ready dict (schema ``ddaudit.probe/1``) whose
    ``composition`` key is what ``ddaudit check`` embeds in its own report.
    ``images`` are the synthetic images in the real data's space (as the
    classifier saw them), ``pixels`` the same in [0, 1] for display.
    """

    report: dict
    images: torch.Tensor
    labels: torch.Tensor
    groups: torch.Tensor
    confidence: torch.Tensor
    pixels: torch.Tensor
    reference_pixels: torch.Tensor | None = None
    reference_labels: torch.Tensor | None = None
    group_colours: list | None = None

    @property
    def composition(self) -> dict:
        return self.report["composition"]

    def picture_inputs(self):
        """What :func:`ddaudit.report.render_pictures` draws from."""
        from ddaudit.report import PictureInputs

        return PictureInputs(self.pixels, self.labels, groups=self.groups, confidence=self.confidence,
                             min_confidence=self.report["composition"]["min_confidence"],
                             ref_pixels=self.reference_pixels, ref_labels=self.reference_labels,
                             group_colours=self.group_colours)


def probe(
    synthetic: str | Path | SyntheticSet,
    real: str | RealData,
    *,
    format: str | None = None,
    index: int = -1,
    space: str = "auto",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    real_options: dict | None = None,
    seed: int = 0,
    device: str = "auto",
    cache_dir: str | Path | None = "auto",
    classifier: ClassifierSettings | dict | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    unknown_quantile: float = DEFAULT_UNKNOWN_QUANTILE,
    n_boot: int = DEFAULT_N_BOOT,
    progress: Progress | None = None,
) -> ProbeResult:
    """Probe the group composition of one distilled set.

    *synthetic* and *real* are what :func:`ddaudit.audit` takes, with the same
    pixel-space options. ``cache_dir="auto"`` keeps the trained classifier in
    :func:`default_cache_dir`; ``None`` disables the cache. ``classifier``
    overrides :class:`ClassifierSettings` (its seed defaults to *seed*).
    Images whose most likely group has probability below ``min_confidence``
    are flagged as uncertain; images farther from every real (class, group) cell
    than ``unknown_quantile`` of noisy held-out real images (:mod:`._unknown`)
    are counted as unknown and left out of the shares. ``n_boot`` bootstrap
    replicates give the gated means their intervals (:mod:`._intervals`).
    """
    from ddaudit.data import check_compatible
    from ddaudit.devices import resolve_device

    if not 0.0 <= min_confidence <= 1.0:
        raise ConfigError(f"--min-confidence must lie in [0, 1], got {min_confidence!r}")
    unknown_quantile = check_quantile(unknown_quantile)
    n_boot = check_n_boot(n_boot)
    settings = _classifier_settings(classifier, seed)
    device = resolve_device(device)
    syn = synthetic if isinstance(synthetic, SyntheticSet) else load_synthetic(str(synthetic), format=format, index=index)
    real_data = real if isinstance(real, RealData) else load_real(real, **(real_options or {}))
    check_compatible(syn, real_data)
    if real_data.train is None:
        raise InputError(f"{real_data.name} has no training data: the probe learns the groups from it")
    if real_data.num_groups < 2:
        raise InputError(f"{real_data.name} has a single protected group: there is no composition to probe")

    syn_x, space, train, test, warnings = _in_real_space(syn, real_data, space, mean, std)

    def step(done: int, total: int) -> None:
        if progress is not None:
            progress("training the group classifier", done, total)

    trained = load_or_train(
        train, test, num_groups=real_data.num_groups, channel=real_data.channel, im_size=tuple(real_data.im_size),
        settings=settings, key_extra={"real": real_data.name, "space": space},
        cache_dir=default_cache_dir() if cache_dir == "auto" else cache_dir, device=device, progress=step,
    )
    if progress is not None:
        progress("predicting groups", 0, 2)
    test_proba = predict_proba(trained.model, test.x, device=device)
    if progress is not None:
        progress("predicting groups", 1, 2)
    syn_proba = predict_proba(trained.model, syn_x, device=device)
    syn_features = embed_features(trained.model, syn_x, device=device).double().numpy()
    cells = real_cell_features(trained.model, train, num_classes=real_data.num_classes,
                               num_groups=real_data.num_groups, seed=seed, device=device)
    detector = fit_detector(cells.features, cells.cells, _calibration_features(trained.model, test, settings, seed, device),
                            quantile=unknown_quantile)
    syn_scores = detector.scores(syn_features)
    known = syn_scores <= detector.threshold
    if progress is not None:
        progress("predicting groups", 2, 2)

    reliability = _reliability(test_proba, test.a, real_data.num_groups)
    confidence, groups = syn_proba.max(dim=1)
    uncertain = torch.nonzero(confidence < min_confidence).flatten()
    comp = composition(
        syn.labels.numpy(), groups.numpy(), num_classes=real_data.num_classes, num_groups=real_data.num_groups,
        real_labels=real_data.train.y.numpy(), real_groups=real_data.train.a.numpy(), syn_proba=syn_proba.numpy(),
        syn_features=syn_features, real_group_means=cells.means(), syn_known=known,
    )
    comp.update(probe_intervals(comp, syn.labels.numpy(), groups.numpy(), known, syn_features, cells,
                                n_boot=n_boot, seed=seed))
    for entry in comp["classes"]:
        in_class = syn.labels == entry["class"]
        entry["uncertain"] = int((confidence[in_class] < min_confidence).sum())
        entry["mean_confidence"] = float(confidence[in_class].mean()) if bool(in_class.any()) else None
    if reliability["accuracy"] < 0.8:
        warnings.append(
            f"the group classifier reaches only {100 * reliability['accuracy']:.1f} % on the real test set: "
            f"read the composition with care"
        )
    _weight_warnings(comp, real_data.class_names, warnings)
    if comp["unknown_images"]:
        warnings.append(
            f"{comp['unknown_images']} of {syn.num_images} synthetic images are unlike any real group "
            f"(farther from every real class x group mean than {100 * unknown_quantile:g} % of noisy held-out real images): "
            f"counted as unknown, not in the shares"
        )
    if len(uncertain):
        warnings.append(
            f"the group classifier is unsure (max probability < {min_confidence:g}) about "
            f"{len(uncertain)} of {syn.num_images} synthetic images"
        )
    comp.update({
        "classifier": {
            **reliability,
            "model": f"ConvNet width {settings.width} depth {settings.depth}, batch norm",
            "settings": asdict(settings),
            "cache_key": trained.key[:32],
        },
        "min_confidence": min_confidence,
        "warnings": list(warnings),
        "uncertain": {"count": int(len(uncertain)), "indices": uncertain.tolist()},
        "unknown": {
            "count": int((~known).sum()), "indices": np.flatnonzero(~known).tolist(), "quantile": unknown_quantile,
            "threshold": round(detector.threshold, 6), "score": "squared Mahalanobis distance to the nearest real "
            "class x group mean (penultimate features, Ledoit-Wolf pooled covariance)",
        },
        "images": {
            "class": syn.labels.tolist(),
            "group": groups.tolist(),
            "confidence": [round(float(c), 4) for c in confidence],
            "known": known.tolist(),
            "unknown_score": [round(float(v), 4) for v in syn_scores],
        },
    })
    report = {
        "schema": PROBE_SCHEMA,
        "ddaudit_version": __version__,
        "status": "not_gated",
        "synthetic": {
            "path": syn.path, "format": syn.format, "images": syn.num_images, "classes": len(syn.classes),
            "ipc": syn.ipc, "space": space,
        },
        "real": {
            "name": real_data.name, "num_classes": real_data.num_classes, "num_groups": real_data.num_groups,
            "class_names": list(real_data.class_names), "group_names": list(real_data.group_names),
            "test_size": len(real_data.test), "train_size": len(real_data.train),
        },
        "settings": {"seed": seed, "device": device, **runtime_settings()},
        "composition": comp,
        "warnings": warnings,
        "gates": [],
    }
    reference = reference_subset(real_data, syn.labels, seed)
    return ProbeResult(
        report=report, images=syn_x, labels=syn.labels, groups=groups, confidence=confidence,
        pixels=display_pixels(syn_x, real_data, space),
        reference_pixels=display_pixels(reference.x, real_data, "normalized"), reference_labels=reference.y,
        group_colours=_palette(real_data),
    )


def _calibration_features(model, test: GroupTensors, settings: ClassifierSettings, seed: int, device: str) -> np.ndarray:
    """Held-out real images with the training noise (seeded), in the classifier's features."""
    generator = torch.Generator().manual_seed(seed + 1)
    return embed_features(model, add_noise(test.x, settings.noise, generator), device=device).double().numpy()


def _weight_warnings(comp: dict, class_names: Sequence[str], warnings: list[str]) -> None:
    """Say which classes the gated weight leaves out, and which class means lie far off the hull."""
    names = {"one_group": "a single real group", "unidentifiable": "group means too close to tell the groups apart"}
    for status, why in names.items():
        left = [str(class_names[e["class"]]) for e in comp["classes"] if e.get("weight_status") == status]
        if left:
            warnings.append(f"majority weight not identified for class{'es' if len(left) > 1 else ''} "
                            f"{', '.join(left)} ({why}): left out of the mean majority weight")
    far = [str(class_names[e["class"]]) for e in comp["classes"]
           if e.get("hull_residual") is not None and e["hull_residual"] == e["hull_residual"] and e["hull_residual"] > HULL_WARNING]
    if far:
        warnings.append(f"the mean synthetic feature of class{'es' if len(far) > 1 else ''} {', '.join(far)} lies farther "
                        f"than {HULL_WARNING:g} x the group means' spread from their hull: the weight names the nearest mixture, "
                        f"not what the images show")


def _palette(real: RealData) -> list | None:
    """The groups' own RGB colours when the dataset is coloured by group (Colored-MNIST)."""
    palette = real.meta.get("palette")
    return palette if isinstance(palette, list) and len(palette) == real.num_groups else None


def reference_subset(real: RealData, labels: torch.Tensor, seed: int) -> GroupTensors:
    """The random real subset with the synthetic set's per-class counts that ``check``'s
    reference evaluators train on (same seed stream), shown beside the distilled set."""
    from ddaudit._seeds import derive_seeds, random_subset

    return random_subset(real.train, labels, real.num_classes, derive_seeds(seed, 1, stream=1)[0])


def _in_real_space(syn: SyntheticSet, real: RealData, space: str, mean, std):
    """Synthetic pixels in the real data's space (as ``check`` converts them), the real
    splits in the same space (whitened for ZCA), and any pixel-space warning."""
    from ddaudit.data import align_pixel_space

    aligned = align_pixel_space(syn, real, space, mean, std)
    return aligned.syn_x, aligned.space, aligned.train, aligned.test, aligned.warnings


def set_pictures(
    synthetic: str | Path | SyntheticSet,
    real: RealData,
    *,
    format: str | None = None,
    index: int = -1,
    space: str = "auto",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    seed: int = 0,
):
    """Picture inputs without a probe (``check --no-probe``): the set and its references, no groups."""
    from ddaudit.report import PictureInputs

    syn = synthetic if isinstance(synthetic, SyntheticSet) else load_synthetic(str(synthetic), format=format, index=index)
    syn_x, space, _, _, _ = _in_real_space(syn, real, space, mean, std)
    inputs = PictureInputs(display_pixels(syn_x, real, space), syn.labels)
    if real.train is not None:
        reference = reference_subset(real, syn.labels, seed)
        inputs.ref_pixels, inputs.ref_labels = display_pixels(reference.x, real, "normalized"), reference.y
    return inputs


def display_pixels(x: torch.Tensor, real: RealData, space: str) -> torch.Tensor:
    """Images in [0, 1] for pictures: undo the real data's normalisation, or stretch ZCA images."""
    if space == "zca" or real.mean is None or real.std is None:
        flat = x.reshape(len(x), -1)
        low, high = flat.min(dim=1).values, flat.max(dim=1).values
        return ((flat - low[:, None]) / (high - low).clamp_min(1e-8)[:, None]).reshape(x.shape)
    mean = torch.tensor(real.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(real.std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x * std + mean).clamp(0, 1)


def _classifier_settings(value: ClassifierSettings | dict | None, seed: int) -> ClassifierSettings:
    if isinstance(value, ClassifierSettings):
        return value
    options = dict(value or {})
    options.setdefault("seed", seed)
    try:
        return ClassifierSettings(**options)
    except TypeError as error:
        raise ConfigError(f"unknown probe classifier setting: {error}") from None


def _reliability(proba: torch.Tensor, groups: torch.Tensor, num_groups: int) -> dict:
    """Accuracy of the group classifier on the real test set, overall and per group."""
    predicted = proba.argmax(dim=1)
    correct = (predicted == groups).double()
    per_group = []
    for g in range(num_groups):
        rows = groups == g
        per_group.append(float(correct[rows].mean()) if bool(rows.any()) else None)
    known = [v for v in per_group if v is not None]
    return {
        "accuracy": float(correct.mean()) if len(correct) else float("nan"),
        "balanced_accuracy": float(np.mean(known)) if known else None,
        "per_group_accuracy": per_group,
        "test_size": int(len(groups)),
    }

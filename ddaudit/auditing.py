"""The audit: load a distilled set and a real group-labelled dataset, train
evaluators on the distilled set, measure them on the real test set, and compare
against real-data references.

Data flows one way: ``io``/``data`` -> ``evaluate`` -> ``metrics`` -> the
report dict returned here (rendered by :mod:`ddaudit.report`). Nothing in this
module prints; progress goes through a callback so the CLI, a notebook or a
test can each show it their own way.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ddaudit import __version__
from ddaudit.data import GroupTensors, RealData, load_real
from ddaudit.errors import ConfigError, InputError
from ddaudit.io import SyntheticSet, load_synthetic

SCHEMA = "ddaudit.report/1"

SPACES = ("auto", "normalized", "raw", "zca")

#: progress(phase, done, total): phase is a short human label.
Progress = Callable[[str, int, int], None]


@dataclass
class AuditResult:
    """The report (a JSON-ready dict) plus the raw predictions behind it."""

    report: dict
    predictions: dict[str, np.ndarray] = field(default_factory=dict)

    def save_predictions(self, path: Path) -> None:
        """Write y_true, group and per-evaluator predictions so anyone can recompute."""
        np.savez_compressed(path, **self.predictions)


def derive_seeds(seed: int, count: int, stream: int = 0) -> list[int]:
    """Independent evaluator seeds from one user seed (stable across versions)."""
    state = np.random.SeedSequence([seed, stream]).generate_state(count, dtype=np.uint32)
    return [int(s) for s in state]


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} was asked for but no CUDA GPU is available; use --device cpu")
    return device


# ---------------------------------------------------------------- inputs


def check_compatible(syn: SyntheticSet, real: RealData) -> None:
    """Refuse a synthetic set that cannot be evaluated on *real*, saying how to fix it."""
    _, c, h, w = syn.images.shape
    if c != real.channel or (h, w) != tuple(real.im_size):
        raise InputError(
            f"synthetic images are {c}x{h}x{w} but {real.name} test images are "
            f"{real.channel}x{real.im_size[0]}x{real.im_size[1]}: distil at the real data's size "
            f"or pick the matching --real dataset (e.g. an im_size option)"
        )
    labels = syn.labels
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= real.num_classes):
        raise InputError(
            f"synthetic labels span {int(labels.min())}..{int(labels.max())} but {real.name} has "
            f"{real.num_classes} classes (0..{real.num_classes - 1})"
        )
    counts = torch.bincount(labels, minlength=real.num_classes)
    empty = [i for i, n in enumerate(counts.tolist()) if n == 0]
    if empty:
        names = ", ".join(str(i) for i in empty[:10])
        raise InputError(
            f"the synthetic set has no images for class(es) {names} of {real.name}; "
            f"every class needs at least one image"
        )
    if syn.soft_labels is not None and syn.soft_labels.shape[1] != real.num_classes:
        raise InputError(
            f"soft labels have {syn.soft_labels.shape[1]} columns but {real.name} has {real.num_classes} classes"
        )


def _channel_stats(values: Sequence[float] | None, channel: int, flag: str) -> torch.Tensor | None:
    if values is None:
        return None
    values = list(values)
    if len(values) == 1:
        values = values * channel
    if len(values) != channel:
        raise ConfigError(f"{flag} needs 1 or {channel} values (one per channel), got {len(values)}")
    if flag == "--std" and any(v <= 0 for v in values):
        raise ConfigError("--std values must be positive")
    return torch.tensor(values, dtype=torch.float32).view(1, channel, 1, 1)


def to_real_space(
    images: torch.Tensor,
    real: RealData,
    space: str,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> tuple[torch.Tensor, str]:
    """Bring synthetic pixels into the space the real tensors are stored in.

    ``normalized``: saved as ``(pixel - mean) / std`` with the real dataset's
    statistics, or with ``--mean/--std`` when given (then re-normalised with the
    real dataset's). ``raw``: pixels in [0, 1], normalised here. ``zca``: left
    as is (the real data are whitened instead, by :func:`fit_zca`).
    """
    c = real.channel
    user_mean, user_std = _channel_stats(mean, c, "--mean"), _channel_stats(std, c, "--std")
    if (user_mean is None) != (user_std is None):
        raise ConfigError("--mean and --std go together: give both or neither")
    if space == "zca":
        return images, space
    if real.mean is None or real.std is None:
        if user_mean is not None:
            images = images * user_std + user_mean
        return images, space
    real_mean = torch.tensor(real.mean, dtype=torch.float32).view(1, c, 1, 1)
    real_std = torch.tensor(real.std, dtype=torch.float32).view(1, c, 1, 1)
    if space == "raw":
        return (images - real_mean) / real_std, space
    if user_mean is not None:
        images = (images * user_std + user_mean - real_mean) / real_std
    return images, space


def resolve_space(space: str, syn: SyntheticSet) -> str:
    if space not in SPACES:
        raise ConfigError(f"unknown --space {space!r}; choose one of {', '.join(SPACES)}")
    if space != "auto":
        return space
    hint = syn.meta.get("space_hint", "normalized")
    return "raw" if hint == "raw" else "normalized"


def fit_zca(train_x: torch.Tensor, eps: float = 0.1) -> Callable[[torch.Tensor], torch.Tensor]:
    """ZCA whitening fitted on real training images (the MTT convention, eps 0.1)."""
    flat = train_x.reshape(train_x.shape[0], -1).double()
    centre = flat.mean(0, keepdim=True)
    cov = (flat - centre).T @ (flat - centre) / flat.shape[0]
    evals, evecs = torch.linalg.eigh(cov)
    transform = (evecs @ torch.diag(1.0 / torch.sqrt(evals.clamp_min(0) + eps)) @ evecs.T).float()
    centre = centre.float()

    def apply(x: torch.Tensor) -> torch.Tensor:
        out = (x.reshape(x.shape[0], -1) - centre) @ transform
        return out.reshape(x.shape)

    return apply


def pixel_warning(syn_x: torch.Tensor, real_x: torch.Tensor) -> str | None:
    """Flag a likely pixel-space mix-up: synthetic statistics far from the real data's."""
    s_mean, r_mean = float(syn_x.mean()), float(real_x.mean())
    s_std, r_std = float(syn_x.std()), float(real_x.std())
    if r_std <= 0:
        return None
    if abs(s_mean - r_mean) > 1.5 * r_std or not (0.2 < s_std / max(r_std, 1e-8) < 5.0):
        return (
            f"synthetic pixels (mean {s_mean:.2f}, std {s_std:.2f}) look unlike the real test pixels "
            f"(mean {r_mean:.2f}, std {r_std:.2f}): check --space / --mean / --std"
        )
    return None


# ---------------------------------------------------------------- references


def random_subset(train: GroupTensors, labels: torch.Tensor, num_classes: int, seed: int) -> GroupTensors:
    """Real training rows with the synthetic set's per-class counts (the same IPC)."""
    per_class = torch.bincount(labels, minlength=num_classes).tolist()
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for cls, want in enumerate(per_class):
        rows = torch.nonzero(train.y == cls).flatten()
        if len(rows) == 0:
            continue
        order = rows[torch.randperm(len(rows), generator=generator)]
        picks.append(order[: min(want, len(rows))])
    return train.subset(torch.cat(picks))


def _cache_key(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


# ---------------------------------------------------------------- the audit


def audit(
    synthetic: str | Path | SyntheticSet,
    real: str | RealData,
    *,
    format: str | None = None,
    index: int = -1,
    space: str = "auto",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    real_options: dict | None = None,
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
    progress: Progress | None = None,
) -> AuditResult:
    """Audit one distilled set; returns the ``ddaudit.report/1`` dict and predictions.

    *synthetic* is a path (any format :func:`ddaudit.io.load_synthetic` reads)
    or a loaded :class:`SyntheticSet`; *real* a ``--real`` spec such as
    ``"cmnist-fg"`` or a :class:`RealData`. Evaluators are trained with the
    named protocol preset (``dc``, ``dsa``, ``dm``, ``mtt``, ``quick``) and any
    overrides (``model``, ``epochs``, ``lr``, ``aug``, ``batch_size``); ``precision``
    (``auto``, ``fp32``, ``bf16``) is the evaluators' arithmetic (``auto``: bf16 on CPUs with native bf16),
    ``compile`` (``auto``, ``on``, ``off``) whether their forward passes go through ``torch.compile``.
    ``reference_cache`` (a dict) lets several audits on the same real data
    share reference predictions; ``cache_dir`` keeps the full-data reference on disk.
    """
    from ddaudit.distributed import train_and_predict, world_size
    from ddaudit.evaluate import get_protocol, resolve_precision
    from ddaudit.metrics import DISPARITY_METRICS, amplification, compute_metrics

    if num_eval < 1:
        raise ConfigError("--num-eval must be at least 1")
    if not 0 < confidence < 1:
        raise ConfigError("--confidence must lie strictly between 0 and 1")
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    syn = synthetic if isinstance(synthetic, SyntheticSet) else load_synthetic(str(synthetic), format=format, index=index)
    real_data = real if isinstance(real, RealData) else load_real(real, **(real_options or {}))
    check_compatible(syn, real_data)

    overrides = {k: v for k, v in (protocol_overrides or {}).items() if v is not None}
    if protocol == "mtt" and "lr" not in overrides and syn.lr is not None:
        overrides["lr"] = float(syn.lr)
    proto = get_protocol(protocol, **overrides)

    warnings: list[str] = []
    space = resolve_space(space, syn)
    syn_x, space = to_real_space(syn.images, real_data, space, mean, std)
    test, train = real_data.test, real_data.train
    if space == "zca":
        if train is None:
            raise InputError("--space zca needs the real training data to fit the whitening; this --real has none")
        whiten = fit_zca(train.x)
        test = GroupTensors(whiten(test.x), test.y, test.a)
        train = GroupTensors(whiten(train.x), train.y, train.a)
    note = pixel_warning(syn_x, test.x)
    if note:
        warnings.append(note)
    syn_y = syn.soft_labels if syn.soft_labels is not None else syn.labels

    seeds = derive_seeds(seed, num_eval)

    def run(label: str, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        def step(done: int, total: int) -> None:
            if progress is not None:
                progress(f"training evaluators on the {label}", done, total)

        preds = train_and_predict(
            x, y, test.x, protocol=proto, seeds=seeds, num_classes=real_data.num_classes,
            device=device, engine=engine, precision=precision, compile=compile, progress=step,
        )
        return preds.cpu().numpy()

    def measure(preds: np.ndarray) -> object:
        return compute_metrics(
            test.y.numpy(), test.a.numpy(), preds,
            num_classes=real_data.num_classes, num_groups=real_data.num_groups,
            train_y=None if train is None else train.y.numpy(),
            train_a=None if train is None else train.a.numpy(),
            n_boot=n_boot, confidence=confidence, seed=seed, min_group_size=min_group_size,
            class_names=real_data.class_names, group_names=real_data.group_names,
        )

    syn_preds = run("distilled set", syn_x, syn_y)
    syn_result = measure(syn_preds)
    warnings.extend(syn_result.warnings)
    predictions = {"y_true": test.y.numpy(), "group": test.a.numpy(), "y_pred": syn_preds}

    references: dict[str, dict] = {}
    if reference or full_reference:
        if train is None:
            warnings.append(f"{real_data.name} has no training data: no reference, no amplification factor")
        else:
            store = ReferenceStore(reference_cache, cache_dir)
            key = {"real": real_data.name, "meta": _plain(real_data.meta), "train": len(train), "space": space,
                   "protocol": proto.to_dict(), "seeds": seeds, "precision": precision, "checksum": _checksum(train.x)}
            wanted = []
            if reference:
                subset = random_subset(train, syn.labels, real_data.num_classes, derive_seeds(seed, 1, stream=1)[0])
                per_class = torch.bincount(syn.labels, minlength=real_data.num_classes).tolist()
                wanted.append(("random_subset", "random real subset", subset, {**key, "per_class": per_class}))
            if full_reference:
                wanted.append(("full", "full real training set", train, key))
            for name, label, data, data_key in wanted:
                preds = store.get(name, data_key, lambda: run(label, data.x, data.y))
                references[name] = {"images": len(data), "metrics": measure(preds).metrics}
                predictions[f"y_pred_{name}"] = preds

    amp = {}
    chosen = "full" if "full" in references else ("random_subset" if references else None)
    if chosen is not None:
        by_ref = {name: amplification(syn_result.metrics, ref["metrics"]) for name, ref in references.items()}
        for metric in DISPARITY_METRICS:
            entry = dict(by_ref[chosen].get(metric, {"ratio": None, "difference": None}))
            entry["reference"] = chosen
            entry["by_reference"] = {name: values.get(metric) for name, values in by_ref.items()}
            amp[metric] = entry

    report = {
        "schema": SCHEMA,
        "ddaudit_version": __version__,
        "status": "not_gated",
        "synthetic": {
            "path": syn.path,
            "format": syn.format,
            "images": syn.num_images,
            "classes": len(syn.classes),
            "ipc": syn.ipc,
            "soft_labels": syn.soft_labels is not None,
            "space": space,
        },
        "real": {
            "name": real_data.name,
            "num_classes": real_data.num_classes,
            "num_groups": real_data.num_groups,
            "class_names": list(real_data.class_names),
            "group_names": list(real_data.group_names),
            "test_size": len(real_data.test),
            "train_size": None if real_data.train is None else len(real_data.train),
        },
        "settings": {
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
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "metrics": syn_result.metrics,
        "cells": syn_result.cells,
        "reference": references,
        "amplification": amp,
        "warnings": warnings,
        "gates": [],
    }
    return AuditResult(report=report, predictions=predictions)


class ReferenceStore:
    """Reference predictions computed once: in memory (``reference_cache``, e.g.
    shared by the demo's two audits, whose references are identical) and, for
    the full-data reference, on disk under ``cache_dir``."""

    def __init__(self, memory: dict | None, cache_dir: str | Path | None):
        self.memory = memory if memory is not None else {}
        self.cache_dir = None if cache_dir is None else Path(cache_dir)

    def get(self, name: str, key: dict, compute: Callable[[], np.ndarray]) -> np.ndarray:
        digest = f"{name}-{_cache_key(key)}"
        if digest in self.memory:
            return self.memory[digest]
        path = None if self.cache_dir is None or name != "full" else self.cache_dir / f"reference-{digest}.npy"
        if path is not None and path.exists():
            preds = np.load(path, allow_pickle=False)
        else:
            preds = compute()
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, preds, allow_pickle=False)
        self.memory[digest] = preds
        return preds


def _plain(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if isinstance(v, (int, float, str, bool))}


def _checksum(x: torch.Tensor) -> float:
    """A cheap fingerprint of the training pixels, so a changed dataset misses the cache."""
    return float(x[:: max(1, len(x) // 97)].double().sum())

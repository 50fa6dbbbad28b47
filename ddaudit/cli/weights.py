"""``ddaudit weights``: KDE sample weights (Cui et al.) and pseudo-groups for data without group labels.

The command composes the Python API a notebook would call::

    real = load_real("cmnist-fg", bias_ratio=0.95)
    emb = surrogate_embeddings(real.train.x, real.train.y, SurrogateSettings(), device="auto")
    weights = kde_weights(emb.to(device), real.train.y)
    groups = pseudo_groups(emb, real.train.y)
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ddaudit.cli._common import handle_errors, make_console, parse_key_values, plain_output

WEIGHTS_HELP = """Compute per-sample weights that up-weight bias-conflicting training images.

Trains a supervised-contrastive surrogate on the real training set, embeds every
training image, estimates each image's density among the images of its class with a
Gaussian KDE and writes the normalised inverse density (mean 1 per class) to --output,
aligned with the dataset's training order: {"weights", "labels", "settings", "dataset"}.
Use it with `ddaudit run --mode weights --weights FILE` or fair_matching(mode="weights").

--pseudo-groups FILE also clusters each class's embeddings (DBSCAN) and writes group
ids usable as --groups by the sync and barycenter modes, for data without group labels.

When the dataset has true group labels, the command also reports how well the weights
(conflicting vs aligned mean weight, AUC) and pseudo-groups (adjusted Rand index) recover them.
"""

ERR_SAME_OUTPUT = "--output and --pseudo-groups must be different files."
ERR_NORMALIZE = "--normalize must be 'class' or 'global'; got {value!r}."
ERR_PSEUDO_METHOD = "--pseudo-method must be 'dbscan' or 'kmeans'; got {value!r}."
ERR_KMEANS_GROUPS = "--pseudo-method kmeans needs --n-groups (clusters per class)."
ERR_NO_TRAIN = "dataset {name!r} has no training split; KDE weights are computed on training images."

ProgressFactory = Callable[[str], Callable[[int, int], None]]


def register(app: typer.Typer) -> None:
    app.command("weights", help=WEIGHTS_HELP)(handle_errors(weights))


@contextmanager
def _phases(console: Console) -> Iterator[ProgressFactory]:
    """``phase(name) -> progress(done, total)``: one rich bar per phase (one line per phase under CI)."""
    if plain_output():
        finished: set[str] = set()

        def plain(name: str) -> Callable[[int, int], None]:
            console.print(f"{name} ...")

            def report(done: int, total: int) -> None:
                if done >= total and name not in finished:
                    finished.add(name)
                    console.print(f"  {name}: done ({total} steps)")

            return report

        yield plain
        return

    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    )
    with bars:
        def rich_phase(name: str) -> Callable[[int, int], None]:
            task = bars.add_task(name, total=None)

            def report(done: int, total: int) -> None:
                bars.update(task, completed=done, total=total)

            return report

        yield rich_phase


def weights(
    real: Annotated[str, typer.Option("--real", "-r", help="Real training data: PRESET or PRESET:ROOT (see `ddaudit datasets`).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the weights (.pt).", show_default=False)],
    pseudo_groups_out: Annotated[Optional[Path], typer.Option("--pseudo-groups", help="Also write pseudo-group ids (.pt) usable as --groups.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    epochs: Annotated[int, typer.Option(help="Surrogate training epochs.")] = 10,
    model: Annotated[str, typer.Option(help="Surrogate backbone from the evaluator zoo (ConvNet, ConvNetW32, ResNet18, ...).")] = "ConvNet",
    batch_size: Annotated[int, typer.Option(help="Surrogate batch size (each image contributes two views).")] = 256,
    temperature: Annotated[float, typer.Option(help="SupCon temperature.")] = 0.1,
    bandwidth: Annotated[str, typer.Option(help="KDE bandwidth: scott, silverman (x total std), scott-dim, silverman-dim (x per-dimension std), or a number.")] = "scott",
    power: Annotated[float, typer.Option(help="Weight = density^-power: 0 uniform, 1 inverse density, between: tempered.")] = 1.0,
    max_weight: Annotated[Optional[float], typer.Option(help="Cap each weight at this multiple of the mean; the excess goes to the others.")] = None,
    normalize: Annotated[str, typer.Option(help="Mean-1 normalisation: class (keeps class balance) or global.")] = "class",
    chunk_size: Annotated[int, typer.Option(help="KDE block size: memory grows with its square, not with N^2.")] = 2048,
    pseudo_method: Annotated[str, typer.Option(help="Pseudo-group clustering: dbscan or kmeans.")] = "dbscan",
    n_groups: Annotated[Optional[int], typer.Option(help="kmeans: clusters per class.")] = None,
    eps: Annotated[Optional[float], typer.Option(help="dbscan: neighbourhood radius (default: the class's median pairwise distance).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the surrogate and clustering; same seed, same weights on CPU.")] = 0,
    bias_ratio: Annotated[Optional[float], typer.Option(help="Embedded/recipe presets: share of each class's own group in the training data.")] = None,
    real_option: Annotated[Optional[list[str]], typer.Option("--real-option", help="Extra dataset option KEY=VALUE (repeatable), e.g. n_train=1000.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")] = False,
) -> None:
    from ddaudit.data import load_real
    from ddaudit.errors import ConfigError, InputError
    from ddaudit.mitigate.kde import (
        NORMALIZATIONS,
        check_weight_options,
        class_log_density,
        effective_sample_size,
        inverse_density_weights,
        parse_bandwidth,
        save_weights,
    )
    from ddaudit.mitigate.pseudo_groups import METHODS, check_pseudo_group_options, pseudo_groups, save_groups
    from ddaudit.mitigate.recovery import recovery_report
    from ddaudit.mitigate.surrogate import SurrogateSettings, resolve_device, surrogate_embeddings
    from ddaudit.report import check_writable

    console = make_console()
    for path in (output, pseudo_groups_out):
        if path is not None:
            check_writable(path, force)
    if pseudo_groups_out is not None and pseudo_groups_out.resolve() == output.resolve():
        raise ConfigError(ERR_SAME_OUTPUT)
    if normalize not in NORMALIZATIONS:
        raise ConfigError(ERR_NORMALIZE.format(value=normalize))
    if pseudo_method not in METHODS:
        raise ConfigError(ERR_PSEUDO_METHOD.format(value=pseudo_method))
    if pseudo_method == "kmeans" and pseudo_groups_out is not None and n_groups is None:
        raise ConfigError(ERR_KMEANS_GROUPS)
    check_weight_options(power=power, normalize=normalize, max_weight=max_weight, chunk_size=chunk_size)
    if pseudo_groups_out is not None:
        check_pseudo_group_options(method=pseudo_method, eps=eps, n_groups=n_groups)
    rule = parse_bandwidth(bandwidth)
    settings = SurrogateSettings(model=model, epochs=epochs, batch_size=batch_size, temperature=temperature, seed=seed)
    torch_device = resolve_device(device)

    real_options = parse_key_values(real_option, "--real-option")
    if bias_ratio is not None:
        real_options["bias_ratio"] = bias_ratio
    data = load_real(real, **real_options)
    if data.train is None or len(data.train) == 0:
        raise InputError(ERR_NO_TRAIN.format(name=data.name))
    train = data.train

    with _phases(console) as phase:
        embeddings = surrogate_embeddings(
            train.x, train.y, settings, num_classes=data.num_classes, device=torch_device,
            progress=phase("training the SupCon surrogate"),
        )
        log_density, bandwidths = class_log_density(
            embeddings.to(torch_device), train.y, bandwidth=rule, chunk_size=chunk_size,
            progress=phase("KDE density per class"),
        )
        sample_weights = inverse_density_weights(
            log_density, train.y, power=power, normalize=normalize, max_weight=max_weight
        ).cpu()
        groups = None
        if pseudo_groups_out is not None:
            groups = pseudo_groups(
                embeddings, train.y, method=pseudo_method, eps=eps, n_groups=n_groups, seed=seed,
                progress=phase("pseudo-groups per class"),
            )

    has_groups = data.num_groups > 1
    recovery = recovery_report(data, weights=sample_weights, groups=groups) if has_groups else {}
    weight_summary = recovery.get("weights")
    group_summary = recovery.get("pseudo_groups")

    common = {
        "dataset_spec": real, "real_options": real_options, "device": str(torch_device),
        "num_samples": len(train), "surrogate": settings.to_dict(),
    }
    kde_settings = {
        **common, "bandwidth": rule, "bandwidths": bandwidths, "power": power, "max_weight": max_weight,
        "normalize": normalize, "leave_one_out": True, "per_class": True, "chunk_size": chunk_size,
    }
    save_weights(output, sample_weights, settings=kde_settings, dataset=data.name, labels=train.y,
                 recovery=weight_summary, force=force)
    sizes = sorted(effective_sample_size(sample_weights, train.y).values())
    console.print(f"wrote {output}: {len(train)} weights (mean 1 per class, max {float(sample_weights.max()):.3g})")
    console.print(
        f"  effective sample size per class: min {sizes[0]:.1f}, median {sizes[len(sizes) // 2]:.1f} "
        f"(of {len(train) / max(1, len(sizes)):.0f} images on average)"
    )
    if weight_summary is not None:
        console.print(
            f"  bias-conflicting mean weight {weight_summary['mean_conflicting']:.3g} vs aligned "
            f"{weight_summary['mean_aligned']:.3g} (x{weight_summary['ratio']:.3g}, AUC {weight_summary['auc']:.3f})"
        )
    if groups is not None:
        group_settings = {**common, "method": pseudo_method, "eps": eps, "n_groups": n_groups, "seed": seed}
        save_groups(pseudo_groups_out, groups, settings=group_settings, dataset=data.name, labels=train.y,
                    recovery=group_summary, force=force)
        console.print(f"wrote {pseudo_groups_out}: pseudo-groups for {len(train)} samples")
        if group_summary is not None:
            counts = ", ".join(str(v) for v in group_summary["num_pseudo_groups"].values())
            console.print(
                f"  adjusted Rand index vs true groups {group_summary['ari']:.3f} (pseudo-groups per class: {counts})"
            )

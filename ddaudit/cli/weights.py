"""``ddaudit weights``: KDE sample weights (Cui et al.) and pseudo-groups for data without group labels.

A thin layer over :func:`ddaudit.mitigate.label_free`::

    real = load_real("cmnist-fg", bias_ratio=0.95)
    result = label_free(real, LabelFreeSettings(), device="auto")
    result.weights, result.groups, result.ess, result.recovery
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ddaudit.cli._common import handle_errors, with_threads, make_console, parse_key_values, phase_progress

WEIGHTS_HELP = """Compute per-sample weights that up-weight bias-conflicting training images, without group labels.

Trains a surrogate on the real training set using class labels only, embeds every
training image, estimates each image's density among the images of its class with a
Gaussian KDE and writes the normalised inverse density (mean 1 per class) to --output,
aligned with the dataset's training order: {"weights", "labels", "settings", "dataset"}.
Use it with `ddaudit run --mode weights --weights FILE` or fair_matching(mode="weights").

The default surrogate (--surrogate bias) is a deliberately biased classifier (generalized
cross-entropy, stopped once its training accuracy stops rising): it learns the shortcut
(colour, background) first, so its logits separate bias-conflicting images. --surrogate
supcon trains the supervised-contrastive surrogate instead.

The KDE power (weight = density^-power) is by default the largest in [0, 1] that keeps
the median effective sample size at --min-ess of a class, so a handful of images never
carries a class; the command warns when the median falls below 3 %.

--pseudo-groups FILE also writes per-class group ids usable as --groups by the sync and
barycenter modes: by default the biased classifier's predicted class (--pseudo-method
prediction), or DBSCAN / k-means clusters of the embedding.

When the dataset has true group labels (read only after the weights are computed), the
command also reports how well the weights (AUC, conflicting/aligned mean weight) and
pseudo-groups (adjusted Rand index) recover them. --json FILE writes the settings,
effective sample sizes and recovery.
"""

ERR_SAME_OUTPUT = "--output, --pseudo-groups and --json must be different files."
ERR_NORMALIZE = "--normalize must be 'class' or 'global'; got {value!r}."
ERR_PSEUDO_METHOD = "--pseudo-method must be 'prediction', 'dbscan' or 'kmeans'; got {value!r}."
ERR_KMEANS_GROUPS = "--pseudo-method kmeans needs --n-groups (clusters per class)."
ERR_PREDICTION_SUPCON = "--pseudo-method prediction needs --surrogate bias; use dbscan or kmeans with supcon."
ERR_NO_TRAIN = "dataset {name!r} has no training split; KDE weights are computed on training images."

def register(app: typer.Typer) -> None:
    app.command("weights", help=WEIGHTS_HELP)(handle_errors(with_threads(weights)))


def weights(
    real: Annotated[str, typer.Option("--real", "-r", help="Real training data: PRESET or PRESET:ROOT (see `ddaudit datasets`).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the weights (.pt).", show_default=False)],
    pseudo_groups_out: Annotated[Optional[Path], typer.Option("--pseudo-groups", help="Also write pseudo-group ids (.pt) usable as --groups.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write settings, effective sample sizes and recovery (auc, weight_ratio, ari) as JSON.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    surrogate: Annotated[str, typer.Option(help="bias: a GCE classifier stopped early, logits as embedding; supcon: supervised-contrastive.")] = "bias",
    epochs: Annotated[Optional[int], typer.Option(help="Surrogate epochs: bias, the maximum (default 5; see --stop); supcon, the count (default 10).")] = None,
    stop: Annotated[str, typer.Option(help="bias: plateau (stop once training accuracy rises less than 0.5 points in an epoch) or fixed (--epochs).")] = "plateau",
    loss: Annotated[str, typer.Option(help="bias: gce (generalized cross-entropy, amplifies the shortcut) or ce.")] = "gce",
    q: Annotated[float, typer.Option(help="bias: the GCE exponent q in (0, 1].")] = 0.7,
    model: Annotated[Optional[str], typer.Option(help="Surrogate backbone from the evaluator zoo (default ConvNetW32 for bias, ConvNet for supcon).")] = None,
    batch_size: Annotated[int, typer.Option(help="Surrogate batch size.")] = 256,
    temperature: Annotated[float, typer.Option(help="supcon: the SupCon temperature.")] = 0.1,
    bandwidth: Annotated[str, typer.Option(help="KDE bandwidth: scott, silverman (x total std), scott-dim, silverman-dim (x per-dimension std), or a number.")] = "scott",
    power: Annotated[Optional[float], typer.Option(help="Weight = density^-power (0 uniform, 1 inverse density); default: the largest <= 1 that keeps --min-ess.")] = None,
    min_ess: Annotated[float, typer.Option(help="With the default power: median effective sample size to keep, as a fraction of a class.")] = 0.05,
    max_weight: Annotated[Optional[float], typer.Option(help="Cap each weight at this multiple of the mean; the excess goes to the others.")] = None,
    normalize: Annotated[str, typer.Option(help="Mean-1 normalisation: class (keeps class balance) or global.")] = "class",
    chunk_size: Annotated[int, typer.Option(help="KDE block size: memory grows with its square, not with N^2.")] = 2048,
    pseudo_method: Annotated[str, typer.Option(help="Pseudo-groups: prediction (the biased classifier's predicted class), dbscan or kmeans.")] = "prediction",
    n_groups: Annotated[Optional[int], typer.Option(help="kmeans: clusters per class.")] = None,
    eps: Annotated[Optional[float], typer.Option(help="dbscan: neighbourhood radius (default: the class's median pairwise distance).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the surrogate and clustering; same seed, same weights on CPU.")] = 0,
    bias_ratio: Annotated[Optional[float], typer.Option(help="Embedded/recipe presets: share of each class's own group in the training data.")] = None,
    real_option: Annotated[Optional[list[str]], typer.Option("--real-option", help="Extra dataset option KEY=VALUE (repeatable), e.g. n_train=1000.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")] = False,
) -> None:
    from ddaudit.data import load_real
    from ddaudit.errors import ConfigError, InputError
    from ddaudit.mitigate.surrogate import resolve_device
    from ddaudit.mitigate.without_labels import label_free
    from ddaudit.preflight import check_outputs
    from ddaudit.reproducibility import runtime_settings

    console = make_console()
    named = [p.resolve() for p in (output, pseudo_groups_out, json_out) if p is not None]
    if len(set(named)) != len(named):
        raise ConfigError(ERR_SAME_OUTPUT)
    check_outputs({"--output": output, "--pseudo-groups": pseudo_groups_out, "--json": json_out}, force=force)
    settings = label_free_settings(
        surrogate=surrogate, epochs=epochs, stop=stop, loss=loss, q=q, model=model, batch_size=batch_size,
        temperature=temperature, bandwidth=bandwidth, power=power, min_ess=min_ess, max_weight=max_weight,
        normalize=normalize, chunk_size=chunk_size, pseudo_method=pseudo_method, n_groups=n_groups, eps=eps, seed=seed,
    )
    torch_device = resolve_device(device)
    real_options = parse_key_values(real_option, "--real-option")
    if bias_ratio is not None:
        real_options["bias_ratio"] = bias_ratio
    data = load_real(real, **real_options)
    if data.train is None or len(data.train) == 0:
        raise InputError(ERR_NO_TRAIN.format(name=data.name))
    with phase_progress(console) as progress:
        result = label_free(data, settings, device=torch_device, progress=progress)
    common = {
        "dataset_spec": real, "real_options": real_options, "device": str(torch_device), "num_samples": len(data.train),
        "surrogate": settings.to_dict()["bias_model" if surrogate == "bias" else "supcon"], "surrogate_kind": surrogate,
        "runtime": runtime_settings(),
    }
    _write_weights(console, output, result, data, settings, common, power_given=power is not None, force=force)
    if pseudo_groups_out is not None:
        _write_groups(console, pseudo_groups_out, result, data, {**common, "method": pseudo_method, "eps": eps,
                                                                  "n_groups": n_groups, "seed": seed}, force=force)
    _print_group_recovery(console, result, pseudo_method)
    if json_out is not None:
        _write_summary(console, json_out, result, data, common, force=force)


def label_free_settings(*, surrogate: str, epochs: int | None, stop: str, loss: str, q: float, model: str | None,
                        batch_size: int, temperature: float, bandwidth: str, power: float | None, min_ess: float,
                        max_weight: float | None, normalize: str, chunk_size: int, pseudo_method: str,
                        n_groups: int | None, eps: float | None, seed: int):
    """The command's options as :class:`LabelFreeSettings`, refusing bad combinations before any training."""
    from ddaudit.errors import ConfigError
    from ddaudit.evaluate import is_batchable
    from ddaudit.mitigate.bias_model import BiasModelSettings
    from ddaudit.mitigate.kde import NORMALIZATIONS, parse_bandwidth
    from ddaudit.mitigate.pseudo_groups import METHODS
    from ddaudit.mitigate.surrogate import SurrogateSettings
    from ddaudit.mitigate.without_labels import LabelFreeSettings

    if model is not None:
        is_batchable(model)  # refuses an unknown --model before any training
    if normalize not in NORMALIZATIONS:
        raise ConfigError(ERR_NORMALIZE.format(value=normalize))
    if pseudo_method not in METHODS:
        raise ConfigError(ERR_PSEUDO_METHOD.format(value=pseudo_method))
    if pseudo_method == "kmeans" and n_groups is None:
        raise ConfigError(ERR_KMEANS_GROUPS)
    if pseudo_method == "prediction" and surrogate == "supcon":
        raise ConfigError(ERR_PREDICTION_SUPCON)
    if surrogate == "supcon":
        bias_settings = BiasModelSettings()
        supcon_settings = SurrogateSettings(model=model or "ConvNet", epochs=10 if epochs is None else epochs,
                                            batch_size=batch_size, temperature=temperature, seed=seed)
    else:
        bias_settings = BiasModelSettings(model=model or "ConvNetW32", loss=loss, q=q, stop=stop,
                                          epochs=5 if epochs is None else epochs, batch_size=batch_size, seed=seed)
        supcon_settings = SurrogateSettings()
    return LabelFreeSettings(
        surrogate=surrogate, bias_model=bias_settings, supcon=supcon_settings, bandwidth=parse_bandwidth(bandwidth),
        power=power, min_ess=min_ess, max_weight=max_weight, normalize=normalize, chunk_size=chunk_size,
        pseudo_method=pseudo_method, n_groups=n_groups, eps=eps,
    )


def _write_weights(console, output: Path, result, data, settings, common: dict, *, power_given: bool,
                   force: bool) -> None:
    """Save the weights with their settings and print what they are (sizes, warnings, recovery)."""
    from ddaudit.mitigate.kde import save_weights

    train = data.train
    recovery = result.recovery or {}
    kde_settings = {
        **common, "bandwidth": settings.bandwidth, "bandwidths": result.bandwidths, "power": result.power,
        "power_rule": "fixed" if power_given else f"median ESS >= {settings.min_ess:g} of a class",
        "max_weight": settings.max_weight, "normalize": settings.normalize, "leave_one_out": True, "per_class": True,
        "chunk_size": settings.chunk_size, "surrogate_epochs": result.surrogate_epochs,
    }
    save_weights(output, result.weights, settings=kde_settings, dataset=data.name, labels=train.y,
                 recovery=recovery.get("weights"), force=force)
    sizes = sorted(result.ess.values())
    console.print(
        f"wrote {output}: {len(train)} weights (mean 1 per class, max {float(result.weights.max()):.3g}, "
        f"power {result.power:.3g}, surrogate {common['surrogate_kind']} after {result.surrogate_epochs} epochs)"
    )
    console.print(
        f"  effective sample size per class: min {sizes[0]:.1f}, median {sizes[len(sizes) // 2]:.1f} "
        f"(median {result.ess_fraction:.1%} of a class; {len(train) / max(1, len(sizes)):.0f} images per class on average)"
    )
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    weight_summary = recovery.get("weights")
    if weight_summary is not None:
        console.print(
            f"  bias-conflicting mean weight {weight_summary['mean_conflicting']:.3g} vs aligned "
            f"{weight_summary['mean_aligned']:.3g} (x{weight_summary['ratio']:.3g}, AUC {weight_summary['auc']:.3f})"
        )


def _write_groups(console, path: Path, result, data, group_settings: dict, *, force: bool) -> None:
    from ddaudit.mitigate.pseudo_groups import save_groups

    save_groups(path, result.groups, settings=group_settings, dataset=data.name, labels=data.train.y,
                recovery=(result.recovery or {}).get("pseudo_groups"), force=force)
    console.print(f"wrote {path}: pseudo-groups for {len(data.train)} samples")


def _print_group_recovery(console, result, pseudo_method: str) -> None:
    group_summary = (result.recovery or {}).get("pseudo_groups")
    if group_summary is not None:
        counts = ", ".join(str(v) for v in group_summary["num_pseudo_groups"].values())
        console.print(
            f"  pseudo-groups ({pseudo_method}): adjusted Rand index vs true groups {group_summary['ari']:.3f} "
            f"(pseudo-groups per class: {counts})"
        )


def _write_summary(console, path: Path, result, data, common: dict, *, force: bool) -> None:
    from ddaudit.report import write_json

    payload = {"schema": "ddaudit.weights/1", "dataset": data.name, "dataset_spec": common["dataset_spec"],
               "real_options": common["real_options"], "device": common["device"], "num_samples": len(data.train),
               "runtime": common["runtime"], **result.summary()}
    write_json(path, json.loads(json.dumps(payload, default=str)), force)
    console.print(f"wrote {path}")

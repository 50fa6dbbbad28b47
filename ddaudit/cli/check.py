"""``ddaudit check``: audit one distilled set for group fairness."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ddaudit.cli import _gate_options as gopt
from ddaudit.cli._common import handle_errors, make_console, parse_key_values, phase_progress


class Engine(str, Enum):
    auto = "auto"
    batched = "batched"
    sequential = "sequential"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


class Compile(str, Enum):
    auto = "auto"
    on = "on"
    off = "off"


class Space(str, Enum):
    auto = "auto"
    normalized = "normalized"
    raw = "raw"
    zca = "zca"


CHECK_HELP = """Train evaluator networks on a distilled set and report how fair they are on real data.

SYNTHETIC is a distilled set in any supported format (auto-detected; see --format):
DatasetCondensation res_*.pt, MTT/FTD images_best.pt + labels_best.pt (a folder or
either file), DATM (plus lr_best.pt and soft labels), IDC/DREAM data.pt, a plain .pt of
{'images','labels'} or (x, y), .npz, safetensors, or an ImageFolder of PNG/JPEG.

--real names the group-labelled real dataset: an embedded preset (cmnist-fg,
cmnist-bg: no download) or PRESET:ROOT for local data; `ddaudit datasets` lists them.

Exit codes: 0 pass (or no gate set), 1 a gate failed, 2 usage/input error,
3 inconclusive, 101 internal error.
"""


def register(app: typer.Typer) -> None:
    app.command("check", help=CHECK_HELP, cls=gopt.GateCommand)(handle_errors(check))


def check(
    synthetic: Annotated[list[Path], typer.Argument(help="Distilled set(s): files or folders (several: one audit each, worst exit code).", show_default=False)],
    real: Annotated[str, typer.Option("--real", "-r", help="Real dataset: PRESET or PRESET:ROOT (see `ddaudit datasets`).")],
    format: Annotated[Optional[str], typer.Option("--format", help="Force a reader: dc, mtt, datm, idc, tensors, npz, safetensors, imagefolder.")] = None,
    index: Annotated[int, typer.Option(help="Experiment index inside a DatasetCondensation res_*.pt (default: the last).")] = -1,
    space: Annotated[Space, typer.Option(help="Pixel space the set was saved in: normalized (with the dataset's mean/std), raw [0,1], zca, or auto.")] = Space.auto,
    zca: Annotated[bool, typer.Option("--zca", help="The set is ZCA-whitened (MTT/DATM with --zca): whiten the real data to match (same as --space zca).")] = False,
    mean: Annotated[Optional[list[float]], typer.Option(help="Per-channel mean the set was normalised with (repeat per channel); default: the dataset's.")] = None,
    std: Annotated[Optional[list[float]], typer.Option(help="Per-channel std the set was normalised with (repeat per channel).")] = None,
    bias_ratio: Annotated[Optional[float], typer.Option(help="Embedded/recipe presets: share of each class's own group in the real training data (default 0.9).")] = None,
    target: Annotated[Optional[str], typer.Option(help="CelebA: target attribute name (e.g. Attractive).")] = None,
    sensitive: Annotated[Optional[str], typer.Option(help="CelebA: sensitive attribute name (e.g. Male).")] = None,
    real_option: Annotated[Optional[list[str]], typer.Option("--real-option", help="Extra dataset option KEY=VALUE (repeatable), e.g. n_test=200.")] = None,
    protocol: Annotated[str, typer.Option(help="Evaluation protocol preset: dsa, dm (1000 epochs, DSA), dc (300 epochs, no aug), mtt (learned lr), quick (CPU preview), ci (dsa with 300 epochs, for CPU runners).")] = "dsa",
    model: Annotated[Optional[str], typer.Option(help="Evaluator architecture (ConvNet, ConvNetW64, MLP, LeNet, AlexNet, VGG11, ResNet18, ...).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override the protocol's epochs.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Override the evaluator learning rate (MTT: the learned lr).")] = None,
    lr_file: Annotated[Optional[Path], typer.Option(help="A tensor file holding the learned lr (MTT/DATM lr_best.pt).")] = None,
    aug: Annotated[Optional[str], typer.Option(help="Override augmentation: none or dsa.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Override the training batch size.")] = None,
    num_eval: Annotated[int, typer.Option(help="Number of evaluator networks (seeds derived from --seed).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for evaluators, references and bootstrap; same seed, same report on CPU.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    engine: Annotated[Engine, typer.Option(help="batched trains all evaluators as one vectorised model; sequential one by one; auto picks.")] = Engine.auto,
    precision: Annotated[Precision, typer.Option(help="Evaluator arithmetic: fp32, bf16 (autocast), or auto (bf16 on CPUs with native bf16: AMX or AVX512-BF16; fp32 elsewhere).")] = Precision.auto,
    compile: Annotated[Compile, typer.Option("--compile", help="torch.compile the evaluators (sequential engine): on, off, or auto (on a CPU with a C++ compiler, for long training or large test sets, where the compile time pays).")] = Compile.auto,
    reference: Annotated[bool, typer.Option("--reference/--no-reference", help="Also train on a random real subset with the same IPC (for the amplification factor).")] = True,
    full_reference: Annotated[bool, typer.Option(help="Also train on the full real training set (slow; cached with --cache-dir).")] = False,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Where to cache full-reference predictions.")] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for confidence intervals.")] = 1000,
    confidence: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="A `ddaudit weights` file: report how well its weights single out the real data's minority groups.")] = None,
    pseudo_groups: Annotated[Optional[Path], typer.Option("--pseudo-groups", help="A pseudo-groups file: report its adjusted Rand index against the true groups.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON (schema ddaudit.report/1).")] = None,
    markdown: Annotated[Optional[Path], typer.Option(help="Write the report as Markdown.")] = None,
    save_predictions: Annotated[Optional[Path], typer.Option(help="Write y_true, group and per-evaluator y_pred to an .npz.")] = None,
    max_deo_max: gopt.MaxDeoMax = None,
    max_deo_avg: gopt.MaxDeoAvg = None,
    min_accuracy: gopt.MinAccuracy = None,
    min_worst_group_accuracy: gopt.MinWorstGroupAccuracy = None,
    max_accuracy_gap: gopt.MaxAccuracyGap = None,
    max_equalized_odds: gopt.MaxEqualizedOdds = None,
    max_amplification: gopt.MaxAmplification = None,
    max_amplification_diff: gopt.MaxAmplificationDiff = None,
    config: gopt.ConfigPath = None,
    profile: gopt.Profile = None,
    gate_on: gopt.GateOn = None,
    inconclusive: gopt.Inconclusive = None,
    min_group_size: gopt.MinGroupSize = None,
    exit_zero: gopt.ExitZero = False,
    junit: gopt.JUnitPath = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")] = False,
) -> None:
    from ddaudit.auditing import audit
    from ddaudit.errors import ConfigError, InputError
    from ddaudit.report import check_writable, render_report, to_markdown, write_json, write_text

    console = make_console()
    gate_args = gopt.collect_gate_args(
        max_deo_max=max_deo_max, max_deo_avg=max_deo_avg, min_accuracy=min_accuracy,
        min_worst_group_accuracy=min_worst_group_accuracy, max_accuracy_gap=max_accuracy_gap,
        max_equalized_odds=max_equalized_odds, max_amplification=max_amplification,
        max_amplification_diff=max_amplification_diff, config=config, profile=profile, gate_on=gate_on,
        inconclusive=inconclusive, min_group_size=min_group_size, exit_zero=exit_zero, junit=junit, force=force,
    )
    # Refuse to clobber outputs before spending minutes on training.
    per_file_outputs = [out for out in (json_out, markdown, save_predictions) if out is not None]
    if len(synthetic) > 1 and per_file_outputs:
        raise ConfigError("--json, --markdown and --save-predictions take one SYNTHETIC; audit the sets one at a time")
    for out in per_file_outputs:
        check_writable(out, force)
    for path in synthetic:
        if not path.exists():
            raise InputError(f"{path} does not exist")

    if zca:
        if space not in (Space.auto, Space.zca):
            raise ConfigError(f"--zca contradicts --space {space.value}")
        space = Space.zca
    real_options = parse_key_values(real_option, "--real-option")
    for key, value in (("bias_ratio", bias_ratio), ("target", target), ("sensitive", sensitive)):
        if value is not None:
            real_options[key] = value
    if lr_file is not None:
        if lr is not None:
            raise ConfigError("give --lr or --lr-file, not both")
        lr = _read_lr(lr_file)

    from ddaudit.data import load_real
    from ddaudit.gate import apply_gates

    real_data = load_real(real, **real_options)
    recovery = _recovery(real_data, weights, pseudo_groups)
    shared_references: dict = {}
    suites = []
    for path in synthetic:
        with phase_progress(console) as progress:
            result = audit(
                path, real_data, format=format, index=index, space=space.value, mean=mean or None, std=std or None,
                protocol=protocol,
                protocol_overrides={"model": model, "epochs": epochs, "lr": lr, "aug": aug, "batch_size": batch_size},
                num_eval=num_eval, seed=seed, device=device, engine=engine.value, precision=precision.value,
                compile=compile.value, reference=reference,
                full_reference=full_reference, cache_dir=cache_dir, reference_cache=shared_references,
                min_group_size=gate_args.min_group_size, n_boot=n_boot, confidence=confidence, progress=progress,
            )
        report = result.report
        if recovery is not None:
            report["recovery"] = recovery
        render_report(report, console)
        label = gopt.report_label(report)
        suites.append((label, apply_gates(report, gate_args.settings), gopt.annotated_file(label)))
    code = gopt.publish_gates(suites, gate_args, console)
    if json_out is not None:
        write_json(json_out, report, force)
        console.print(f"wrote {json_out}")
    if markdown is not None:
        write_text(markdown, to_markdown(report), force)
        console.print(f"wrote {markdown}")
    if save_predictions is not None:
        result.save_predictions(save_predictions)
        console.print(f"wrote {save_predictions}")
    raise typer.Exit(code)


def _recovery(real_data, weights: Path | None, groups: Path | None) -> dict | None:
    """How well KDE weights / pseudo-groups (aligned with the real training order) recover the true groups."""
    if weights is None and groups is None:
        return None
    from ddaudit.errors import InputError
    from ddaudit.mitigate import load_groups, load_weights, recovery_report

    w = None if weights is None else load_weights(weights)["weights"]
    g = None if groups is None else load_groups(groups)["groups"]
    size = None if real_data.train is None else len(real_data.train)
    for name, vector in (("--weights", w), ("--pseudo-groups", g)):
        if vector is not None and size is not None and len(vector) != size:
            raise InputError(f"{name} holds {len(vector)} values but {real_data.name} has {size} training rows")
    return recovery_report(real_data, weights=w, groups=g)


def _read_lr(path: Path) -> float:
    """A learned learning rate stored as a tensor file (DATM's lr_best.pt)."""
    import torch

    from ddaudit.errors import InputError

    if not path.exists():
        raise InputError(f"{path} does not exist")
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(f"{path} is not a readable tensor file ({type(error).__name__})") from None
    try:
        return float(torch.as_tensor(value).reshape(-1)[0])
    except Exception:  # noqa: BLE001
        raise InputError(f"{path} does not hold a single learning-rate value") from None

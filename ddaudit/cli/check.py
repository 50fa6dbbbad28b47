"""``ddaudit check``: audit one distilled set for group fairness."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from ddaudit.choices import COMPILE_SETTINGS, ENGINES, PGD_BUDGETS, PRECISIONS, choice_enum
from ddaudit.cli import _data_options as dopt
from ddaudit.cli import _gate_options as gopt
from ddaudit.cli._common import handle_errors, with_threads, make_console, phase_progress
from ddaudit.cli._pictures import check_visual_outputs, write_visuals

#: ``--engine``, ``--precision`` and ``--compile`` choices, from the library's tuples.
Engine = choice_enum("Engine", ENGINES)
Precision = choice_enum("Precision", PRECISIONS)
Compile = choice_enum("Compile", COMPILE_SETTINGS)


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
    app.command("check", help=CHECK_HELP, cls=gopt.GateCommand)(
        handle_errors(with_threads(dopt.with_data_options(gopt.with_gate_options(check)))))


def check(
    synthetic: Annotated[list[Path], typer.Argument(help="Distilled set(s): files or folders (several: one audit each, worst exit code).", show_default=False)],
    protocol: Annotated[str, typer.Option(help="Evaluation protocol preset: dsa, dm (1000 epochs, DSA), dc (300 epochs, no aug), mtt (learned lr), quick (CPU preview), ci (dsa with 300 epochs, for CPU runners).")] = "dsa",
    model: Annotated[Optional[str], typer.Option(help="Evaluator architecture (ConvNet, ConvNetW64, MLP, LeNet, AlexNet, VGG11, ResNet18, ...).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override the protocol's epochs.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Override the evaluator learning rate (MTT: the learned lr).")] = None,
    lr_file: Annotated[Optional[Path], typer.Option(help="A tensor file holding the learned lr (MTT/DATM lr_best.pt).")] = None,
    aug: Annotated[Optional[str], typer.Option(help="Override augmentation: none or dsa.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Override the training batch size.")] = None,
    num_eval: Annotated[int, typer.Option(help="Number of evaluator networks (seeds derived from --seed).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for evaluators, references and bootstrap; same seed, same report on CPU.")] = 0,
    device: dopt.Device = "auto",
    engine: Annotated[Engine, typer.Option(help="batched trains all evaluators as one vectorised model; sequential one by one; auto picks.")] = Engine.auto,
    precision: Annotated[Precision, typer.Option(help="Evaluator arithmetic: fp32, bf16 (autocast), or auto (bf16 on CPUs with native bf16: AMX or AVX512-BF16; fp32 elsewhere).")] = Precision.auto,
    compile: Annotated[Compile, typer.Option("--compile", help="torch.compile the evaluators (sequential engine): on, off, or auto (on a CPU with a C++ compiler, for long training or large test sets, where the compile time pays).")] = Compile.auto,
    reference: Annotated[bool, typer.Option("--reference/--no-reference", help="Also train on a random real subset with the same IPC (for the amplification factor).")] = True,
    full_reference: Annotated[bool, typer.Option(help="Also train on the full real training set (slow; cached with --cache-dir).")] = False,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Where to cache full-reference predictions and the probe's group classifier (the probe's default: $DDAUDIT_CACHE_DIR, else ~/.cache/ddaudit).")] = None,
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="Also run the composition probe (a group classifier on the real data, cached) and add its 'composition' section.")] = True,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for confidence intervals.")] = 1000,
    confidence: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="A `ddaudit weights` file: report how well its weights single out the real data's minority groups.")] = None,
    pseudo_groups: Annotated[Optional[Path], typer.Option("--pseudo-groups", help="A pseudo-groups file: report its adjusted Rand index against the true groups.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON (schema ddaudit.report/1).")] = None,
    markdown: Annotated[Optional[Path], typer.Option(help="Write the report as Markdown.")] = None,
    save_predictions: Annotated[Optional[Path], typer.Option(help="Write y_true, group and per-evaluator y_pred to an .npz.")] = None,
    plots: dopt.Plots = None,
    html: dopt.Html = None,
    force: gopt.Force = False,
    privacy: Annotated[bool, typer.Option("--privacy/--no-privacy", help="Also attack the evaluators for membership (loss and calibrated attacks) and add a 'privacy' section.")] = False,
    members: Annotated[Optional[Path], typer.Option("--members", help="The real training rows the set was distilled from: a .npy or text file of 0/1 values, one per training row (default: all of them).")] = None,
    robustness: Annotated[bool, typer.Option("--robustness/--no-robustness", help="Also measure accuracy per (class, group) under L-inf PGD and common corruptions and add a 'robustness' section.")] = False,
    robustness_samples: Annotated[int, typer.Option(help="Test images (stratified by class and group) the robustness audit attacks.")] = 1000,
    robustness_budgets: Annotated[str, typer.Option(help="PGD L-inf budgets in raw [0, 1] pixels, comma-separated (fractions such as 8/255 allowed).")] = PGD_BUDGETS,
    pgd_steps: Annotated[int, typer.Option(help="PGD steps per budget.")] = 10,
    *,
    data: dopt.DataArgs,
    gates: gopt.GateArgs,
) -> None:
    from ddaudit.gate import evaluate_gates
    from ddaudit.report import render_attacks, render_composition

    console = make_console()
    plan = _preflight(
        synthetic, data=data, protocol=protocol, overrides={"model": model, "epochs": epochs, "lr": lr, "aug": aug, "batch_size": batch_size},
        lr_file=lr_file, num_eval=num_eval, n_boot=n_boot, confidence=confidence, device=device, engine=engine.value,
        cache_dir=cache_dir, weights=weights, pseudo_groups=pseudo_groups,
        outputs={"--json": json_out, "--markdown": markdown, "--save-predictions": save_predictions,
                 "--html": html, "--junit": gates.junit},
        gates=gates, force=force,
    )
    attacks = _preflight_attacks(plan, gates, seed=seed, privacy=privacy, members=members, robustness=robustness,
                                 samples=robustness_samples, budgets=robustness_budgets, steps=pgd_steps)
    _preflight_visuals(synthetic, probe=probe, plots=plots, html=html, gates=gates, force=force)
    audit_options = dict(
        space=data.space, mean=data.mean, std=data.std, protocol=protocol, protocol_overrides=plan.overrides,
        num_eval=num_eval, seed=seed, device=plan.device, engine=engine.value, precision=precision.value,
        compile=compile.value, reference=reference, full_reference=full_reference, cache_dir=cache_dir,
        reference_cache={}, min_group_size=gates.min_group_size, n_boot=n_boot, confidence=confidence, **attacks,
    )
    suites = []
    for syn in plan.sets:
        report, pictures = _audit_set(syn, plan, audit_options, console, probe=probe,
                                      pictures=plots is not None or html is not None)
        report.render(console)
        if probe:
            render_composition(report.to_dict(), console, show_warnings=True)
        render_attacks(report.to_dict(), console)
        label = gopt.report_label(report)
        outcome = evaluate_gates(report, gates.settings)
        suites.append((label, outcome, gopt.annotated_file(label)))
    code = gopt.publish_gates(suites, gates, console)
    _write_outputs(report.to_dict(gates=outcome), report, outcome, pictures, json_out=json_out, markdown=markdown,
                   save_predictions=save_predictions, plots=plots, html=html, force=force, console=console)
    raise typer.Exit(code)


def _audit_set(syn, plan, audit_options: dict, console, *, probe: bool, pictures: bool):
    """One set's report (with its composition and recovery sections) and the inputs of its pictures."""
    from ddaudit.auditing import audit
    from ddaudit.probe import default_cache_dir, set_pictures
    from ddaudit.probe import probe as run_probe

    options = audit_options
    picture_inputs = None
    with phase_progress(console) as progress:
        report = audit(syn, plan.real, progress=progress, **options)
        if probe:
            probed = run_probe(syn, plan.real, space=options["space"], mean=options["mean"], std=options["std"],
                               seed=options["seed"], device=plan.device,
                               cache_dir=options["cache_dir"] or default_cache_dir(), progress=progress)
            report = report.with_section("composition", probed.composition)
            picture_inputs = probed.picture_inputs()
        elif pictures:
            picture_inputs = set_pictures(syn, plan.real, space=options["space"], mean=options["mean"],
                                          std=options["std"], seed=options["seed"])
    if plan.recovery is not None:
        report = report.with_section("recovery", plan.recovery)
    return report, picture_inputs


def _write_outputs(report_dict: dict, report, outcome, pictures, *, json_out, markdown, save_predictions, plots,
                   html, force: bool, console) -> None:
    """The last set's JSON, Markdown, predictions, pictures and page (the gates' verdict included)."""
    from ddaudit.report import write_json, write_text

    if json_out is not None:
        write_json(json_out, report_dict, force)
        console.print(f"wrote {json_out}")
    if markdown is not None:
        write_text(markdown, report.to_markdown(gates=outcome), force)
        console.print(f"wrote {markdown}")
    if save_predictions is not None:
        report.save_predictions(save_predictions)
        console.print(f"wrote {save_predictions}")
    write_visuals(report_dict, pictures, plots=plots, html=html, force=force, console=console)


def _preflight_visuals(synthetic: list[Path], *, probe: bool, plots: Path | None, html: Path | None, gates, force: bool) -> None:
    """Pictures and the page take one set; the composition gate needs the probe."""
    from ddaudit.errors import ConfigError

    if len(synthetic) > 1 and (plots is not None or html is not None):
        raise ConfigError("--plots and --html take one SYNTHETIC; audit the sets one at a time")
    from ddaudit.gate._thresholds import COMPOSITION_THRESHOLDS

    for threshold in COMPOSITION_THRESHOLDS:
        if not probe and threshold.name in gates.settings.thresholds:
            raise ConfigError(f"{threshold.flag} reads the probe's composition: drop --no-probe")
    check_visual_outputs(plots, html, force)


def _preflight_attacks(plan, gates, *, seed: int, privacy: bool, members: Path | None, robustness: bool, samples: int,
                       budgets: str, steps: int) -> dict:
    """Check the privacy/robustness options and the membership split before training; the audit's keywords."""
    from ddaudit.attacks import AttackPlan
    from ddaudit.errors import ConfigError
    from ddaudit.gate._thresholds import ATTACK_THRESHOLDS
    from ddaudit.preflight import check_inputs_exist

    check_inputs_exist([members], "--members")
    attack = AttackPlan.build(privacy=privacy, robustness=robustness, members=members, samples=samples,
                              budgets=budgets, steps=steps)
    for threshold in ATTACK_THRESHOLDS:
        section = threshold.entry[0]
        if threshold.name in gates.settings.thresholds and not getattr(attack, section):
            raise ConfigError(f"{threshold.flag} reads the {section} section: add --{section}")
    attack.split(plan.real, seed)
    return {"privacy": privacy, "members": members, "robustness": robustness, "robustness_samples": samples,
            "robustness_budgets": budgets, "pgd_steps": steps}


@dataclass
class CheckPlan:
    """Everything ``check`` loaded and validated before training anything."""

    sets: list
    real: object
    overrides: dict
    device: str
    recovery: dict | None


def _preflight(synthetic: list[Path], *, data, protocol, overrides, lr_file, num_eval, n_boot, confidence, device, engine, cache_dir, weights,
               pseudo_groups, outputs, gates, force) -> CheckPlan:
    """Open and validate every input, option and output; nothing here trains."""
    from ddaudit.auditing import check_audit_options, evaluation_protocol, load_inputs
    from ddaudit.data import align_pixel_space, load_real
    from ddaudit.devices import resolve_device
    from ddaudit.errors import ConfigError
    from ddaudit.evaluate import choose_engine, create_model
    from ddaudit.io import read_lr
    from ddaudit.preflight import check_inputs_exist, check_output_folder, check_outputs

    check_audit_options(num_eval=num_eval, n_boot=n_boot, confidence=confidence, min_group_size=gates.min_group_size)
    if len(synthetic) > 1 and any(outputs[flag] is not None for flag in ("--json", "--markdown", "--save-predictions")):
        raise ConfigError("--json, --markdown and --save-predictions take one SYNTHETIC; audit the sets one at a time")
    check_inputs_exist(synthetic, "SYNTHETIC")
    check_inputs_exist([lr_file], "--lr-file")
    check_inputs_exist([weights], "--weights")
    check_inputs_exist([pseudo_groups], "--pseudo-groups")
    check_outputs(outputs, force=force, inputs=[*synthetic, *(p for p in (lr_file, weights, pseudo_groups) if p)])
    check_output_folder(cache_dir, "--cache-dir")
    device = resolve_device(device)
    overrides = dict(overrides)
    if lr_file is not None:
        if overrides.get("lr") is not None:
            raise ConfigError("give --lr or --lr-file, not both")
        overrides["lr"] = read_lr(lr_file)
    real_data = load_real(data.real, **data.real_options)
    recovery = _recovery(real_data, weights, pseudo_groups)
    sets = []
    for path in synthetic:
        syn, _ = load_inputs(path, real_data, format=data.format, index=data.index)
        align_pixel_space(syn, real_data, data.space, data.mean, data.std)
        proto = evaluation_protocol(protocol, overrides, syn)
        choose_engine(proto.model, num_eval, engine, device)
        create_model(proto.model, real_data.channel, real_data.num_classes, tuple(real_data.im_size), seed=0)
        sets.append(syn)
    return CheckPlan(sets=sets, real=real_data, overrides=overrides, device=device, recovery=recovery)


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

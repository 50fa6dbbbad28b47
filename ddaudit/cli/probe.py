"""``ddaudit probe``: what a distilled set is made of, in seconds, without training evaluators."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ddaudit.cli import _data_options as dopt
from ddaudit.cli import _gate_options as gopt
from ddaudit.cli._common import handle_errors, with_threads, make_console, phase_progress
from ddaudit.cli._pictures import check_visual_outputs, write_visuals
from ddaudit.gate._thresholds import COMPOSITION_THRESHOLDS

PROBE_HELP = """Predict the protected group of every image of a distilled set and report, per class,
the group distribution beside the real class's and a uniform one.

A small group classifier is trained once on the real training images, with every
(class, group) cell drawn equally often, and cached (keyed by a hash of the real data
and the settings; --cache-dir, --no-cache). Its accuracy on the real test set says
how far to trust it; images it is unsure about (max probability below
--min-confidence) are counted; images unlike any real group (farther, in the
classifier's features, from every real class x group mean than --unknown-quantile of
noisy held-out real images: blended multicoloured digits, say) are counted as unknown
and left out of the shares. A class collapsed onto its majority group reads a
majority share near 1; a class balanced over G groups reads 1/G.

The majority weight reads what a matching distiller sees: the class's mean synthetic
feature (the classifier's penultimate layer) written as a convex mixture of the real
groups' mean features; it is the weight of the real class's majority group (1.0:
the class matches the majority group alone; 1/G: every group equally). Classes with
one real group, or whose group means are too close to identify the weight, are left
out of the mean; each class reports its residual distance to the groups' hull. The
mean share and weight carry 95 % bootstrap intervals (synthetic images per class and
real rows per cell resampled; --n-boot). It tracks the
evaluators' DEO_M more closely than counting images (benchmarks/RESULTS.md).

SYNTHETIC and the data options are those of `ddaudit check`.

Exit codes: 0 pass (or no gate set), 1 a gate failed, 2 usage/input error,
3 inconclusive, 101 internal error.
"""

COMPOSITION_GATES = tuple(threshold.name for threshold in COMPOSITION_THRESHOLDS)


def register(app: typer.Typer) -> None:
    app.command("probe", help=PROBE_HELP, cls=gopt.GateCommand)(handle_errors(with_threads(dopt.with_data_options(probe))))


def probe(
    synthetic: Annotated[Path, typer.Argument(help="Distilled set: a file or folder in any format `ddaudit check` reads.", show_default=False)],
    seed: Annotated[int, typer.Option(help="Seed of the group classifier; same seed, same report on CPU.")] = 0,
    device: dopt.Device = "auto",
    min_confidence: Annotated[float, typer.Option(help="Flag synthetic images whose most likely group has a lower probability.")] = 0.5,
    unknown_quantile: Annotated[float, typer.Option(help="Count a synthetic image as unknown (unlike any real group, left out of the shares) when it lies farther from every real class x group mean than this quantile of noisy held-out real images.")] = 0.99,
    n_boot: Annotated[int, typer.Option(help="Bootstrap replicates for the intervals of the mean majority share and weight.")] = 200,
    classifier_epochs: Annotated[int, typer.Option(help="Passes (cell-balanced draws) of the group classifier over the real training set.")] = 2,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Where trained group classifiers are kept (default: $DDAUDIT_CACHE_DIR, else ~/.cache/ddaudit).", show_default=False)] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse a group classifier trained on the same data and settings.")] = True,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the probe report as JSON (its 'composition' object is what check embeds).")] = None,
    markdown: Annotated[Optional[Path], typer.Option(help="Write the composition as Markdown.")] = None,
    plots: dopt.Plots = None,
    html: dopt.Html = None,
    max_majority_share: gopt.MaxMajorityShare = None,
    max_majority_weight: gopt.MaxMajorityWeight = None,
    config: gopt.ConfigPath = None,
    profile: gopt.Profile = None,
    exit_zero: gopt.ExitZero = False,
    junit: gopt.JUnitPath = None,
    force: gopt.Force = False,
    *,
    data: dopt.DataArgs,
) -> None:
    from ddaudit.errors import InputError
    from ddaudit.gate import evaluate_gates
    from ddaudit.probe import probe as run_probe
    from ddaudit.probe._classifier import default_cache_dir
    from ddaudit.preflight import check_outputs
    from ddaudit.report import render_composition

    console = make_console()
    gate_args, skipped = composition_gate_args(gopt.collect_gate_args(
        max_majority_share=max_majority_share, max_majority_weight=max_majority_weight, config=config, profile=profile, exit_zero=exit_zero,
        junit=junit, force=force,
    ))
    if not synthetic.exists():
        raise InputError(f"{synthetic} does not exist")
    check_outputs({"--json": json_out, "--markdown": markdown, "--html": html, "--junit": gate_args.junit},
                  force=force, inputs=[synthetic])
    check_visual_outputs(plots, html, force)

    with phase_progress(console) as progress:
        result = run_probe(
            synthetic, data.real, format=data.format, index=data.index, space=data.space,
            mean=data.mean, std=data.std, real_options=data.real_options,
            seed=seed, device=device, min_confidence=min_confidence, unknown_quantile=unknown_quantile, n_boot=n_boot,
            cache_dir=None if not cache else (cache_dir or default_cache_dir()),
            classifier={"epochs": classifier_epochs}, progress=progress,
        )
    report = result.report
    if skipped:
        report["warnings"].append(f"gates {', '.join(skipped)} need evaluators: `ddaudit check` decides them, the probe does not")
    render_composition(report, console)
    for warning in report["warnings"]:
        console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    label = gopt.report_label(report)
    outcome = evaluate_gates(report, gate_args.settings)
    code = gopt.publish_gates([(label, outcome, gopt.annotated_file(label))], gate_args, console)
    report = {**report, **outcome.to_dict()}
    write_visuals(report, result.picture_inputs(), plots=plots, html=html, force=force, console=console)
    _write_reports(report, json_out=json_out, markdown=markdown, force=force, console=console)
    raise typer.Exit(code)


def composition_gate_args(gate_args):
    """*gate_args* keeping only the composition thresholds, and the names of the others.

    A probe trains no evaluator, so a configuration's evaluator gates wait for `check`.
    """
    from dataclasses import replace

    thresholds = gate_args.settings.thresholds
    skipped = [name for name in thresholds if name not in COMPOSITION_GATES]
    settings = replace(gate_args.settings, thresholds={name: value for name, value in thresholds.items()
                                                       if name in COMPOSITION_GATES})
    return replace(gate_args, settings=settings), skipped


def _write_reports(report: dict, *, json_out, markdown, force: bool, console) -> None:
    from ddaudit.report import composition_markdown, write_json, write_text

    if json_out is not None:
        write_json(json_out, report, force)
        console.print(f"wrote {json_out}", markup=False, highlight=False)
    if markdown is not None:
        write_text(markdown, "\n".join(composition_markdown(report)) + "\n", force)
        console.print(f"wrote {markdown}", markup=False, highlight=False)

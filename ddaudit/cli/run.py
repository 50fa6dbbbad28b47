"""``ddaudit run``: run an unmodified third-party distiller with fairness injected."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ddaudit.cli._common import handle_errors, make_console, parse_key_values
from ddaudit.choices import BATCH_SAMPLINGS, EXPERT_STRATEGIES, MATCHING_MODES, choice_enum
from ddaudit.errors import ConfigError, DDAuditError

RUN_HELP = """Run a third-party distillation script unchanged, with fair matching patched in.

Everything after `--` is the script and its own arguments, e.g. `ddaudit run --codebase datasetcondensation --mode sync --dataset cmnist-fg -- main_DM.py --ipc 10`.

The script runs in this process with its codebase's loss sites patched (DatasetCondensation main_DM.py / main.py and its forks FairDD main_DM.py / main_DC.py and COBRA train_dm.py / train_dc.py, mtt-distillation buffer.py / distill.py, IDC/DREAM condense.py, IDM IDM_*.py, DataDAM main_DataDAM.py); every patch is undone when it ends, also on error. A fork no patcher knows can be described in a small TOML file passed with --adapter FILE. FairDD's --FairDD and COBRA's --mode fairdd|cobra are refused under a ddaudit mode (fairness would be applied twice); use --mode none to audit the fork's own fair run. --device cpu runs a script that hard-codes CUDA on the CPU. Groups come from --groups FILE (one integer per training row of the script's dataset, in its order) or from --dataset PRESET, which replaces what the script's get_dataset returns; given both, the file's groups (e.g. `ddaudit weights --pseudo-groups`) replace the preset's. Seeds are pinned (the codebases reseed from the wall clock). The script writes its own output files, which `ddaudit check` reads as they are.

Exit codes: 0 success, 2 usage/input error or a codebase that does not look as expected, otherwise the script's own exit status (1 when it raised).
"""

NO_SCRIPT = "give the script to run after `--`, e.g. `ddaudit run --codebase datasetcondensation -- main_DM.py --ipc 10`"
SCRIPT_FAILED = "{script} raised {kind}: {message} (all patches were undone)"


#: ``--mode`` and ``--experts`` choices, from the library's tuples.
Mode = choice_enum("Mode", MATCHING_MODES)
Experts = choice_enum("Experts", EXPERT_STRATEGIES)
Batches = choice_enum("Batches", BATCH_SAMPLINGS)
#: How the start line and the run summary say that --sample-by-weight chose the real batches.
DRAWN_BY_WEIGHT = ", real batches drawn by weight"
#: ... and that --batches balanced did.
DRAWN_BALANCED = ", real batches group-balanced"
#: The phrase for each ``sampling`` value of the run summary (uniform: the script's own draw, nothing to say).
DRAWN = {"uniform": "", "weights": DRAWN_BY_WEIGHT, "balanced": DRAWN_BALANCED}


def register(app: typer.Typer) -> None:
    app.command(
        "run",
        help=RUN_HELP,
        options_metavar="[OPTIONS] -- SCRIPT [SCRIPT ARGS]...",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(handle_errors(run))


def run(
    ctx: typer.Context,
    codebase: Annotated[Optional[str], typer.Option("--codebase", "-c", help="datasetcondensation (also its forks fairdd, cobra), mtt, idc (also: dream), idm or datadam.")] = None,
    adapter: Annotated[Optional[Path], typer.Option(help="A TOML adapter file describing a fork no built-in patcher knows: [dataset] module/function/returns/rows and [matching] kind = embed|gradient|feature|feature_loss with the functions to wrap (see examples/adapter.toml, examples/cafe_adapter.toml); functions of the wrong shape are refused before the script runs.")] = None,
    mode: Annotated[Mode, typer.Option(help="sync (FairDD), barycenter (COBRA), weights (per-row weights), none (observe only).")] = Mode.sync,
    groups: Annotated[Optional[Path], typer.Option(help="Group id of every training row of the script's dataset (.pt, .npy, .txt, .csv).")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="A ddaudit dataset preset (e.g. cmnist-fg) injected through the codebase's get_dataset.")] = None,
    dataset_option: Annotated[Optional[list[str]], typer.Option("--dataset-option", help="Preset option KEY=VALUE (repeatable), e.g. bias_ratio=0.95.")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Per-row weights for --mode weights or --sample-by-weight (e.g. `ddaudit weights` output), aligned with the training set.")] = None,
    sample_by_weight: Annotated[bool, typer.Option("--sample-by-weight", help="Draw the script's real batches by --weights (distinct rows, without replacement) instead of weighting the loss; combine with --mode none, sync or barycenter. Codebases that draw with np.random.permutation: datasetcondensation, idm, datadam, adapters.")] = False,
    batches: Annotated[Batches, typer.Option(help="uniform: the script's own real batches, as published (default). balanced: each class batch takes the class's groups in turn (needs --groups or --dataset; not with --sample-by-weight), so FairDD's matching sees every group; same codebases as --sample-by-weight.")] = Batches.uniform,
    faithful: Annotated[bool, typer.Option("--faithful/--normalized", help="FairDD's unnormalised sum over the groups present (default), or that sum divided by their number.")] = True,
    min_group_size: Annotated[int, typer.Option(help="Groups with fewer rows in a real batch are skipped.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed for python, numpy and torch, and the pinned clock the codebase reseeds from.")] = 0,
    experts: Annotated[Experts, typer.Option(help="mtt buffer.py: sample (group-balanced batches) or reweight (weighted cross-entropy).")] = Experts.sample,
    device: Annotated[Optional[str], typer.Option(help="cpu: run a script that hard-codes .cuda() / device='cuda' on the CPU (smoke runs, CI); undone on exit. cuda: leave the script on its GPU, refused up front where torch sees none.")] = None,
    summary: Annotated[Optional[Path], typer.Option(help="Write the run summary as JSON (patched names, intercepted calls, groups per class).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --summary file.")] = False,
) -> None:
    from ddaudit.hooks.patchers import patch
    from ddaudit.preflight import check_outputs

    if not ctx.args:
        raise ConfigError(NO_SCRIPT)
    check_outputs({"--summary": summary}, force=force)
    script, argv = ctx.args[0], list(ctx.args[1:])
    console = make_console()
    session = patch(
        codebase, script, mode=mode.value, groups=groups, weights=weights, sample_by_weight=sample_by_weight,
        batches=batches.value, dataset=dataset,
        dataset_options=parse_key_values(dataset_option, "--dataset-option"), faithful=faithful,
        min_group_size=min_group_size, seed=seed, experts=experts.value, device=device, adapter=adapter,
    )
    name = session.codebase if session.adapter is None else f"adapter {session.adapter.name}"
    status = 0
    try:
        with session:  # entering checks the codebase and the groups: input errors come before this line
            drawn = DRAWN[session.summary.sampling]
            console.print(f"ddaudit run: {name} {script} (mode {mode.value}{drawn}, seed {seed})")
            session.run(argv)
    except DDAuditError:
        if summary is not None:  # a refusal still records what was found (variant check, functions seen)
            session.summary.write_json(summary)
        raise
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 1
        if not isinstance(stop.code, int):
            console.print(f"[bold red]error:[/bold red] {script} exited: {stop.code}", highlight=False)
    except Exception as error:  # noqa: BLE001 - the third-party script's own failure
        traceback.print_exc()
        message = str(error).splitlines()[0] if str(error) else ""
        console.print(
            "[bold red]error:[/bold red] " + SCRIPT_FAILED.format(script=script, kind=type(error).__name__, message=message),
            highlight=False,
        )
        status = 1
    render_summary(console, session.summary)
    if summary is not None:
        session.summary.write_json(summary)
        console.print(f"run summary written to {summary}")
    if status:
        raise typer.Exit(status)


def render_summary(console, summary) -> None:
    """The run summary on stderr: what was patched, what was intercepted, groups per class."""
    data = summary.to_dict()
    variant = f" ({data['variant']})" if data["variant"] else ""
    if data.get("fork"):
        variant = f" fork {data['fork']}" + variant
    variant_mode = data["mode"] + (" faithful" if data["faithful"] else " normalized") if data["mode"] == "sync" else data["mode"]
    drawn = DRAWN.get(data["sampling"], "")
    console.print(f"[bold]run summary[/bold]: {data['codebase']}{variant}, mode {variant_mode}{drawn}, groups from {data['group_source'] or 'nowhere'}")
    console.print("patched: " + (", ".join(data["patched"]) or "nothing"))
    sites = ", ".join(f"{site} {n}" for site, n in data["calls_by_site"].items())
    console.print(f"intercepted calls: {data['intercepted_calls']}" + (f" ({sites})" if sites else ""))
    if data["groups_seen"]:
        table = Table(title="real rows seen per class and group", title_justify="left")
        for column in ("class", "rows", "groups seen", "smallest group", "batches missing a group"):
            table.add_column(column, justify="right")
        absent = data["absent_group_batches_by_class"]
        for cls, seen in data["groups_seen"].items():
            table.add_row(
                cls if cls != "-1" else "?", str(sum(seen.values())), str(len(seen)),
                str(min(seen.values())), str(absent.get(cls, 0)),
            )
        console.print(table)
    console.print(
        f"class batches: {data['batches']}, with a group absent: {data['absent_group_batches']}"
        + (f", groups dropped below --min-group-size: {data['dropped_small_groups']}" if data["dropped_small_groups"] else "")
    )
    for note in data["notes"]:
        console.print(f"note: {note}")

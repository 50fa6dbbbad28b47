"""Options that say which data to read, shared by ``check`` and ``probe``.

Both commands read a distilled set in some pixel space and a group-labelled
real dataset; declaring those flags once here keeps their names, help and
validation identical.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ddaudit.cli._common import parse_key_values


class Space(str, Enum):
    auto = "auto"
    normalized = "normalized"
    raw = "raw"
    zca = "zca"


Real = Annotated[str, typer.Option("--real", "-r", help="Real dataset: PRESET or PRESET:ROOT (see `ddaudit datasets`).")]
Format = Annotated[Optional[str], typer.Option("--format", help="Force a reader: dc, mtt, datm, idc, tensors, npz, safetensors, imagefolder.")]
Index = Annotated[int, typer.Option(help="Experiment index inside a DatasetCondensation res_*.pt (default: the last).")]
SpaceOption = Annotated[Space, typer.Option(help="Pixel space the set was saved in: normalized (with the dataset's mean/std), raw [0,1], zca, or auto.")]
Zca = Annotated[bool, typer.Option("--zca", help="The set is ZCA-whitened (MTT/DATM with --zca): whiten the real data to match (same as --space zca).")]
Mean = Annotated[Optional[list[float]], typer.Option(help="Per-channel mean the set was normalised with (repeat per channel); default: the dataset's.")]
Std = Annotated[Optional[list[float]], typer.Option(help="Per-channel std the set was normalised with (repeat per channel).")]
BiasRatio = Annotated[Optional[float], typer.Option(help="Embedded/recipe presets: share of each class's own group in the real training data (default 0.9).")]
Target = Annotated[Optional[str], typer.Option(help="CelebA: target attribute name (e.g. Attractive).")]
Sensitive = Annotated[Optional[str], typer.Option(help="CelebA: sensitive attribute name (e.g. Male).")]
RealOption = Annotated[Optional[list[str]], typer.Option("--real-option", help="Extra dataset option KEY=VALUE (repeatable), e.g. n_test=200.")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
Plots = Annotated[Optional[Path], typer.Option("--plots", help="Write the pictures (synthetic grid by predicted group, heat maps, references) as PNG files into this folder.", show_default=False)]
Html = Annotated[Optional[Path], typer.Option("--html", help="Write one self-contained HTML page (pictures inline, no network) with the verdict, gates, metrics and composition.", show_default=False)]


def resolve_space(space: Space, zca: bool) -> str:
    """``--zca`` is shorthand for ``--space zca``; any other explicit space contradicts it."""
    from ddaudit.errors import ConfigError

    if zca:
        if space not in (Space.auto, Space.zca):
            raise ConfigError(f"--zca contradicts --space {space.value}")
        return Space.zca.value
    return space.value


def real_options(
    pairs: list[str] | None,
    *,
    bias_ratio: float | None = None,
    target: str | None = None,
    sensitive: str | None = None,
) -> dict:
    """``--real-option KEY=VALUE`` pairs with the named dataset flags laid over them."""
    options = parse_key_values(pairs, "--real-option")
    for key, value in (("bias_ratio", bias_ratio), ("target", target), ("sensitive", sensitive)):
        if value is not None:
            options[key] = value
    return options

"""Options that say which data to read, shared by ``check`` and ``probe``.

Both commands read a distilled set in some pixel space and a group-labelled
real dataset; declaring those flags once here keeps their names, help and
validation identical.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from ddaudit.choices import SPACES, choice_enum
from ddaudit.cli._common import inject_options, keyword_parameters, parse_key_values
from ddaudit.devices import DEVICE_HELP

#: ``--space`` choices, from the library's tuple.
Space = choice_enum("Space", SPACES)


Real = Annotated[str, typer.Option("--real", "-r", help="Real dataset: PRESET or PRESET:ROOT (see `ddaudit datasets`).")]
Format = Annotated[Optional[str], typer.Option("--format", help="Force a reader: dc, mtt, datm, idc, tensors, npz, safetensors, imagefolder.")]
Index = Annotated[int, typer.Option(help="Experiment index inside a DatasetCondensation res_*.pt (default: the last).")]
SpaceOption = Annotated[Space, typer.Option(help="Pixel space the set was saved in: normalized (with the dataset's mean/std), raw [0,1], zca, or auto.")]
Zca = Annotated[bool, typer.Option("--zca", help="The set is ZCA-whitened (MTT/DATM with --zca): whiten the real data to match (same as --space zca).")]
Mean = Annotated[Optional[list[float]], typer.Option(help="Per-channel mean the set was normalised with (repeat per channel); default: the dataset's.")]
Std = Annotated[Optional[list[float]], typer.Option(help="Per-channel std the set was normalised with (repeat per channel).")]
BiasRatio = Annotated[Optional[float], typer.Option(help="Embedded/recipe presets: share of each class's own group in the real training data (default 0.9).")]
Target = Annotated[Optional[str], typer.Option(help="CelebA: target attribute name (e.g. Attractive).")]
Sensitive = Annotated[Optional[str], typer.Option(help="Protected attribute(s) by name, comma-separated: CelebA Male or Male,Young; UTKFace race,gender,age; cmnist-fgbg foreground,background; tensors: the file's attribute names. Several: groups are their intersections.")]
RealOption = Annotated[Optional[list[str]], typer.Option("--real-option", help="Extra dataset option KEY=VALUE (repeatable), e.g. n_test=200.")]
Device = Annotated[str, typer.Option(help=DEVICE_HELP)]
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


@dataclass(frozen=True)
class DataArgs:
    """Which data a command reads: the ``--real`` spec with its options, and the
    distilled set's reader and pixel space (``--zca`` folded into ``space``)."""

    real: str
    real_options: dict
    format: str | None
    index: int
    space: str
    mean: list[float] | None
    std: list[float] | None


#: The data flags, declared once for every command that reads a distilled set and real data.
DATA_OPTIONS = {"real": Real, "format": Format, "index": Index, "space": SpaceOption, "zca": Zca, "mean": Mean,
                "std": Std, "bias_ratio": BiasRatio, "target": Target, "sensitive": Sensitive, "real_option": RealOption}
DATA_DEFAULTS = {"real": inspect.Parameter.empty, "index": -1, "space": Space.auto, "zca": False}


def with_data_options(command: Callable) -> Callable:
    """Give *command* the data flags; it receives them resolved as ``data: DataArgs``."""

    def build(*, real, format, index, space, zca, mean, std, bias_ratio, target, sensitive, real_option,
              force=False) -> DataArgs:
        return DataArgs(
            real=real, format=format, index=-1 if index is None else index,
            space=resolve_space(space if space is not None else Space.auto, bool(zca)),
            mean=mean or None, std=std or None,
            real_options=real_options(real_option, bias_ratio=bias_ratio, target=target, sensitive=sensitive),
        )

    return inject_options(command, "data", keyword_parameters(DATA_OPTIONS, DATA_DEFAULTS), build)

"""The dataset-preset registry: one decorated function per dataset, one entry point.

A spec is ``NAME`` or ``NAME:ROOT``; ``NAME`` picks the preset, ``ROOT`` (everything
after the first colon) is handed to it untouched. Options are the preset
function's keyword-only parameters, so the signature is the documentation and an
option a preset does not know is refused by name instead of silently ignored.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from ddaudit.data._types import RealData
from ddaudit.errors import ConfigError, InputError

UNKNOWN_PRESET = "unknown dataset preset {name!r}; valid presets: {valid}"
MISSING_ROOT = "dataset preset {name!r} reads local files: give it as '{name}:ROOT'"
UNKNOWN_OPTION = "dataset preset {name!r} has no option {option!r}; its options: {valid}"
EMPTY_SPEC = "no dataset given: pass a preset name such as 'cmnist-fg' or 'NAME:ROOT'"


@dataclass(frozen=True)
class Preset:
    """A registered dataset: its builder, its help line and whether it needs a root."""

    name: str
    help: str
    needs_root: bool
    build: Callable[..., RealData]

    @property
    def options(self) -> dict[str, Any]:
        """Keyword-only parameters of the builder and their defaults."""
        parameters = inspect.signature(self.build).parameters.values()
        return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


_PRESETS: dict[str, Preset] = {}


def register_preset(name: str, *, help: str, needs_root: bool = False) -> Callable:
    """Register ``fn(root: str | None, *, option=default, ...) -> RealData`` as preset *name*."""

    def decorate(fn: Callable[..., RealData]) -> Callable[..., RealData]:
        if name in _PRESETS:
            raise ValueError(f"dataset preset {name!r} is registered twice")
        _PRESETS[name] = Preset(name=name, help=help, needs_root=needs_root, build=fn)
        return fn

    return decorate


def available_presets() -> dict[str, str]:
    """Preset names mapped to their one-line help, in registration order."""
    return {name: preset.help for name, preset in _PRESETS.items()}


def get_preset(name: str) -> Preset:
    """The registered preset called *name* (``InputError`` listing valid names otherwise)."""
    try:
        return _PRESETS[name]
    except KeyError:
        raise InputError(UNKNOWN_PRESET.format(name=name, valid=", ".join(_PRESETS))) from None


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``NAME[:ROOT]`` into the preset name and the root (``None`` when absent)."""
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(EMPTY_SPEC)
    name, _, root = spec.partition(":")
    root = root.strip()
    return name.strip().lower(), (root or None)


def load_real(spec: str, **options: Any) -> RealData:
    """Build the real, group-labelled dataset named by *spec*.

    ``load_real("cmnist-fg", bias_ratio=0.95)`` or
    ``load_real("celeba:/data", target="Attractive", sensitive="Male")``.
    Options whose value is ``None`` count as not given, so callers can forward
    unset flags as they are.
    """
    preset, root, given = check_real_spec(spec, **options)
    return preset.build(root, **given)


def check_real_spec(spec: str, **options: Any) -> tuple[Preset, str | None, dict]:
    """The preset, root and given options *spec* names, refused before any data is read when they do not fit."""
    name, root = parse_spec(spec)
    preset = get_preset(name)
    if preset.needs_root and root is None:
        raise InputError(MISSING_ROOT.format(name=name))
    given = {key: value for key, value in options.items() if value is not None}
    accepted = preset.options
    for option in given:
        if option not in accepted:
            valid = ", ".join(accepted) or "none"
            raise ConfigError(UNKNOWN_OPTION.format(name=name, option=option, valid=valid))
    return preset, root, given

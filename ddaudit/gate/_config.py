"""Gate configuration files: ``ddaudit.toml`` or ``[tool.ddaudit]`` in ``pyproject.toml``.

A team writes its thresholds once, next to its code, with named profiles for
different pipelines (``[tool.ddaudit.profiles.release]``). Flags given on the
command line override the file. Unknown keys are errors that list the valid
ones: a typo must never silently disable a gate.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Mapping

from ddaudit.errors import ConfigError
from ddaudit.gate._settings import SETTING_NAMES, GateSettings
from ddaudit.gate._thresholds import THRESHOLDS

CONFIG_FILE = "ddaudit.toml"
PYPROJECT_FILE = "pyproject.toml"
PROFILES_KEY = "profiles"

CONFIG_MISSING_MESSAGE = "--config {path} does not exist"
CONFIG_UNREADABLE_MESSAGE = "{path} is not valid TOML: {error}"
NO_TOOL_TABLE_MESSAGE = "{path} has no tool.ddaudit table; add one or point --config at a ddaudit.toml"
UNKNOWN_KEY_MESSAGE = "{where}: unknown key {key!r}; valid keys: {valid}"
NOT_A_TABLE_MESSAGE = "{where} must be a table of key = value settings"
UNKNOWN_PROFILE_MESSAGE = "profile {name!r} is not defined in {path}; available profiles: {available}"
NO_PROFILES = "none (add a table tool.ddaudit.profiles.NAME in pyproject.toml, or profiles.NAME in ddaudit.toml)"
PROFILE_WITHOUT_CONFIG_MESSAGE = (
    "--profile {name} needs a configuration file, but {folder} has no ddaudit.toml and no "
    "pyproject.toml with a tool.ddaudit table; pass --config FILE"
)


def config_keys() -> list[str]:
    """Every key a configuration table may hold."""
    return [*THRESHOLDS, *SETTING_NAMES]


def find_config(cwd: str | Path | None = None, explicit: str | Path | None = None) -> Path | None:
    """The configuration file that applies: *explicit*, else ``ddaudit.toml``, else a
    ``pyproject.toml`` that has a ``[tool.ddaudit]`` table, looked up in *cwd*."""
    folder = Path.cwd() if cwd is None else Path(cwd)
    if explicit is not None:
        path = Path(explicit)
        if not path.is_absolute():
            path = folder / path
        if not path.is_file():
            raise ConfigError(CONFIG_MISSING_MESSAGE.format(path=explicit))
        return path
    candidate = folder / CONFIG_FILE
    if candidate.is_file():
        return candidate
    candidate = folder / PYPROJECT_FILE
    if candidate.is_file() and _tool_table(_parse(candidate)) is not None:
        return candidate
    return None


def read_config(path: str | Path, profile: str | None = None) -> dict:
    """The validated settings of one file, with *profile* laid over the base table."""
    path = Path(path)
    document = _parse(path)
    table = _tool_table(document)
    in_pyproject = table is not None
    if table is None:
        if path.name == PYPROJECT_FILE:
            raise ConfigError(NO_TOOL_TABLE_MESSAGE.format(path=path))
        table = document
    prefix = "tool.ddaudit" if in_pyproject else ""
    base_where = f"{path}, table {prefix}" if prefix else str(path)
    values = _settings_from(table, base_where, allow_profiles=True)
    if profile is None:
        return values
    profiles = table.get(PROFILES_KEY, {})
    if profile not in profiles:
        available = ", ".join(sorted(profiles)) if profiles else NO_PROFILES
        raise ConfigError(UNKNOWN_PROFILE_MESSAGE.format(name=profile, path=path, available=available))
    profile_where = f"{path}, table {prefix + '.' if prefix else ''}{PROFILES_KEY}.{profile}"
    values.update(_settings_from(profiles[profile], profile_where, allow_profiles=False))
    return values


def resolve_gate_settings(
    overrides: Mapping[str, object] | None = None,
    *,
    config: str | Path | None = None,
    profile: str | None = None,
    cwd: str | Path | None = None,
) -> GateSettings:
    """Thresholds and settings from the configuration file, overridden by *overrides*
    (flag values by python name; ``None`` means the flag was not given)."""
    path = find_config(cwd, config)
    if path is None and profile is not None:
        folder = Path.cwd() if cwd is None else Path(cwd)
        raise ConfigError(PROFILE_WITHOUT_CONFIG_MESSAGE.format(name=profile, folder=folder))
    values = read_config(path, profile) if path is not None else {}
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name in THRESHOLDS:
            values[name] = THRESHOLDS[name].validate(value, THRESHOLDS[name].flag)
        elif name in SETTING_NAMES:
            values[name] = value
        else:
            raise ConfigError(UNKNOWN_KEY_MESSAGE.format(where="gate options", key=name, valid=", ".join(config_keys())))
    thresholds = {name: values.pop(name) for name in list(values) if name in THRESHOLDS}
    return GateSettings(
        thresholds=thresholds,
        source=None if path is None else str(path),
        profile=profile,
        **values,
    )


def _parse(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(CONFIG_UNREADABLE_MESSAGE.format(path=path, error=error)) from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None


def _tool_table(document: dict) -> dict | None:
    tool = document.get("tool")
    if isinstance(tool, dict) and isinstance(tool.get("ddaudit"), dict):
        return tool["ddaudit"]
    return None


def _settings_from(table: object, where: str, *, allow_profiles: bool) -> dict:
    """Keys normalised to python names (``max-deo-max`` -> ``max_deo_max``) and validated."""
    if not isinstance(table, dict):
        raise ConfigError(NOT_A_TABLE_MESSAGE.format(where=where))
    valid = config_keys() + ([PROFILES_KEY] if allow_profiles else [])
    values: dict = {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        if key not in valid:
            raise ConfigError(UNKNOWN_KEY_MESSAGE.format(where=where, key=raw_key, valid=", ".join(valid)))
        if key == PROFILES_KEY:
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise ConfigError(NOT_A_TABLE_MESSAGE.format(where=f"{where} profiles"))
            continue
        values[key] = THRESHOLDS[key].validate(value, where) if key in THRESHOLDS else value
    GateSettings(thresholds={k: v for k, v in values.items() if k in THRESHOLDS}, source=where,
                 **{k: v for k, v in values.items() if k in SETTING_NAMES})
    return values

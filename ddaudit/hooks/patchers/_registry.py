"""Codebase name -> patcher class, one decorated class per supported codebase."""

from __future__ import annotations

from typing import Callable

from ddaudit.errors import ConfigError

ERR_UNKNOWN_CODEBASE = "unknown codebase {name!r}; supported: {valid}"

_PATCHERS: dict[str, type] = {}
_ALIASES: dict[str, str] = {}


def register_patcher(name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[type], type]:
    """Register a :class:`~ddaudit.hooks.patchers._session.Patcher` subclass as *name*."""

    def decorate(cls: type) -> type:
        if name in _PATCHERS or name in _ALIASES:
            raise ValueError(f"codebase patcher {name!r} is registered twice")
        cls.codebase = name
        _PATCHERS[name] = cls
        for alias in aliases:
            _ALIASES[alias] = name
        return cls

    return decorate


def get_patcher(name: str) -> type:
    """The patcher class for *name* (or one of its aliases); ``ConfigError`` otherwise."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return _PATCHERS[key]
    except KeyError:
        raise ConfigError(ERR_UNKNOWN_CODEBASE.format(name=name, valid=", ".join(_PATCHERS))) from None

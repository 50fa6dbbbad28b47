"""Checks for preset options, so a bad value is a one-line ConfigError, not a traceback.

Values may arrive as strings (from the command line), so numbers are parsed here.
"""

from __future__ import annotations

from typing import Any

from ddaudit.errors import ConfigError

BAD_RATIO = "option {name}={value!r} must be a number between 0 and 1"
BAD_COUNT = "option {name}={value!r} must be a whole number of at least {minimum}"
BAD_COUNT_MAX = "option {name}={value!r} asks for more than the {maximum} available"
BAD_SEED = "option seed={value!r} must be a non-negative whole number"


def as_ratio(name: str, value: Any) -> float:
    """A fraction in [0, 1]."""
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise ConfigError(BAD_RATIO.format(name=name, value=value)) from None
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(BAD_RATIO.format(name=name, value=value))
    return ratio


def _as_whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def as_count(name: str, value: Any, *, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number in [minimum, maximum]."""
    count = _as_whole(value)
    if count is None or count < minimum:
        raise ConfigError(BAD_COUNT.format(name=name, value=value, minimum=minimum))
    if maximum is not None and count > maximum:
        raise ConfigError(BAD_COUNT_MAX.format(name=name, value=value, maximum=maximum))
    return count


def as_seed(value: Any) -> int:
    """A seed for ``numpy.random.default_rng``."""
    seed = _as_whole(value)
    if seed is None or seed < 0:
        raise ConfigError(BAD_SEED.format(value=value))
    return seed

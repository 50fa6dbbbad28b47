"""What a gate run needs to know: thresholds plus how to decide and how to exit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ddaudit.errors import ConfigError
from ddaudit.gate._thresholds import THRESHOLDS

#: Decide on the gating interval (pass/fail only when the whole interval says so), or on the mean alone.
GATE_ON_CHOICES = ("ci", "mean")
#: What an undecidable gate does to the exit code: 3 (error), 0 (pass) or 1 (fail).
INCONCLUSIVE_CHOICES = ("error", "pass", "fail")
DEFAULT_MIN_GROUP_SIZE = 20

#: Keys that configure how gates decide, besides the thresholds themselves.
SETTING_NAMES = ("gate_on", "inconclusive", "min_group_size", "exit_zero")

UNKNOWN_THRESHOLD_MESSAGE = "{where}: unknown threshold {name!r}; valid thresholds: {valid}"
BAD_CHOICE_MESSAGE = "{where}: {name} must be one of {choices}, got {value!r}"
BAD_MIN_GROUP_SIZE_MESSAGE = "{where}: min_group_size must be a whole number >= 0, got {value!r}"
BAD_FLAG_MESSAGE = "{where}: exit_zero must be true or false, got {value!r}"


@dataclass(frozen=True)
class GateSettings:
    """Validated gate configuration; ``source``/``profile`` say where it came from."""

    thresholds: Mapping[str, float] = field(default_factory=dict)
    gate_on: str = "ci"
    inconclusive: str = "error"
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE
    exit_zero: bool = False
    source: str | None = None
    profile: str | None = None

    def __post_init__(self) -> None:
        where = self.source or "gate settings"
        checked = {}
        for name, value in self.thresholds.items():
            if name not in THRESHOLDS:
                raise ConfigError(UNKNOWN_THRESHOLD_MESSAGE.format(
                    where=where, name=name, valid=", ".join(THRESHOLDS)))
            checked[name] = THRESHOLDS[name].validate(value, where)
        ordered = {name: checked[name] for name in THRESHOLDS if name in checked}
        object.__setattr__(self, "thresholds", ordered)
        object.__setattr__(self, "gate_on", check_choice("gate_on", self.gate_on, GATE_ON_CHOICES, where))
        object.__setattr__(self, "inconclusive",
                           check_choice("inconclusive", self.inconclusive, INCONCLUSIVE_CHOICES, where))
        object.__setattr__(self, "min_group_size", check_min_group_size(self.min_group_size, where))
        if not isinstance(self.exit_zero, bool):
            raise ConfigError(BAD_FLAG_MESSAGE.format(where=where, value=self.exit_zero))

    def describe(self) -> dict:
        """The settings as written into a report, so a saved verdict explains itself."""
        return {
            "gate_on": self.gate_on,
            "inconclusive": self.inconclusive,
            "min_group_size": self.min_group_size,
            "exit_zero": self.exit_zero,
            "config": self.source,
            "profile": self.profile,
        }


def check_choice(name: str, value: object, choices: tuple[str, ...], where: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(BAD_CHOICE_MESSAGE.format(where=where, name=name, choices="|".join(choices), value=value))
    return value


def check_min_group_size(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(BAD_MIN_GROUP_SIZE_MESSAGE.format(where=where, value=value))
    return value

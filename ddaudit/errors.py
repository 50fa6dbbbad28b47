"""Errors the user can fix, and the exit codes the CLI maps them to.

Every problem caused by input (a file, a flag, a configuration) is raised as a
:class:`DDAuditError` subclass with a one-line message; the CLI prints that line
and exits with the error's ``exit_code``. Anything else is a bug and exits with
:data:`EXIT_INTERNAL`.
"""

from __future__ import annotations

#: All gates passed (or no gate was asked for).
EXIT_OK = 0
#: At least one fairness gate failed.
EXIT_GATE_FAILED = 1
#: Usage, configuration or input error.
EXIT_USAGE = 2
#: A gate could not be decided (undersized cell, or interval straddling the threshold).
EXIT_INCONCLUSIVE = 3
#: An unexpected internal error (a bug in ddaudit).
EXIT_INTERNAL = 101

#: A report's gate status, named once for the gates that decide it and the renderers that show it.
PASS, FAIL, INCONCLUSIVE, NOT_GATED = "pass", "fail", "inconclusive", "not_gated"


class DDAuditError(Exception):
    """A problem the user can fix; the message is one line and says how."""

    exit_code = EXIT_USAGE


class InputError(DDAuditError):
    """A file or tensor given to ddaudit is missing, unreadable or inconsistent."""


class ConfigError(DDAuditError):
    """A flag, threshold or configuration file is invalid."""


class PatchError(DDAuditError):
    """Third-party code does not look the way a patcher expects."""


class RankFailedError(DDAuditError):
    """Another process of a multi-process (torchrun) audit failed; carries that process's exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_INTERNAL) -> None:
        super().__init__(message)
        self.exit_code = exit_code

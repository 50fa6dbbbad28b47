"""Forks of DatasetCondensation that bring their own fairness: FairDD and COBRA.

Both keep DatasetCondensation's layout (``from utils import ...``, closure
``get_images``, inline DM loss, ``match_loss``) with two differences that matter:

- their rows are ``(image, label, group)``: the scripts read ``dst_train[i][2]`` and
  their metric code reads ``datum[2]`` from the test loader, so the injected preset
  is handed over as triples (:class:`~ddaudit.hooks.patchers._groups.PresetRows`);
- they have their own fair mode (FairDD ``--FairDD``; COBRA ``--mode fairdd|cobra``).
  Under a ddaudit mode that would apply fairness twice, so it is refused with one
  line (exit 2); ``ddaudit run --mode none`` audits the fork's own fair run.

A fork is recognised from the script's source (its argparse declarations), not
from the folder name, so a renamed checkout is still recognised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from ddaudit.errors import PatchError

ERR_OWN_FAIR_MODE = (
    "{fork}: {script} was asked for its own fair mode ({given}) while ddaudit --mode {mode} makes the run fair "
    "(fairness would be applied twice); drop {given} to let ddaudit do it, or pass --mode none to audit the fork's own run"
)

#: ``dst_train[i][2]``: the script reads a third item (the group) from its training rows.
_TRIPLE_ROWS = re.compile(r"dst_train\s*\[[^\]]+\]\s*\[\s*2\s*\]")
_OPTION = re.compile(r"add_argument\(\s*['\"](--[A-Za-z0-9_-]+)['\"]")


def reads_group_item(source: str) -> bool:
    """Whether the script reads ``(image, label, group)`` rows."""
    return bool(_TRIPLE_ROWS.search(source))


def declared_options(source: str) -> list[str]:
    """The ``--options`` the script's argparse declares (for argparse's prefix matching)."""
    return _OPTION.findall(source)


def option_values(argv: Sequence[str], option: str, options: Sequence[str]) -> list[tuple[str, str | None]]:
    """``(as written, value)`` for each use of *option* in *argv*, as argparse would match it.

    Accepts ``--opt value``, ``--opt=value`` and unambiguous prefixes (``--Fair``),
    which argparse also accepts. ``value`` is ``None`` for a bare flag at the end.
    """
    found = []
    argv = list(argv)
    for i, word in enumerate(argv):
        if not word.startswith("--") or word == "--":
            continue
        name, eq, inline = word.partition("=")
        if name != option:
            candidates = [o for o in options if o.startswith(name)]
            if len(name) < 3 or candidates != [option]:
                continue
        value = inline if eq else (argv[i + 1] if i + 1 < len(argv) else None)
        found.append((word, value))
    return found


@dataclass(frozen=True)
class ForkProfile:
    """How to recognise one fork and tell whether its own fair mode is on."""

    name: str
    marker: re.Pattern
    #: ``fair_flag(argv, options)`` -> the argument that switches the fork's fairness on, or None.
    fair_flag: Callable[[Sequence[str], Sequence[str]], str | None]


def _fairdd_flag(argv, options):
    uses = option_values(argv, "--FairDD", options)
    return uses[0][0] if uses else None


def _cobra_flag(argv, options):
    for written, value in option_values(argv, "--mode", options):
        if "=" in written:
            shown = written
        else:
            shown = f"{written} {value}"
        if value is not None and value != "vanilla":
            return shown
    return None


FORKS = (
    ForkProfile("fairdd", re.compile(r"add_argument\(\s*['\"]--FairDD['\"]"), _fairdd_flag),
    ForkProfile(
        "cobra",
        re.compile(r"choices\s*=\s*\[\s*['\"]vanilla['\"]\s*,\s*['\"]fairdd['\"]\s*,\s*['\"]cobra['\"]\s*\]"),
        _cobra_flag,
    ),
)


def detect_fork(source: str) -> ForkProfile | None:
    """The fork whose script this is, or ``None`` for upstream DatasetCondensation."""
    return next((fork for fork in FORKS if fork.marker.search(source)), None)


def refuse_own_fair_mode(fork: ForkProfile, source: str, script: str, argv: Sequence[str], mode: str) -> None:
    """Refuse the fork's own fair mode under a ddaudit mode (one line, exit 2)."""
    if mode == "none":
        return
    given = fork.fair_flag([str(a) for a in argv], declared_options(source))
    if given is not None:
        raise PatchError(ERR_OWN_FAIR_MODE.format(fork=fork.name, script=script, given=given, mode=mode))

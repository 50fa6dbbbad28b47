"""The one rule for plain output: when a command must not animate or colour-redraw.

Logs must read the same as the screen, so output is plain under a CI system
(``CI`` set to anything but an empty/false value), on a dumb terminal
(``TERM=dumb``) or when the stream is not a terminal. Every command and the
gate views ask this one function.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping, TextIO

#: ``CI`` values that mean "not under CI" (``CI=false`` is common in local scripts).
NOT_CI = ("", "0", "false", "no", "off")


def is_plain_output(stream: TextIO | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """True when output on *stream* (default stderr) must be plain lines."""
    environ = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    if environ.get("CI", "").strip().lower() not in NOT_CI:
        return True
    if environ.get("TERM", "").strip().lower() == "dumb":
        return True
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())

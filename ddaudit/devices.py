"""The one device resolver: which torch device a ``--device`` string means.

Every command and library entry point (audit, demo, probe, weights, the
surrogate) resolves devices here, so they accept and refuse the same strings:
``auto`` (the first GPU when there is one, else the CPU), ``cpu``, ``cuda``,
``cuda:N`` and ``mps``. Anything else (``tpu``, ``gpu``, ``cuda:x``) and a GPU
that is not there are configuration errors (exit 2) that say what to use.
"""

from __future__ import annotations

import re

from ddaudit.errors import ConfigError

DEVICE_HELP = "auto (a GPU if there is one), cpu, cuda, cuda:N or mps."

_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(?::(\d+))?)$")

UNKNOWN_DEVICE_MESSAGE = "unknown --device {device!r}; use one of auto, cpu, cuda, cuda:N or mps"
NO_CUDA_MESSAGE = "--device {device} was asked for but no CUDA GPU is available; use --device cpu"
NO_SUCH_GPU_MESSAGE = "--device {device} was asked for but only {count} CUDA GPU(s) exist (cuda:0..cuda:{last})"
NO_MPS_MESSAGE = "--device mps was asked for but Apple's MPS backend is not available here; use --device cpu"


def check_device_name(device: object) -> str:
    """*device* as a string if it names a device kind ddaudit knows; no torch needed."""
    text = str(device).strip().lower()
    if not _PATTERN.match(text):
        raise ConfigError(UNKNOWN_DEVICE_MESSAGE.format(device=str(device)))
    return text


def resolve_device(device: object = "auto") -> str:
    """The torch device string *device* means here (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).

    Raises :class:`~ddaudit.errors.ConfigError` for an unknown name or a
    device this machine does not have.
    """
    import torch

    text = check_device_name(device)
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(NO_CUDA_MESSAGE.format(device=text))
        index = _PATTERN.match(text).group(2)
        count = torch.cuda.device_count()
        if index is not None and int(index) >= count:
            raise ConfigError(NO_SUCH_GPU_MESSAGE.format(device=text, count=count, last=count - 1))
    if text == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(NO_MPS_MESSAGE)
    return text

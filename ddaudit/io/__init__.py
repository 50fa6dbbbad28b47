"""Readers for distilled (synthetic) sets in the formats distillation codebases save.

The public entry point is :func:`load_synthetic`; each format is one reader
registered with :func:`register_reader` that declares how it recognises a path.
Every file is opened without running code: ``torch.load(weights_only=True)``,
``numpy.load(allow_pickle=False)``, safetensors or Pillow.
"""

from ddaudit.io._types import SyntheticSet
from ddaudit.io._registry import (
    available_formats,
    detect_format,
    load_synthetic,
    register_reader,
)

# Importing the reader modules registers their formats.
from ddaudit.io import _trajectory, _dc, _idc, _containers, _imagefolder  # noqa: E402,F401
from ddaudit.io._idc import decode_multiformation
from ddaudit.io._lr import read_lr

__all__ = [
    "SyntheticSet",
    "available_formats",
    "decode_multiformation",
    "detect_format",
    "load_synthetic",
    "read_lr",
    "register_reader",
]

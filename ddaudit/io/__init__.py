"""Readers for distilled (synthetic) sets in the formats distillation codebases save.

The public entry point is :func:`load_synthetic`; each format is one reader
registered with :func:`register_reader` that declares how it recognises a path.
"""

from ddaudit.io._types import SyntheticSet
from ddaudit.io._registry import available_formats, load_synthetic, register_reader

__all__ = ["SyntheticSet", "available_formats", "load_synthetic", "register_reader"]

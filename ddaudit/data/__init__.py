"""Real, group-labelled datasets: embedded presets and readers of local roots.

``load_real("cmnist-fg")`` or ``load_real("celeba:/data/celeba", target=..., sensitive=...)``
(``sensitive="Male,Young"``: several attributes, grouped by their intersections);
each preset is one function registered with :func:`register_preset`.
"""

from ddaudit.data._types import GroupTensors, RealData
from ddaudit.data._attributes import (
    Attributes,
    Grouping,
    intersection_index,
    intersection_names,
    intersection_values,
    select_attributes,
)
from ddaudit.data._registry import Preset, available_presets, get_preset, load_real, parse_spec, register_preset
from ddaudit.data._colored import COLOUR_NAMES, PALETTE
from ddaudit.data._alignment import (
    AlignedData,
    align_pixel_space,
    check_compatible,
    fit_zca,
    pixel_warning,
    resolve_space,
    to_real_space,
)
from ddaudit.data import _mnist, _cifar, _celeba, _utkface, _tensors, _folder  # noqa: F401  (register the presets)

__all__ = [
    "AlignedData",
    "Attributes",
    "Grouping",
    "COLOUR_NAMES",
    "GroupTensors",
    "PALETTE",
    "Preset",
    "RealData",
    "align_pixel_space",
    "available_presets",
    "check_compatible",
    "fit_zca",
    "get_preset",
    "intersection_index",
    "intersection_names",
    "intersection_values",
    "load_real",
    "parse_spec",
    "pixel_warning",
    "register_preset",
    "resolve_space",
    "select_attributes",
    "to_real_space",
]

"""Real, group-labelled datasets: embedded presets and readers of local roots.

``load_real("cmnist-fg")`` or ``load_real("celeba:/data/celeba", target=..., sensitive=...)``;
each preset is one function registered with :func:`register_preset`.
"""

from ddaudit.data._types import GroupTensors, RealData
from ddaudit.data._registry import available_presets, load_real, register_preset

__all__ = ["GroupTensors", "RealData", "available_presets", "load_real", "register_preset"]

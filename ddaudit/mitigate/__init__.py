"""Group-fair matching targets: per-row scales for synchronized, barycenter and weighted matching."""

from ddaudit.mitigate.groups import (
    MODES,
    check_groups,
    check_weights,
    kept_groups,
    present_groups,
    row_scales,
    sync_scale,
    target_weights,
)

__all__ = [
    "MODES",
    "check_groups",
    "check_weights",
    "kept_groups",
    "present_groups",
    "row_scales",
    "sync_scale",
    "target_weights",
]

"""Group-fair matching targets and the data they need.

``groups``: per-row scales for synchronized, barycenter and weighted matching.
``without_labels`` (:func:`label_free`): the whole path for data without group labels (surrogate, KDE
weights, effective sample size, pseudo-groups, recovery). ``bias_model``: the
deliberately biased classifier it uses by default; ``surrogate``: the
supervised-contrastive alternative; ``kde``: Cui et al.'s inverse-density weights;
``pseudo_groups``: groups for users without labels; ``recovery``: how well either
recovers the true groups. The heavier modules load on first use.
"""

from __future__ import annotations

from ddaudit._lazy import lazy_getattr
from ddaudit.mitigate.groups import (
    MODES,
    check_groups,
    check_weights,
    fold_attributes,
    kept_groups,
    present_groups,
    row_scales,
    sync_scale,
    target_weights,
)

_LAZY = {
    ".kde": ("kde_weights", "kde_log_density", "class_log_density", "inverse_density_weights",
             "effective_sample_size", "median_ess_fraction", "power_for_ess", "select_bandwidth", "save_weights",
             "load_weights"),
    ".without_labels": ("label_free", "LabelFreeSettings", "LabelFreeResult"),
    ".bias_model": ("BiasModelSettings", "train_bias_model", "gce_loss"),
    ".surrogate": ("SurrogateSettings", "supcon_loss", "train_surrogate", "surrogate_embeddings"),
    ".pseudo_groups": ("save_groups", "load_groups"),
    ".recovery": ("weight_recovery", "group_recovery", "recovery_report"),
}

__all__ = [
    "MODES",
    "check_groups",
    "check_weights",
    "fold_attributes",
    "kept_groups",
    "present_groups",
    "row_scales",
    "sync_scale",
    "target_weights",
    *(name for names in _LAZY.values() for name in names),
]


__getattr__ = lazy_getattr(__name__, _LAZY)

"""The composition probe: which protected groups a distilled set's images show, per class.

``ddaudit.probe("res_DM.pt", "cmnist-fg")`` trains (once, cached) a group
classifier on the real training images and reports, per class, the predicted
group shares beside the real class's and a uniform distribution: majority share,
groups covered, normalised entropy and Jensen-Shannon divergence, and the majority weight: the
class's mean feature read as a mixture of the real groups' means (with whether it is identified
and how far the mean lies off the groups' hull). Images unlike any real group are counted as
unknown rather than as the nearest group, and the two gated means carry bootstrap intervals. No evaluator
is trained, so it takes seconds where an audit takes minutes.
"""

import sys
import types

from ddaudit.probe._classifier import (
    ClassifierSettings,
    cell_balanced_weights,
    content_hash,
    default_cache_dir,
    predict_proba,
    train_group_classifier,
)
from ddaudit.probe._composition import (
    class_composition,
    composition,
    group_spread,
    groups_covered,
    identifiability,
    js_divergence,
    majority_share,
    mixture_fit,
    mixture_weights,
    normalized_entropy,
)
from ddaudit.probe._intervals import INTERVAL_METHOD, probe_intervals
from ddaudit.probe._unknown import DEFAULT_UNKNOWN_QUANTILE, UnknownDetector, fit_detector
from ddaudit.probe._probe import DEFAULT_MIN_CONFIDENCE, PROBE_SCHEMA, ProbeResult, display_pixels, probe, set_pictures

__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "DEFAULT_UNKNOWN_QUANTILE",
    "INTERVAL_METHOD",
    "UnknownDetector",
    "fit_detector",
    "group_spread",
    "identifiability",
    "mixture_fit",
    "probe_intervals",
    "PROBE_SCHEMA",
    "ClassifierSettings",
    "ProbeResult",
    "cell_balanced_weights",
    "class_composition",
    "composition",
    "content_hash",
    "default_cache_dir",
    "display_pixels",
    "groups_covered",
    "js_divergence",
    "majority_share",
    "mixture_weights",
    "normalized_entropy",
    "predict_proba",
    "probe",
    "set_pictures",
    "train_group_classifier",
]


class _CallableModule(types.ModuleType):
    """``ddaudit.probe(...)`` is :func:`probe`, while ``ddaudit.probe.composition`` etc. stay reachable."""

    def __call__(self, *args, **kwargs) -> ProbeResult:
        return probe(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

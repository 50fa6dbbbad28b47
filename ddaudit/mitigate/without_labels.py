"""Fairness without group labels, end to end: surrogate -> embedding -> KDE weights + pseudo-groups.

::

    from ddaudit.mitigate import label_free
    result = label_free(load_real("cmnist-fg", bias_ratio=0.95))
    result.weights        # (N,) mean 1 per class, for mode="weights" or sample_weights=
    result.groups         # (N,) pseudo-groups, for mode="sync"/"barycenter" in place of true groups
    result.ess            # effective sample size per class; result.warnings when it is low
    result.recovery       # auc, weight_ratio, ari against the true groups, when the data has them

Only the images and class labels are read to compute weights and groups; true
groups, when the data carries them, are read afterwards and only to report
recovery. The default surrogate is a deliberately biased classifier
(:mod:`~ddaudit.mitigate.bias_model`, GCE, early stop); its logits are the
embedding, KDE on them gives Cui et al.'s inverse-density weights, and its
predicted class splits every class into pseudo-groups. ``surrogate="supcon"``
keeps the supervised-contrastive embedding (:mod:`~ddaudit.mitigate.surrogate`).

The weights are tempered without labels: the KDE power is the largest in
``[0, 1]`` that keeps the median effective sample size at ``min_ess`` of a
class (default 5 %; group-balancing ten colours at a 95 % bias leaves about
6 %), so a handful of images never carries a class. A fixed ``power`` skips
that; the result warns when the median falls below ``warn_ess`` (3 %).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from ddaudit.errors import ConfigError, InputError
from ddaudit.mitigate.bias_model import BiasModelSettings
from ddaudit.mitigate.surrogate import SurrogateSettings

SURROGATES = ("bias", "supcon")

ERR_SURROGATE = "surrogate must be 'bias' or 'supcon'; got {value!r}."
ERR_PREDICTION = "pseudo-group method 'prediction' needs the 'bias' surrogate (a classifier's predictions)."
ERR_DATA = "label_free needs RealData, GroupTensors or (images, labels); got {kind}."
ERR_EMPTY = "the training set is empty; label-free weights are computed on training images."
WARN_ESS = (
    "median effective sample size is {fraction:.1%} of a class (below {limit:.0%}): a few images carry each class; "
    "lower the power or cap the weights (max_weight)."
)

#: progress(phase, done, total)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LabelFreeSettings:
    """How the surrogate is trained and how weights and pseudo-groups are derived from it.

    ``power=None`` picks the power from ``min_ess`` (see the module docstring);
    ``pseudo_method`` is ``prediction`` (bias surrogate only), ``dbscan`` or ``kmeans``.
    """

    surrogate: str = "bias"
    bias_model: BiasModelSettings = BiasModelSettings()
    supcon: SurrogateSettings = SurrogateSettings()
    bandwidth: str | float = "scott"
    power: float | None = None
    min_ess: float = 0.05
    max_weight: float | None = None
    normalize: str = "class"
    chunk_size: int = 2048
    warn_ess: float = 0.03
    pseudo_method: str = "prediction"
    n_groups: int | None = None
    eps: float | None = None

    def __post_init__(self) -> None:
        from ddaudit.mitigate.kde import ERR_MIN_ESS, check_weight_options, select_bandwidth
        from ddaudit.mitigate.pseudo_groups import check_pseudo_group_options

        if self.surrogate not in SURROGATES:
            raise ConfigError(ERR_SURROGATE.format(value=self.surrogate))
        if self.pseudo_method == "prediction" and self.surrogate != "bias":
            raise ConfigError(ERR_PREDICTION)
        check_weight_options(power=1.0 if self.power is None else self.power, normalize=self.normalize,
                             max_weight=self.max_weight, chunk_size=self.chunk_size)
        for value in (self.min_ess, self.warn_ess):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(ERR_MIN_ESS.format(value=value))
        if not isinstance(self.bandwidth, str):
            select_bandwidth(torch.zeros(0, 1), self.bandwidth)
        check_pseudo_group_options(method=self.pseudo_method, eps=self.eps, n_groups=self.n_groups)

    @property
    def seed(self) -> int:
        return self.bias_model.seed if self.surrogate == "bias" else self.supcon.seed

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("supcon" if self.surrogate == "bias" else "bias_model")
        return out


@dataclass
class LabelFreeResult:
    """Weights and pseudo-groups in the training order, with what justifies trusting them."""

    weights: torch.Tensor
    groups: torch.Tensor
    embeddings: torch.Tensor
    power: float
    bandwidths: dict[int, float]
    ess: dict[int, float]
    ess_fraction: float
    surrogate_epochs: int
    settings: LabelFreeSettings
    train_accuracy: list[float] = field(default_factory=list)
    recovery: dict | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """Everything but the per-sample tensors, JSON-ready (the ``ddaudit weights --json`` payload)."""
        counts = torch.bincount(self.groups).numel() if self.groups.numel() else 0
        return {
            "settings": self.settings.to_dict(),
            "power": self.power,
            "bandwidths": {str(k): v for k, v in self.bandwidths.items()},
            "surrogate_epochs": self.surrogate_epochs,
            "surrogate_train_accuracy": self.train_accuracy,
            "ess": {str(k): v for k, v in self.ess.items()},
            "ess_median_fraction": self.ess_fraction,
            "max_weight": float(self.weights.max()) if self.weights.numel() else None,
            "num_pseudo_group_ids": counts,
            "recovery": self.recovery,
            "warnings": list(self.warnings),
        }


def _training_tensors(data) -> tuple[torch.Tensor, torch.Tensor, object]:
    """(images, labels, RealData or None): the only two columns the label-free path reads."""
    from ddaudit.data import GroupTensors, RealData

    if isinstance(data, RealData):
        if data.train is None:
            raise InputError(ERR_EMPTY)
        return data.train.x, data.train.y, data
    if isinstance(data, GroupTensors):
        return data.x, data.y, None
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return data[0], data[1], None
    raise InputError(ERR_DATA.format(kind=type(data).__name__))


def label_free(
    data,
    settings: LabelFreeSettings = LabelFreeSettings(),
    *,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> LabelFreeResult:
    """Compute KDE weights and pseudo-groups for *data*'s training set without its group labels.

    *data* is a :class:`~ddaudit.data.RealData` (recovery is reported when it has
    true groups), :class:`~ddaudit.data.GroupTensors` or ``(images, labels)``.
    Deterministic for the settings' seed on CPU.
    """
    from ddaudit.mitigate.kde import class_log_density, effective_sample_size, inverse_density_weights, median_ess_fraction, power_for_ess
    from ddaudit.mitigate.pseudo_groups import pseudo_groups
    from ddaudit.devices import resolve_device

    images, labels, real = _training_tensors(data)
    if labels.numel() == 0:
        raise InputError(ERR_EMPTY)
    labels = labels.long()
    if num_classes is None:
        num_classes = real.num_classes if real is not None else int(labels.max()) + 1
    device = resolve_device(device)

    def phase(name: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda done, total: progress(name, done, total))

    train_accuracy: list[float] = []
    if settings.surrogate == "bias":
        from ddaudit.mitigate.bias_model import train_bias_model

        fit = train_bias_model(images, labels, settings.bias_model, num_classes=num_classes, device=device,
                               progress=phase("training the biased classifier"))
        embeddings, train_accuracy, epochs = fit.logits, fit.train_accuracy, fit.epochs
    else:
        from ddaudit.mitigate.surrogate import surrogate_embeddings

        embeddings = surrogate_embeddings(images, labels, settings.supcon, num_classes=num_classes, device=device,
                                          progress=phase("training the SupCon surrogate"))
        epochs = settings.supcon.epochs

    log_density, bandwidths = class_log_density(
        embeddings.to(device), labels, bandwidth=settings.bandwidth, chunk_size=settings.chunk_size,
        progress=phase("KDE density per class"),
    )
    log_density = log_density.cpu()
    power = settings.power
    if power is None:
        power = power_for_ess(log_density, labels, min_ess=settings.min_ess, normalize=settings.normalize,
                              max_weight=settings.max_weight)
    weights = inverse_density_weights(log_density, labels, power=power, normalize=settings.normalize,
                                      max_weight=settings.max_weight)
    groups = pseudo_groups(embeddings, labels, method=settings.pseudo_method, n_groups=settings.n_groups,
                           eps=settings.eps, seed=settings.seed, progress=phase("pseudo-groups per class"))
    fraction = median_ess_fraction(weights, labels)
    warnings = [WARN_ESS.format(fraction=fraction, limit=settings.warn_ess)] if fraction < settings.warn_ess else []
    result = LabelFreeResult(
        weights=weights, groups=groups, embeddings=embeddings.cpu(), power=float(power), bandwidths=bandwidths,
        ess=effective_sample_size(weights, labels), ess_fraction=fraction, surrogate_epochs=epochs,
        settings=settings, train_accuracy=train_accuracy, warnings=warnings,
    )
    if real is not None and real.num_groups > 1:
        result.recovery = recovery_summary(real, weights, groups)
    return result


def recovery_summary(real, weights: torch.Tensor, groups: torch.Tensor) -> dict:
    """``auc``, ``weight_ratio`` (conflicting / aligned mean weight) and pseudo-group ``ari``, plus the details."""
    from ddaudit.mitigate.recovery import recovery_report

    report = recovery_report(real, weights=weights, groups=groups)
    weight_part = report.get("weights")
    return {
        "auc": None if weight_part is None else weight_part["auc"],
        "weight_ratio": None if weight_part is None else weight_part["ratio"],
        "ari": report["pseudo_groups"]["ari"],
        "weights": weight_part,
        "pseudo_groups": report["pseudo_groups"],
    }

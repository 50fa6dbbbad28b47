"""Evaluation protocols: how evaluator networks are trained on a distilled set.

A :class:`Protocol` is the literature's evaluation recipe as data (model,
epochs, SGD settings, augmentation); the presets reproduce the published
defaults. The learning-rate schedule lives here too, as a function of the
epoch, so both training engines read the same schedule.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, asdict, dataclass, fields, replace

from ddaudit.errors import ConfigError
from ddaudit.evaluate.augment import DEFAULT_STRATEGY, parse_strategy
from ddaudit.evaluate.models import available_models

MTT_NEEDS_LR = "protocol mtt needs the learned lr: pass --lr or a synthetic set that stores lr_best.pt"
UNKNOWN_PROTOCOL = "unknown protocol {name!r}: choose one of {choices}"
UNKNOWN_SETTING = "unknown protocol setting {key!r}: use one of {choices}"
BAD_SETTING = "invalid protocol setting: {problem}"
AUGMENTATIONS = ("none", "dsa")


@dataclass(frozen=True)
class Protocol:
    """One evaluator-training recipe.

    Training runs ``epochs`` passes over the synthetic set with SGD
    (``momentum``, ``weight_decay``), mini-batches of ``batch_size`` drawn from
    a fresh shuffle each epoch (the last, smaller batch is kept). Epochs
    ``1 .. epochs // 2`` use ``lr``; epochs ``epochs // 2 + 1 .. epochs`` use
    ``lr * lr_decay`` with a fresh momentum buffer (DC re-creates its
    optimizer at the decay). A single-epoch run has no decay. Only the
    final-epoch network is evaluated. ``aug="dsa"`` applies DSA with
    ``dsa_strategy`` to every training batch.

    DC itself runs ``epochs + 1`` passes and decays after pass
    ``epochs // 2 + 1`` (0-based); here ``epochs`` means the number of passes.
    """

    name: str
    _: KW_ONLY
    epochs: int
    model: str = "ConvNet"
    lr: float | None = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    aug: str = "none"
    dsa_strategy: str = DEFAULT_STRATEGY
    lr_decay: float = 0.1

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.epochs, int) or self.epochs < 1:
            problems.append(f"epochs must be a positive integer, got {self.epochs!r}")
        if self.lr is not None and not self.lr > 0:
            problems.append(f"lr must be positive, got {self.lr!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            problems.append(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not self.lr_decay > 0:
            problems.append(f"lr_decay must be positive, got {self.lr_decay!r}")
        if self.aug not in AUGMENTATIONS:
            problems.append(f"aug must be one of {', '.join(AUGMENTATIONS)}, got {self.aug!r}")
        if self.model not in available_models():
            problems.append(f"model {self.model!r} is not registered (see ddaudit.evaluate.available_models())")
        if problems:
            raise ConfigError(BAD_SETTING.format(problem="; ".join(problems)))
        parse_strategy(self.dsa_strategy)

    @property
    def augmentation_strategy(self) -> str:
        """The DSA strategy in effect: ``"none"`` unless ``aug == "dsa"``."""
        return self.dsa_strategy if self.aug == "dsa" else "none"

    @property
    def decay_epoch(self) -> int:
        """Number of epochs trained at the initial lr (the 0-based index of the first decayed epoch)."""
        return self.epochs // 2 if self.epochs > 1 else self.epochs

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``."""
        if self.lr is None:
            raise ConfigError(MTT_NEEDS_LR if self.name == "mtt" else f"protocol {self.name} has no lr: pass --lr")
        return self.lr if epoch < self.decay_epoch else self.lr * self.lr_decay

    def to_dict(self) -> dict:
        """Plain settings for the report."""
        return asdict(self)


_PRESETS: dict[str, dict] = {
    "dc": {"epochs": 300, "aug": "none"},
    "dsa": {"epochs": 1000, "aug": "dsa"},
    "dm": {"epochs": 1000, "aug": "dsa"},
    "mtt": {"epochs": 1000, "aug": "dsa", "lr": None},
    "quick": {"epochs": 50, "aug": "none"},
    # CPU runners: the dsa recipe with 300 instead of 1000 epochs; with check's 5 evaluators half
    # the cost of dsa with 3. Its DEO_M reads lower and its evaluators spread more, so borderline
    # sets come out inconclusive (exit 3) where dsa fails them (benchmarks/RESULTS.md, "CI protocol").
    "ci": {"epochs": 300, "aug": "dsa"},
}


def available_protocols() -> list[str]:
    """Preset names."""
    return list(_PRESETS)


def get_protocol(name: str, **overrides) -> Protocol:
    """Preset ``name`` with ``overrides`` applied; overrides that are ``None`` are ignored.

    ``mtt`` has no default lr (MTT learns it): without ``lr`` it raises
    :class:`ConfigError` with :data:`MTT_NEEDS_LR`.
    """
    if name not in _PRESETS:
        raise ConfigError(UNKNOWN_PROTOCOL.format(name=name, choices=", ".join(_PRESETS)))
    settings = [f.name for f in fields(Protocol) if f.name not in ("name", "_")]
    for key in overrides:
        if key not in settings:
            raise ConfigError(UNKNOWN_SETTING.format(key=key, choices=", ".join(settings)))
    chosen = {key: value for key, value in overrides.items() if value is not None}
    protocol = replace(Protocol(name, **_PRESETS[name]), **chosen)
    if protocol.lr is None:
        raise ConfigError(MTT_NEEDS_LR)
    return protocol

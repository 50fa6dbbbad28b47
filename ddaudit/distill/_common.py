"""What the reference distillers share: the result, the real-batch sampler, initialisation, seeds, the run's state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ddaudit.data import GroupTensors
from ddaudit.errors import ConfigError, InputError
from ddaudit.evaluate import DiffAugment, create_model
from ddaudit.mitigate.groups import check_mode, check_weights, fold_attributes

#: progress(done, total): called after every distillation iteration.
Progress = Callable[[int, int], None]

#: ``real``: random real images of the class; ``balanced``: real images spread evenly over the class's groups;
#: ``noise``: standard normal noise.
INITS = ("real", "balanced", "noise")
#: How each class's real batch is drawn: ``uniform`` rows, or ``balanced`` over the class's groups.
BATCHES = ("uniform", "balanced")

ERR_REAL_TYPE = "real must be GroupTensors (x, y, a) such as load_real(...).train, got {kind}"
ERR_REAL_EMPTY = "the real training set is empty; distillation needs real images of every class"
ERR_LABEL_RANGE = "real class labels must lie in [0, {num_classes}), found {low}..{high}; check num_classes"
ERR_EMPTY_CLASS = "class {c} has no real images; every class needs at least one to be distilled"
ERR_FEW_FOR_INIT = "class {c} has {count} real images, fewer than ipc={ipc}; use init='noise' or a smaller ipc"
ERR_INIT = "unknown init {init!r}; use 'real', 'balanced' or 'noise'"
ERR_BATCHES = "unknown batches {batches!r}; use 'uniform' or 'balanced'"
ERR_BALANCED_WEIGHTED = "batches='balanced' draws rows evenly over groups and sample_weights draws them by weight; use one"
ERR_POSITIVE = "{name} must be a positive integer, got {value!r}"
ERR_ITERATIONS = "iterations must be an integer >= 0, got {value!r}"
ERR_WEIGHTS_UNUSED = "weights= is only used with mode='weights' (got mode={mode!r}); drop weights or set mode='weights'"
ERR_WEIGHTS_NEEDED = "mode='weights' needs weights=, one non-negative weight per real training row"
ERR_NO_ATTRIBUTES = ("attribute={attribute!r} picks columns of the real data's attribute table, but this data has "
                     "one group column; load data with several attributes (e.g. --sensitive a,b) or drop attribute")
ERR_ZERO_CLASS_WEIGHT = "sample_weights of class {c} sum to zero; every class needs a row with a positive weight to be drawn"


@dataclass
class SyntheticResult:
    """A distilled set: class-major ``images`` ``(num_classes * ipc, C, H, W)`` in the
    real data's space, ``labels`` ``(N,)``, the per-iteration mean class loss in
    ``history`` and the settings in ``meta``."""

    images: torch.Tensor
    labels: torch.Tensor
    history: list[float]
    meta: dict = field(default_factory=dict)

    def save(self, path: str | Path, *, force: bool = False, **names) -> Path:
        """Write the set in DatasetCondensation's format (see :func:`save_dc_format`)."""
        from ddaudit.distill.save import save_dc_format

        return save_dc_format(path, self.images, self.labels, self.meta.get("method"), force=force, **names)


def check_positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(ERR_POSITIVE.format(name=name, value=value))
    return value


def check_sampling(*, batches: str | None = None, init: str | None = None) -> None:
    """Refuse an unknown ``batches`` or ``init`` (None: not given) before any work."""
    if init is not None and init not in INITS:
        raise ConfigError(ERR_INIT.format(init=init))
    if batches is not None and batches not in BATCHES:
        raise ConfigError(ERR_BATCHES.format(batches=batches))


def check_common(real, *, num_classes: int, ipc: int, iterations: int, mode: str, weights, init: str,
                 batches: str = "uniform", sample_weights=None):
    """Validate the arguments every distiller takes; return the weights as a float tensor (or None)."""
    if not isinstance(real, GroupTensors):
        raise InputError(ERR_REAL_TYPE.format(kind=type(real).__name__))
    if len(real) == 0:
        raise InputError(ERR_REAL_EMPTY)
    check_positive("num_classes", num_classes)
    check_positive("ipc", ipc)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ConfigError(ERR_ITERATIONS.format(value=iterations))
    check_mode(mode)
    check_sampling(batches=batches, init=init)
    if batches == "balanced" and sample_weights is not None:
        raise ConfigError(ERR_BALANCED_WEIGHTED)
    if mode == "weights":
        if weights is None:
            raise ConfigError(ERR_WEIGHTS_NEEDED)
        return check_weights(weights, len(real))
    if weights is not None:
        raise ConfigError(ERR_WEIGHTS_UNUSED.format(mode=mode))
    return None


def matching_groups(real: GroupTensors, attribute=None) -> GroupTensors:
    """*real* with ``a`` the groups to be fair over.

    ``a`` as loaded (for several attributes, their intersection) unless *attribute*
    picks columns of the attribute table (``real.attrs``, or ``a`` itself when it is
    ``(n, K)``): one index for that attribute alone, a list for the intersection of those.
    """
    table = real.a if real.a.ndim == 2 else real.attrs
    if attribute is None and real.a.ndim == 1:
        return real
    if table is None:
        raise ConfigError(ERR_NO_ATTRIBUTES.format(attribute=attribute))
    return GroupTensors(real.x, real.y, fold_attributes(table, attribute), table if real.attrs is None else real.attrs)


class ClassSampler:
    """Random real rows of one class, like DC's ``get_images``: distinct rows drawn uniformly,
    or, with ``weights``, rows drawn with replacement with probability proportional to their weight.

    Drawing by weight is importance resampling: the plain mean of a drawn batch is an
    unbiased estimate of the class's weighted mean, and a small batch holds rare
    high-weight rows (bias-conflicting samples) in proportion to their weight
    instead of their count.
    """

    def __init__(self, labels: torch.Tensor, num_classes: int, weights: torch.Tensor | None = None,
                 groups: torch.Tensor | None = None, balanced: bool = False) -> None:
        labels = labels.cpu()
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise InputError(ERR_LABEL_RANGE.format(num_classes=num_classes, low=low, high=high))
        self.rows = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]
        for c, rows in enumerate(self.rows):
            if rows.numel() == 0:
                raise InputError(ERR_EMPTY_CLASS.format(c=c))
        self.groups = None if groups is None else [groups.cpu()[rows] for rows in self.rows]
        self.balanced = balanced
        self.weights = None
        if weights is not None:
            weights = check_weights(weights, labels.shape[0]).detach().cpu().double()
            self.weights = [weights[rows] for rows in self.rows]
            for c, w in enumerate(self.weights):
                if not bool(w.sum() > 0):
                    raise InputError(ERR_ZERO_CLASS_WEIGHT.format(c=c))

    def draw(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """Indices of ``min(n, class size)`` random rows of class ``c`` (by weight when the sampler has weights,
        group-balanced when it is ``balanced``)."""
        if self.balanced:
            return self.draw_balanced(c, n, generator)
        if self.weights is None:
            return self.draw_uniform(c, n, generator)
        rows = self.rows[c]
        picks = torch.multinomial(self.weights[c], min(n, rows.numel()), replacement=True, generator=generator)
        return rows[picks]

    def draw_balanced(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """Indices of ``min(n, class size)`` distinct rows of class ``c``, spread evenly over its groups."""
        from ddaudit.mitigate.balanced import balanced_rows

        return balanced_rows(self.rows[c], self.groups[c], n, generator)

    def draw_uniform(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """Indices of ``min(n, class size)`` distinct rows of class ``c``, uniformly at random."""
        rows = self.rows[c]
        return rows[torch.randperm(rows.numel(), generator=generator)[:n]]


def initial_images(
    real: GroupTensors, sampler: ClassSampler, num_classes: int, ipc: int, init: str, generator: torch.Generator
) -> torch.Tensor:
    """Class-major starting images: random real images of each class (``balanced``: spread evenly over its
    groups), or standard normal noise."""
    shape = tuple(real.x.shape[1:])
    if init == "noise":
        return torch.randn((num_classes * ipc, *shape), generator=generator)
    blocks = []
    for c in range(num_classes):
        count = sampler.rows[c].numel()
        if count < ipc:
            raise InputError(ERR_FEW_FOR_INIT.format(c=c, count=count, ipc=ipc))
        draw = sampler.draw_balanced if init == "balanced" else sampler.draw_uniform
        blocks.append(real.x[draw(c, ipc, generator)])
    return torch.cat(blocks).float().clone()


def class_major_labels(num_classes: int, ipc: int) -> torch.Tensor:
    return torch.arange(num_classes).repeat_interleave(ipc)


def method_name(base: str, mode: str) -> str:
    """``DM``, ``DM-FairDD``, ``DM-barycenter``, ``DM-weights``: used in saved file names."""
    suffix = {"none": "", "sync": "-FairDD"}.get(mode, f"-{mode}")
    return base + suffix


def next_seed(generator: torch.Generator) -> int:
    """A seed for the next freshly initialised network, drawn from the run's own generator."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


class MatchingRun:
    """The state a reference distiller sets up before its loop, and the draws it makes inside it.

    One ``torch.Generator`` seeded by ``seed`` makes every random draw, in this
    order: the initial images; then each iteration a network seed
    (:meth:`new_network`) and, per class, a real batch and the DSA parameters
    shared by the real and synthetic images of that class (:meth:`class_batch`),
    between the draws the distiller makes itself. The synthetic ``images`` are
    class-major leaves on ``device`` with their ``labels``, updated by
    ``optimizer`` (SGD on the images, momentum 0.5, as in DatasetCondensation).
    """

    def __init__(
        self,
        real: GroupTensors,
        *,
        num_classes: int,
        ipc: int,
        init: str,
        model: str,
        lr_img: float,
        batch_real: int,
        batches: str = "uniform",
        weights: torch.Tensor | None,
        sample_weights: torch.Tensor | None,
        dsa: bool,
        dsa_strategy: str,
        seed: int,
        device: str | torch.device,
    ) -> None:
        self.num_classes, self.ipc, self.model, self.batch_real, self.device = num_classes, ipc, model, batch_real, device
        self.augment = DiffAugment(dsa_strategy) if dsa else None
        self.generator = torch.Generator().manual_seed(int(seed))
        self.sampler = ClassSampler(real.y, num_classes, sample_weights, groups=real.a,
                                    balanced=batches == "balanced")
        self.channel, self.im_size = int(real.x.shape[1]), tuple(int(s) for s in real.x.shape[2:])
        initial = initial_images(real, self.sampler, num_classes, ipc, init, self.generator)
        self.images = initial.to(device).requires_grad_(True)
        self.labels = class_major_labels(num_classes, ipc).to(device)
        self.optimizer = torch.optim.SGD([self.images], lr=lr_img, momentum=0.5)
        self.real_x, self.real_a = real.x.to(device), real.a.to(device)
        self.real_w = None if weights is None else weights.to(device)

    def new_network(self) -> nn.Module:
        """A freshly initialised network in train mode, seeded from the run's generator."""
        net = create_model(self.model, self.channel, self.num_classes, self.im_size, seed=next_seed(self.generator))
        return net.to(self.device).train()

    def class_rows(self, c: int) -> slice:
        """Where class ``c`` lies in the class-major ``images`` and ``labels``."""
        return slice(c * self.ipc, (c + 1) * self.ipc)

    def class_batch(self, c: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw a real batch of class ``c``: its row indices, its images and the class's synthetic images,
        both after the same DSA transform when DSA is on."""
        index = self.sampler.draw(c, self.batch_real, self.generator).to(self.device)
        x_real, x_syn = self.real_x[index], self.images[self.class_rows(c)]
        if self.augment is not None:
            x_real, x_syn = self.augment.siamese(x_real, x_syn, generator=self.generator)
        return index, x_real, x_syn

    def group_arguments(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """What a ``fair_matching`` loss needs about the real rows ``index``: their groups, and their weights
        in mode ``weights``."""
        extra = {"groups": self.real_a[index]}
        if self.real_w is not None:
            extra["weights"] = self.real_w[index]
        return extra

    def result(self, history: list[float], meta: dict) -> SyntheticResult:
        """The learned images and labels on the CPU, with the loss history and the run's settings."""
        return SyntheticResult(images=self.images.detach().cpu(), labels=self.labels.cpu(), history=history, meta=meta)

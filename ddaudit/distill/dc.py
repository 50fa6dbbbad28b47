"""Gradient matching (DC, Zhao et al. 2021; DSA with ``dsa=True``), made fair with ``@fair_matching``.

Per class, the synthetic images are moved so that the gradient of the network's
cross-entropy on them matches the gradient on a real batch of that class
(:func:`match_loss`, DC's per-output-row cosine distance by default). The network
is re-initialised every iteration, and between the ``outer_loop`` image updates
it is trained for ``inner_loop`` epochs on the current synthetic set
(:func:`get_loops`).

Fair modes go through ``fair_matching(strategy="weighted")``: the class loss
(:func:`gradient_match_loss`) receives ``row_weights`` ``(n, T)`` whose columns
define ``T`` weighted real targets and returns one distance per target.
``sync`` (FairDD-DC) is one column per group present, ``1/n_g`` on its rows:
the sum over groups of ``match_loss(gw_syn, gw_real_g)``, the exact published
loss (the cosine distance is not linear in the gradient, so no rescaling trick
applies). ``barycenter`` (COBRA-DC) and ``weights`` are one column: the gradient
of a weighted cross-entropy.

Why per-group gradients cost about one backward here: FairDD runs one forward on
the whole batch and one full backward per group, ``K`` backward passes over all
rows. The rows of a group only influence that group's gradient (DC's networks
treat samples independently: instance norm, or BatchNorm frozen in eval mode
during matching), so :func:`real_gradients` runs forward and backward on each
group's rows alone: the ``K`` small passes together do the work of one full
pass. (A vmapped batched backward, ``autograd.grad(..., is_grads_batched=True)``,
still computes ``K`` full-batch backward passes and measured slower on CPU.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ddaudit.data import GroupTensors
from ddaudit.distill._common import (
    MatchingRun,
    Progress,
    SyntheticResult,
    check_common,
    check_positive,
    matching_groups,
    method_name,
)
from ddaudit.errors import ConfigError, InputError
from ddaudit.evaluate import DEFAULT_STRATEGY
from ddaudit.evaluate.runtime import flush_denormals
from ddaudit.hooks import fair_matching

METRICS = ("ours", "mse", "cos")
ERR_METRIC = "unknown gradient distance {metric!r}; use 'ours' (DC's per-row cosine), 'mse' or 'cos'"
ERR_EMPTY_TARGET = "row_weights column {k} has no positive weight; every real target needs at least one row"

#: ``get_loops`` of DatasetCondensation: images per class -> (outer_loop, inner_loop).
LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}

#: Real images per class used to set frozen BatchNorm statistics (DC's ``BNSizePC``).
BN_IMAGES_PER_CLASS = 16

_EPS = 1e-6


def get_loops(ipc: int) -> tuple[int, int]:
    """Outer (image updates) and inner (network epochs) loop counts for ``ipc``.

    DC's table; above 50 images per class ``(100, 10)`` as in FairDD, and between
    table entries the next larger entry.
    """
    check_positive("ipc", ipc)
    if ipc in LOOPS:
        return LOOPS[ipc]
    if ipc > max(LOOPS):
        return (100, 10)
    return LOOPS[min(k for k in LOOPS if k >= ipc)]


def _row_cosine_distance(syn: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``sum_rows (1 - <s_r, g_r> / (|s_r| |g_r| + eps))`` over output rows of one layer."""
    syn = syn.reshape(syn.shape[0], -1)
    real = real.reshape(real.shape[0], -1)
    cosine = (syn * real).sum(-1) / (syn.norm(dim=-1) * real.norm(dim=-1) + _EPS)
    return (1 - cosine).sum()


def match_loss(gw_syn, gw_real, metric: str = "ours") -> torch.Tensor:
    """Distance between two per-parameter gradient lists.

    - ``ours`` (DC's default): for every parameter with two or more dimensions,
      reshape to ``(outputs, -1)`` and sum ``1 - cos`` over output rows; one-dimensional
      parameters (biases, norm affines) contribute 0.
    - ``mse``: ``||vec(gw_syn) - vec(gw_real)||^2`` over all parameters.
    - ``cos``: ``1 - <vec(gw_syn), vec(gw_real)> / (|.| |.| + eps)`` over all parameters.
    """
    if metric not in METRICS:
        raise ConfigError(ERR_METRIC.format(metric=metric))
    gw_syn, gw_real = list(gw_syn), list(gw_real)
    if metric == "ours":
        total = gw_syn[0].new_zeros(())
        for syn, real in zip(gw_syn, gw_real):
            if syn.ndim > 1:
                total = total + _row_cosine_distance(syn, real)
        return total
    syn = torch.cat([g.reshape(-1) for g in gw_syn])
    real = torch.cat([g.reshape(-1) for g in gw_real])
    if metric == "mse":
        return ((syn - real) ** 2).sum()
    return 1 - (syn * real).sum() / (syn.norm() * real.norm() + _EPS)


def real_gradients(
    net: nn.Module, params: list[torch.Tensor], real: torch.Tensor, label: int, row_weights: torch.Tensor
) -> list[list[torch.Tensor]]:
    """One detached real gradient per column ``k``: ``d/dparams sum_i w_ik * CE(net(x_i), label)``.

    Columns with disjoint supports (groups) run forward and backward on their own
    rows only; overlapping columns share one forward and take one backward each.
    """
    supports = row_weights > 0
    for k in range(row_weights.shape[1]):
        if not bool(supports[:, k].any()):
            raise InputError(ERR_EMPTY_TARGET.format(k=k))
    targets = []
    if int(supports.sum(1).max()) <= 1:
        for k in range(row_weights.shape[1]):
            rows = supports[:, k]
            logits = net(real[rows])
            labels = torch.full((logits.shape[0],), label, dtype=torch.long, device=logits.device)
            loss = (F.cross_entropy(logits, labels, reduction="none") * row_weights[rows, k].to(logits)).sum()
            targets.append([g.detach() for g in torch.autograd.grad(loss, params)])
        return targets
    logits = net(real)
    labels = torch.full((logits.shape[0],), label, dtype=torch.long, device=logits.device)
    per_sample = F.cross_entropy(logits, labels, reduction="none")
    last = row_weights.shape[1] - 1
    for k in range(row_weights.shape[1]):
        loss = (per_sample * row_weights[:, k].to(per_sample)).sum()
        targets.append([g.detach() for g in torch.autograd.grad(loss, params, retain_graph=k < last)])
    return targets


def gradient_match_loss(
    real: torch.Tensor,
    gw_syn: list[torch.Tensor],
    *,
    net: nn.Module,
    label: int,
    params: list[torch.Tensor] | None = None,
    metric: str = "ours",
    row_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """DC's loss for one class: distance between ``gw_syn`` and the real cross-entropy gradient.

    ``real`` are real images of class ``label``; ``gw_syn`` the synthetic gradient
    (taken with ``create_graph=True`` so the distance reaches the images). Without
    ``row_weights`` the real gradient is that of the mean cross-entropy (vanilla DC);
    with ``row_weights`` ``(n, T)`` (from ``fair_matching(strategy="weighted")``) it
    returns ``(T,)`` distances, one per weighted real gradient.
    """
    params = list(net.parameters()) if params is None else list(params)
    if row_weights is None:
        logits = net(real)
        labels = torch.full((logits.shape[0],), label, dtype=torch.long, device=logits.device)
        gw_real = [g.detach() for g in torch.autograd.grad(F.cross_entropy(logits, labels), params)]
        return match_loss(gw_syn, gw_real, metric)
    gradients = real_gradients(net, params, real, label, row_weights)
    return torch.stack([match_loss(gw_syn, gw_real, metric) for gw_real in gradients])


def _batchnorm_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _freeze_batchnorm(net, layers, run: MatchingRun) -> None:
    """Set BatchNorm statistics from a few real images per class, then hold them (as DC does)."""
    index = torch.cat([run.sampler.draw(c, BN_IMAGES_PER_CLASS, run.generator) for c in range(run.num_classes)])
    net.train()
    with torch.no_grad():
        net(run.real_x[index.to(run.real_x.device)])
    for layer in layers:
        layer.eval()


def _train_on_synthetic(net, optimizer, images, labels, epochs, batch_size, augment, generator) -> None:
    """DC's inner loop: ``epochs`` shuffled passes over the synthetic set."""
    net.train()
    for _ in range(epochs):
        order = torch.randperm(images.shape[0], generator=generator).to(images.device)
        for start in range(0, images.shape[0], batch_size):
            batch = order[start : start + batch_size]
            x = images[batch]
            if augment is not None:
                x = augment(x, generator=generator)
            loss = F.cross_entropy(net(x), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


@flush_denormals()  # gradients of a fitted network turn subnormal: 13x slower on x86 CPUs
def distill_dc(
    real: GroupTensors,
    *,
    num_classes: int,
    ipc: int,
    iterations: int,
    mode: str = "none",
    weights: torch.Tensor | None = None,
    sample_weights: torch.Tensor | None = None,
    batches: str = "uniform",
    model: str = "ConvNet",
    lr_img: float = 0.1,
    lr_net: float = 0.01,
    batch_real: int = 256,
    batch_train: int = 256,
    dsa: bool = False,
    dsa_strategy: str = DEFAULT_STRATEGY,
    metric: str = "ours",
    init: str = "noise",
    outer_loop: int | None = None,
    inner_loop: int | None = None,
    reduce: str = "sum",
    min_group_size: int = 1,
    attribute: int | list[int] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> SyntheticResult:
    """Distil ``ipc`` images per class from ``real`` by gradient matching (DC; DSA when ``dsa``).

    ``mode``: ``none`` (DC), ``sync`` (FairDD-DC: one gradient match per group present
    in each class batch, summed), ``barycenter`` (COBRA-DC: match the mean of the group
    gradients) or ``weights`` (weighted real cross-entropy; needs ``weights``).
    ``sample_weights`` draws the real batches by weight, as in :func:`distill_dm`.
    Defaults follow DC: SGD on images (lr 0.1, momentum 0.5), on the network (lr 0.01),
    noise initialisation, loops from :func:`get_loops` unless given.
    ``batches="balanced"`` draws each class's real batch evenly over its groups (``real.a``,
    true or pseudo-groups) and ``init="balanced"`` starts the synthetic images on real images
    spread the same way (:mod:`ddaudit.mitigate.balanced`): every group is matched at every step,
    not only when a uniform batch happens to hold it. Both change the published algorithm and
    are off by default. ``attribute`` picks the columns of several protected attributes
    (``real.attrs``, or an ``(n, K)`` ``real.a``) to be fair over: one index, or a list for their
    intersection; by default ``real.a`` as loaded (for several attributes, their intersection).
    """
    weights = check_common(
        real, num_classes=num_classes, ipc=ipc, iterations=iterations, mode=mode, weights=weights, init=init,
        batches=batches, sample_weights=sample_weights,
    )
    real = matching_groups(real, attribute)
    check_positive("batch_real", batch_real)
    check_positive("batch_train", batch_train)
    if metric not in METRICS:
        raise ConfigError(ERR_METRIC.format(metric=metric))
    default_outer, default_inner = get_loops(ipc)
    outer_loop = check_positive("outer_loop", outer_loop if outer_loop is not None else default_outer)
    inner_loop = check_positive("inner_loop", inner_loop if inner_loop is not None else default_inner)
    class_loss = fair_matching(mode=mode, reduce=reduce, strategy="weighted", min_group_size=min_group_size)(
        gradient_match_loss
    )
    run = MatchingRun(
        real, num_classes=num_classes, ipc=ipc, init=init, model=model, lr_img=lr_img, batch_real=batch_real,
        batches=batches, weights=weights, sample_weights=sample_weights, dsa=dsa, dsa_strategy=dsa_strategy, seed=seed, device=device,
    )
    images, labels = run.images, run.labels

    history: list[float] = []
    for iteration in range(iterations):
        net = run.new_network()
        params = [p for p in net.parameters() if p.requires_grad]
        optimizer_net = torch.optim.SGD(net.parameters(), lr=lr_net)
        batchnorm = _batchnorm_layers(net)
        total = 0.0
        for outer in range(outer_loop):
            if batchnorm:
                _freeze_batchnorm(net, batchnorm, run)
            loss = images.new_zeros(())
            for c in range(num_classes):
                index, x_real, x_syn = run.class_batch(c)
                syn_loss = F.cross_entropy(net(x_syn), labels[run.class_rows(c)])
                gw_syn = torch.autograd.grad(syn_loss, params, create_graph=True)
                extra = run.group_arguments(index)
                loss = loss + class_loss(x_real, gw_syn, net=net, label=c, params=params, metric=metric, **extra)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=[images])
            run.optimizer.step()
            total += float(loss.detach())
            if outer == outer_loop - 1:
                break
            _train_on_synthetic(
                net, optimizer_net, images.detach(), labels, inner_loop, batch_train, run.augment, run.generator
            )
        history.append(total / (num_classes * outer_loop))
        if progress is not None:
            progress(iteration + 1, iterations)

    return run.result(
        history,
        meta={
            "method": method_name("DSA" if dsa else "DC", mode),
            "mode": mode,
            "model": model,
            "ipc": ipc,
            "iterations": iterations,
            "outer_loop": outer_loop,
            "inner_loop": inner_loop,
            "lr_img": lr_img,
            "lr_net": lr_net,
            "batch_real": batch_real,
            "sampling": "weights" if sample_weights is not None else batches,
            "dsa": dsa,
            "metric": metric,
            "init": init,
            "seed": seed,
            "attribute": attribute,
            "fair_matching": class_loss.stats.as_dict(),
        },
    )

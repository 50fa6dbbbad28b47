"""Distribution matching (DM, Zhao & Bilen 2023), made fair with ``@fair_matching``.

Written the way the DatasetCondensation scripts are: a plain per-class loss
(:func:`dm_loss`) and a loop that, every iteration, draws a fresh random frozen
network, embeds a real batch and the synthetic images of each class (after the
same DSA transform) and takes one SGD step on the images. Fairness is not in the
loop: the loss is wrapped at run time with ``fair_matching(mode=...)``, so
``mode="sync"`` is FairDD (sum over the groups present in each class batch of
``||mean phi(real_g) - mean phi(syn)||^2``), ``barycenter`` is COBRA's target
and ``weights`` a weighted real mean (e.g. KDE weights). Being a mean-matching
loss, all of them run as one loss call on rescaled real features.

Differences from the reference scripts: all randomness comes from one
``torch.Generator`` seeded by ``seed`` (reproducible on CPU), and the real and
synthetic batches of all classes are embedded in one call each (the same per
sample for instance-norm networks, as DC's BatchNorm branch does).
"""

from __future__ import annotations

import torch

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
from ddaudit.evaluate import DEFAULT_STRATEGY
from ddaudit.hooks import fair_matching


def dm_loss(real_features: torch.Tensor, syn_features: torch.Tensor) -> torch.Tensor:
    """DM's loss for one class: squared distance between the real and synthetic mean embeddings."""
    return torch.sum((real_features.mean(dim=0) - syn_features.mean(dim=0)) ** 2)


def distill_dm(
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
    lr_img: float = 1.0,
    batch_real: int = 256,
    dsa: bool = True,
    dsa_strategy: str = DEFAULT_STRATEGY,
    init: str = "real",
    reduce: str = "sum",
    strategy: str = "auto",
    min_group_size: int = 1,
    attribute: int | list[int] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> SyntheticResult:
    """Distil ``ipc`` images per class from ``real`` (``x``, ``y``, ``a``) by distribution matching.

    ``mode``: ``none`` (DM), ``sync`` (FairDD), ``barycenter`` (COBRA target) or
    ``weights`` (needs ``weights``, one per real row). ``sample_weights`` (one per
    real row, e.g. KDE weights) draws each real batch with probability proportional
    to them (with replacement, from the run's generator) instead of uniformly; it
    combines with any mode. ``reduce``, ``strategy`` and
    ``min_group_size`` go to :func:`~ddaudit.hooks.fair_matching`. Hyper-parameters
    default to DM's: SGD on the images with momentum 0.5, 256 real images per class,
    DSA ``color_crop_cutout_flip_scale_rotate``, real initialisation; ``model``
    (e.g. ``"ConvNetW32"``) and ``iterations`` set the cost.
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
    class_loss = fair_matching(
        mode=mode, reduce=reduce, strategy=strategy, min_group_size=min_group_size, mean_matching=True
    )(dm_loss)
    run = MatchingRun(
        real, num_classes=num_classes, ipc=ipc, init=init, model=model, lr_img=lr_img, batch_real=batch_real,
        batches=batches, weights=weights, sample_weights=sample_weights, dsa=dsa, dsa_strategy=dsa_strategy, seed=seed, device=device,
    )

    history: list[float] = []
    for iteration in range(iterations):
        net = run.new_network()
        net.requires_grad_(False)

        rows, real_batches, syn_batches = [], [], []
        for c in range(num_classes):
            index, x_real, x_syn = run.class_batch(c)
            rows.append(index)
            real_batches.append(x_real)
            syn_batches.append(x_syn)
        with torch.no_grad():
            real_features = net.embed(torch.cat(real_batches)).split([len(r) for r in rows])
        syn_features = net.embed(torch.cat(syn_batches)).split(ipc)

        loss = run.images.new_zeros(())
        for c, index in enumerate(rows):
            loss = loss + class_loss(real_features[c], syn_features[c], **run.group_arguments(index))
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        history.append(float(loss.detach()) / num_classes)
        if progress is not None:
            progress(iteration + 1, iterations)

    return run.result(
        history,
        meta={
            "method": method_name("DM", mode),
            "mode": mode,
            "model": model,
            "ipc": ipc,
            "iterations": iterations,
            "lr_img": lr_img,
            "batch_real": batch_real,
            "sampling": "weights" if sample_weights is not None else batches,
            "dsa": dsa,
            "init": init,
            "seed": seed,
            "attribute": attribute,
            "fair_matching": class_loss.stats.as_dict(),
        },
    )

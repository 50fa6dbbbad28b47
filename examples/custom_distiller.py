"""Make your own distribution-matching loop fair with one decorator, then audit it.

Run it as a script: ``python examples/custom_distiller.py [--iterations 200]``.
The loop below is an ordinary DM loop on ddaudit's embedded Colored-MNIST data;
the only fairness-specific lines are the ``@fair_matching`` decorator and the
``groups=`` keyword at the call site.
"""

from __future__ import annotations

import argparse

import torch

from ddaudit import audit, fair_matching, load_real
from ddaudit.evaluate import create_model
from ddaudit.io import SyntheticSet


@fair_matching(mode="sync", mean_matching=True)  # FairDD: sum over groups of ||mean_g - mean_syn||^2
def class_loss(real_features: torch.Tensor, syn_features: torch.Tensor) -> torch.Tensor:
    return torch.sum((real_features.mean(0) - syn_features.mean(0)) ** 2)


def distill(real, ipc: int, iterations: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    by_class = [torch.nonzero(real.train.y == c).flatten() for c in range(real.num_classes)]
    init = [rows[torch.randperm(len(rows), generator=generator)[:ipc]] for rows in by_class]
    images = torch.cat([real.train.x[rows] for rows in init]).clone().requires_grad_(True)
    optimizer = torch.optim.SGD([images], lr=1.0, momentum=0.5)
    for it in range(iterations):
        net = create_model("ConvNetW32", real.channel, real.num_classes, real.im_size, seed=seed + it)
        net.requires_grad_(False)
        loss = torch.zeros(())
        for c, rows in enumerate(by_class):
            batch = rows[torch.randperm(len(rows), generator=generator)[:64]]
            real_features = net.embed(real.train.x[batch])
            syn_features = net.embed(images[c * ipc:(c + 1) * ipc])
            loss = loss + class_loss(real_features, syn_features, groups=real.train.a[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return images.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args()
    real = load_real("cmnist-fg", n_test=200)
    images = distill(real, args.ipc, args.iterations)
    labels = torch.arange(real.num_classes).repeat_interleave(args.ipc)
    result = audit(
        SyntheticSet(images=images, labels=labels, format="tensors", path="custom-fair-dm"), real,
        protocol="dc", protocol_overrides={"model": "ConvNetW32", "epochs": args.epochs}, num_eval=2,
    )
    metrics = result.metrics
    print(f"accuracy {metrics['accuracy']['mean']:.3f}  DEO_M {metrics['deo_max']['mean']:.3f}  "
          f"DEO_A {metrics['deo_avg']['mean']:.3f}  (loss calls: {class_loss.stats.calls})")


if __name__ == "__main__":
    main()

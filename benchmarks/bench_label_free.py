"""Label-free recovery ablation: surrogate kind and stopping rule, bandwidth, power, cap (no distillation).

For each embedded preset (default ``cmnist-fg`` and ``cmnist-bg`` with 5 %
bias-conflicting digits) and each surrogate, the script trains the surrogate
once on images and class labels only, then derives KDE weights with several
bandwidth / power / cap settings from the same embedding and reports, against
the true colours: AUC of the weights for conflicting vs aligned digits, the
conflicting/aligned mean-weight ratio, the median and smallest effective sample
size per class (as a share of the class), and the adjusted Rand index of the
pseudo-groups (the classifier's predicted class for ``bias`` surrogates, DBSCAN
for ``supcon``). Seconds to a few minutes on a CPU; one JSON line per row and a
Markdown table at the end.

    python benchmarks/bench_label_free.py --threads 2
    python benchmarks/bench_label_free.py --datasets cmnist-fg --surrogates bias-gce-plateau --threads 2

Recorded results: ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from ddaudit.data import load_real
from ddaudit.mitigate.bias_model import BiasModelSettings
from ddaudit.mitigate.kde import (
    class_log_density,
    effective_sample_size,
    inverse_density_weights,
    median_ess_fraction,
    power_for_ess,
)
from ddaudit.mitigate.recovery import group_recovery, weight_recovery
from ddaudit.mitigate.surrogate import SurrogateSettings
from ddaudit.mitigate.without_labels import LabelFreeSettings, label_free

#: name -> LabelFreeSettings (the KDE part is varied afterwards on the same embedding)
SURROGATES = {
    "bias-gce-plateau": LabelFreeSettings(),
    "bias-gce-fixed1": LabelFreeSettings(bias_model=BiasModelSettings(stop="fixed", epochs=1)),
    "bias-gce-fixed10": LabelFreeSettings(bias_model=BiasModelSettings(stop="fixed", epochs=10)),
    "bias-ce-plateau": LabelFreeSettings(bias_model=BiasModelSettings(loss="ce")),
    "supcon-5": LabelFreeSettings(surrogate="supcon", supcon=SurrogateSettings(model="ConvNetW32", epochs=5),
                                  pseudo_method="dbscan"),
}
#: (label, bandwidth, power or None for the ESS rule, min_ess, max_weight)
KDE_VARIANTS = (
    ("scott, auto (ESS 5 %)", "scott", None, 0.05, None),
    ("scott, auto (ESS 3 %)", "scott", None, 0.03, None),
    ("scott, power 1", "scott", 1.0, None, None),
    ("scott, power 0.5", "scott", 0.5, None, None),
    ("scott, power 1, cap 20", "scott", 1.0, None, 20.0),
    ("silverman, auto (ESS 5 %)", "silverman", None, 0.05, None),
)


def rows_for(dataset: str, name: str, args) -> list[dict]:
    real = load_real(dataset, bias_ratio=args.bias_ratio, seed=args.seed)
    y = real.train.y
    aligned = real.meta["bias_aligned_train"]
    start = time.perf_counter()
    found = label_free((real.train.x, y), SURROGATES[name], num_classes=real.num_classes)
    seconds = time.perf_counter() - start
    ari = group_recovery(found.groups, real.train.a, y)["ari"]
    counts = torch.bincount(y)
    rows = []
    for label, bandwidth, power, min_ess, cap in KDE_VARIANTS:
        log_density, _ = class_log_density(found.embeddings, y, bandwidth=bandwidth)
        used = power if power is not None else power_for_ess(log_density, y, min_ess=min_ess, max_weight=cap)
        weights = inverse_density_weights(log_density, y, power=used, max_weight=cap)
        shares = sorted(v / int(counts[c]) for c, v in effective_sample_size(weights, y).items())
        recovery = weight_recovery(weights, aligned)
        rows.append({
            "dataset": dataset, "surrogate": name, "epochs": found.surrogate_epochs, "surrogate_seconds": round(seconds, 1),
            "kde": label, "power": round(used, 3), "auc": round(recovery["auc"], 4), "ratio": round(recovery["ratio"], 1),
            "ess_median": round(median_ess_fraction(weights, y), 4),
            "ess_min": round(shares[0], 4), "ari": round(ari, 3),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="cmnist-fg,cmnist-bg")
    parser.add_argument("--surrogates", default=",".join(SURROGATES))
    parser.add_argument("--bias-ratio", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for dataset in args.datasets.split(","):
        for name in args.surrogates.split(","):
            for row in rows_for(dataset, name, args):
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\n{platform.processor() or 'cpu'}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"bias ratio {args.bias_ratio}")
    print("| dataset | surrogate (epochs) | KDE | power | AUC | ratio | median ESS % | min ESS % | ARI |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['dataset']} | {r['surrogate']} ({r['epochs']}) | {r['kde']} | {r['power']} | {r['auc']:.3f} | "
              f"{r['ratio']} | {100 * r['ess_median']:.1f} | {100 * r['ess_min']:.1f} | {r['ari']:.3f} |")


if __name__ == "__main__":
    main()

"""Coverage of DEO_M intervals on simulated audits with small (class, group) cells.

Each simulated audit draws a test set of 5 to 20 images per cell and E
evaluators whose per-cell accuracies are known (optionally spread across
seeds, with images that are hard for every evaluator at once). The true DEO_M
is the mean over seeds of each seed's DEO_M on the infinite population. Four
interval methods are scored on how often their 95 % interval contains it, how
wide it is, and whether it calls a 100 % vs 0 % gap a certain violation of 0.3:

* ``cp-bound``: :func:`ddaudit.metrics.interval_table` (what gates use);
* ``bootstrap-basic`` / ``bootstrap-percentile``: the report's ``ci``, a
  stratified, paired test-set bootstrap (:func:`ddaudit.metrics.bootstrap_metric_means`);
* ``jeffreys-posterior``: Beta(k + 1/2, n - k + 1/2) draws per evaluator and
  cell, pushed through DEO_M, equal-tailed quantiles of the evaluators' mean.

Run: ``python benchmarks/interval_coverage.py --sims 200`` (seeded, deterministic).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from ddaudit.metrics import bootstrap_metric_means, interval_table
from ddaudit.metrics._disparity import deo

K, G, E = 4, 4, 3


def config_accuracies(name: str) -> tuple[np.ndarray, float, float, float]:
    """``(p[K, G], seed spread on the probit scale (per cell, per evaluator), image correlation)``."""
    own = np.eye(K, G, dtype=bool)
    if name == "extreme (1 vs 0)":
        return np.where(own, 1.0, 0.0), 0.0, 0.0, 0.0
    if name == "all perfect":
        return np.ones((K, G)), 0.0, 0.0, 0.0
    if name == "fair 0.7":
        return np.full((K, G), 0.7), 0.0, 0.0, 0.0
    if name == "middling gap 0.3":
        return np.where(own, 0.8, 0.5), 0.0, 0.0, 0.0
    if name == "middling gap, seed spread":
        return np.where(own, 0.8, 0.5), 0.3, 0.2, 0.6
    if name == "one unfair class, seed spread":
        p = np.full((K, G), 0.85)
        p[0, 0], p[0, 1] = 0.95, 0.35
        return p, 0.3, 0.2, 0.6
    raise KeyError(name)


CONFIGS = ("extreme (1 vs 0)", "all perfect", "fair 0.7", "middling gap 0.3", "middling gap, seed spread",
           "one unfair class, seed spread")


def seed_accuracies(p, cell_spread, eval_spread, shape, rng):
    """Per-seed cell accuracies: the probit of ``p`` shifted per cell and per evaluator (0 and 1 stay put)."""
    with np.errstate(divide="ignore"):
        base = stats.norm.ppf(p)
    shift = cell_spread * rng.standard_normal((*shape, K, G)) + eval_spread * rng.standard_normal((*shape, 1, 1))
    return stats.norm.cdf(base + shift)


def true_deo_max(name: str, rng, seeds: int = 40_000) -> float:
    p, cell_spread, eval_spread, _ = config_accuracies(name)
    if cell_spread == eval_spread == 0:
        return float(deo(p)[0])
    return float(np.mean(deo(seed_accuracies(p, cell_spread, eval_spread, (seeds,), rng))[0]))


def simulate(name: str, sims: int, rng, low: int = 5, high: int = 20):
    """``(correct[S, E, K, G], total[S, K, G], hits[S, E, K, G, high], mask[S, K, G, high])``."""
    p, cell_spread, eval_spread, rho = config_accuracies(name)
    total = rng.integers(low, high + 1, (sims, K, G))
    mask = np.arange(high)[None, None, None, :] < total[..., None]
    with np.errstate(divide="ignore"):
        cut = stats.norm.ppf(seed_accuracies(p, cell_spread, eval_spread, (sims, E), rng))
    shared = rng.standard_normal((sims, 1, K, G, high))
    own = rng.standard_normal((sims, E, K, G, high))
    hits = (rho * shared + np.sqrt(1 - rho ** 2) * own < cut[..., None]) & mask[:, None]
    return hits.sum(axis=-1), total, hits, mask


def posterior_interval(correct, total, rng, draws=1000, confidence=0.95):
    a = correct[None] + 0.5
    b = np.broadcast_to(total[:, None], correct.shape)[None] - correct[None] + 0.5
    samples = rng.beta(np.broadcast_to(a, (draws, *a.shape[1:])), np.broadcast_to(b, (draws, *b.shape[1:])))
    values = deo(samples)[0].mean(axis=-1)       # (draws, S)
    tail = (1 - confidence) / 2
    return np.quantile(values, tail, axis=0), np.quantile(values, 1 - tail, axis=0)


def bootstrap_intervals(hits, mask, n_boot, confidence=0.95):
    lows = {"basic": [], "percentile": []}
    highs = {"basic": [], "percentile": []}
    tail = (1 - confidence) / 2
    for sim in range(hits.shape[0]):
        k, g, i = np.nonzero(mask[sim])
        y, a = k.astype(np.int64), g.astype(np.int64)
        right = hits[sim][:, k, g, i]
        preds = np.where(right, y[None], (y[None] + 1) % K)
        boot = bootstrap_metric_means(y, a, preds, num_classes=K, num_groups=G, n_boot=n_boot, seed=sim)["deo_max"]
        estimate = float(np.mean(deo(np.stack([np.bincount(y * G + a, weights=r, minlength=K * G).reshape(K, G)
                                                for r in right]) / np.bincount(y * G + a, minlength=K * G).reshape(K, G))[0]))
        q_low, q_high = np.quantile(boot, [tail, 1 - tail])
        lows["percentile"].append(q_low)
        highs["percentile"].append(q_high)
        lows["basic"].append(max(0.0, 2 * estimate - q_high))
        highs["basic"].append(min(1.0, 2 * estimate - q_low))
    return {kind: (np.array(lows[kind]), np.array(highs[kind])) for kind in lows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=200, help="simulated audits per configuration")
    parser.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples per audit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"K={K} classes x G={G} groups, E={E} evaluators, 5-20 test images per cell, "
          f"{args.sims} audits per configuration, 95 % intervals")
    print(f"{'configuration':32s} {'truth':>6s} {'method':22s} {'coverage':>9s} {'width':>6s} {'low>0.3':>8s} {'s':>6s}")
    for name in CONFIGS:
        truth = true_deo_max(name, rng)
        correct, total, hits, mask = simulate(name, args.sims, rng)
        rows = {}
        start = time.perf_counter()
        table = interval_table(correct, total[:, None])["deo_max"]
        rows["cp-bound"] = (table["low"], table["high"], time.perf_counter() - start)
        start = time.perf_counter()
        rows["jeffreys-posterior"] = (*posterior_interval(correct, total, rng), time.perf_counter() - start)
        start = time.perf_counter()
        boot = bootstrap_intervals(hits, mask, args.n_boot)
        seconds = time.perf_counter() - start
        rows["bootstrap-basic"] = (*boot["basic"], seconds)
        rows["bootstrap-percentile"] = (*boot["percentile"], seconds)
        for method, (low, high, seconds) in rows.items():
            covered = np.mean((low <= truth + 1e-9) & (truth - 1e-9 <= high))
            print(f"{name:32s} {truth:6.3f} {method:22s} {covered:9.3f} {np.mean(high - low):6.3f} "
                  f"{np.mean(low > 0.3):8.3f} {seconds:6.2f}")


if __name__ == "__main__":
    main()

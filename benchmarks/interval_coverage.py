"""Coverage and width of the gating intervals on simulated audits, new construction against the previous one.

Each simulated audit draws a test set with known per-cell accuracies and E
evaluators (optionally spread across seeds, with images that are hard for every
evaluator at once). A wrong prediction names the next class, so every
one-vs-rest rate and precision has a known population value too. The truth of
a metric is the mean over seeds of each seed's population value, what the
gating interval is meant to contain. Two sections:

* ``metrics``: every gated metric on the issue's configurations (10 x 2 x 100
  with a gap of 0.2 in every class; one unfair class among nine fair ones;
  evaluators unfair on different classes; 10 x 10 x 15 at accuracy about 0.65
  with seed spread), the miss rate of each end and the mean width, for
  :func:`ddaudit.metrics.interval_table` (new) and the previous construction
  (``benchmarks/_previous_intervals.py``: per-evaluator Clopper-Pearson bounds
  averaged and widened in quadrature, or the t-interval over evaluators where
  it had none);
* ``small-cells``: DEO_M on 4 x 4 cells of 5 to 20 images against the report's
  bootstrap and a Jeffreys posterior, as recorded before.

Run: ``python benchmarks/interval_coverage.py --sims 400`` (seeded, deterministic).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _previous_intervals as previous  # noqa: E402

from ddaudit.metrics import bootstrap_metric_means, interval_table  # noqa: E402
from ddaudit.metrics._disparity import deo  # noqa: E402

GATED = ("accuracy", "worst_group_accuracy", "deo_max", "deo_avg", "accuracy_gap", "class_accuracy_gap",
         "equalized_odds_difference", "demographic_parity_difference", "sufficiency_gap_max")


# ---------------------------------------------------------------- configurations


def _probit_field(base: float, spread: float, shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return stats.norm.cdf(stats.norm.ppf(base) + spread * rng.standard_normal(shape))


def configurations() -> dict[str, dict]:
    """Each: ``p`` ``(E or 1, K, G)`` accuracies, cell size ``n``, ``E``, seed spreads (probit), image correlation."""
    K = 10
    every = np.tile([0.8, 0.6], (K, 1))
    one = np.full((K, 2), 0.85)
    one[0] = [0.9, 0.6]
    different = np.tile([0.8, 0.8], (3, K, 1)).astype(float)
    for e in range(3):
        different[e, e::3] = [0.9, 0.5]
    colours = _probit_field(0.65, 0.35, (K, K), seed=5)
    return {
        "10x2x100, gap 0.2 in every class": dict(p=every[None], n=100, E=3, cell=0.0, evaluator=0.0, rho=0.6),
        "10x2x100, gap 0.2 in every class, 5 evaluators": dict(p=every[None], n=100, E=5, cell=0.0, evaluator=0.0,
                                                               rho=0.6),
        "10x2x100, one unfair class (0.3)": dict(p=one[None], n=100, E=3, cell=0.15, evaluator=0.1, rho=0.6),
        "10x2x100, evaluators unfair on different classes": dict(p=different, n=100, E=3, cell=0.0, evaluator=0.0,
                                                                 rho=0.6),
        "10x10x15, accuracy ~0.65, seed spread": dict(p=colours[None], n=15, E=3, cell=0.3, evaluator=0.15, rho=0.5),
    }


def seed_accuracies(config, shape, rng) -> np.ndarray:
    """Per-seed cell accuracies ``(*shape, E, K, G)``: probit shifts per cell and per evaluator (0 and 1 stay put)."""
    p = np.broadcast_to(config["p"], (config["E"], *config["p"].shape[-2:]))
    with np.errstate(divide="ignore"):
        base = stats.norm.ppf(p)
    cell = config["cell"] * rng.standard_normal((*shape, *p.shape))
    evaluator = config["evaluator"] * rng.standard_normal((*shape, p.shape[0], 1, 1))
    return stats.norm.cdf(base + cell + evaluator)


def population_metrics(p: np.ndarray) -> dict[str, np.ndarray]:
    """Every gated metric of accuracies ``p`` ``(..., K, G)`` with equal cells and a wrong answer naming the next class."""
    K = p.shape[-2]
    out = {"accuracy": p.mean(axis=(-2, -1)), "worst_group_accuracy": p.min(axis=(-2, -1))}
    out["deo_max"], out["deo_avg"] = deo(p)
    group, klass = p.mean(axis=-2), p.mean(axis=-1)
    out["accuracy_gap"] = group.max(axis=-1) - group.min(axis=-1)
    out["class_accuracy_gap"] = klass.max(axis=-1) - klass.min(axis=-1)
    missed_into = 1 - np.roll(p, 1, axis=-2)             # share of class k-1 predicted as k
    fpr = missed_into / (K - 1)
    gap = lambda r: r.max(axis=-1) - r.min(axis=-1)  # noqa: E731
    out["equalized_odds_difference"] = np.fmax(gap(p), gap(fpr)).max(axis=-1)
    out["demographic_parity_difference"] = gap((p + missed_into) / K).max(axis=-1)
    out["sufficiency_gap_max"] = gap(p / (p + missed_into)).max(axis=-1)
    return out


def truths(config, rng, seeds: int = 20_000) -> dict[str, float]:
    if config["cell"] == config["evaluator"] == 0:
        values = population_metrics(np.broadcast_to(config["p"], (config["E"], *config["p"].shape[-2:])))
        return {name: float(np.mean(v)) for name, v in values.items()}
    values = population_metrics(seed_accuracies(config, (seeds // config["E"] + 1,), rng))
    return {name: float(np.mean(v)) for name, v in values.items()}


def simulate(config, sims: int, rng):
    """``correct (S, E, K, G)``, ``total (K, G)``, ``predicted (S, E, K, G)``, ``disagreement (S, K, G)``."""
    E, n = config["E"], config["n"]
    p = seed_accuracies(config, (sims,), rng)
    K, G = p.shape[-2:]
    with np.errstate(divide="ignore"):
        cut = stats.norm.ppf(p)
    shared = rng.standard_normal((sims, 1, K, G, n))
    own = rng.standard_normal((sims, E, K, G, n))
    right = (config["rho"] * shared + np.sqrt(1 - config["rho"] ** 2) * own) < cut[..., None]
    correct = right.sum(axis=-1)
    total = np.full((K, G), n)
    predicted = correct + np.roll(n - correct, 1, axis=-2)
    return correct, total, predicted, right.astype(np.float64).var(axis=1, ddof=1).sum(axis=-1)


def previous_rows(correct, total, predicted, confidence=0.95):
    """The previous gating intervals, and the t-interval over evaluators where there was none."""
    table = previous.interval_table(correct, total, confidence, predicted=predicted)
    rows = {name: (table[name]["low"], table[name]["high"]) for name in table}
    values = population_free_values(correct, total, predicted)
    E = correct.shape[-3]
    for name in ("demographic_parity_difference", "sufficiency_gap_max"):
        v = values[name]
        mean = v.mean(axis=-1)
        half = stats.t.ppf(1 - (1 - confidence) / 2, E - 1) * v.std(axis=-1, ddof=1) / np.sqrt(E)
        rows[name] = (np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1))
    return rows


def population_free_values(correct, total, predicted):
    """Per-evaluator sample values of the one-vs-rest metrics from counts."""
    size = total.sum(axis=-2)
    selection = predicted / size
    precision = np.divide(correct, predicted, out=np.full(correct.shape, np.nan), where=predicted > 0)
    gap = lambda r: np.nanmax(r, axis=-1) - np.nanmin(r, axis=-1)  # noqa: E731
    return {"demographic_parity_difference": gap(selection).max(axis=-1),
            "sufficiency_gap_max": np.nanmax(gap(precision), axis=-1)}


def run_metrics(sims: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(f"{sims} simulated audits per configuration, 95 % intervals; miss = share of audits whose end is "
          "on the wrong side of the truth (target <= 0.025 each)")
    header = (f"{'configuration':50s} {'metric':30s} {'truth':>6s} | {'new: miss lo':>12s} {'miss hi':>7s} "
              f"{'width':>6s} {'low':>6s} | {'old: miss lo':>12s} {'miss hi':>7s} {'width':>6s} {'low':>6s}")
    print(header)
    for name, config in configurations().items():
        truth = truths(config, rng)
        correct, total, predicted, disagreement = simulate(config, sims, rng)
        start = time.perf_counter()
        new = interval_table(correct, total, predicted=predicted, disagreement=disagreement)
        seconds_new = time.perf_counter() - start
        start = time.perf_counter()
        old = previous_rows(correct, total, predicted)
        seconds_old = time.perf_counter() - start
        for metric in GATED:
            t = truth[metric]
            cells = []
            for low, high in ((new[metric]["low"], new[metric]["high"]), old.get(metric, (None, None))):
                if low is None:
                    cells.append(f"{'n/a':>12s} {'':>7s} {'':>6s} {'':>6s}")
                    continue
                miss_low = np.mean(low > t + 1e-9)
                miss_high = np.mean(high < t - 1e-9)
                cells.append(f"{miss_low:12.4f} {miss_high:7.4f} {np.mean(high - low):6.3f} {np.mean(low):6.3f}")
            print(f"{name:50s} {metric:30s} {t:6.3f} | {cells[0]} | {cells[1]}")
        print(f"{name:50s} {'(seconds for all audits)':30s} {'':6s} | {seconds_new:12.2f} | {seconds_old:12.2f}")


# ---------------------------------------------------------------- small cells (DEO_M, as recorded before)

K4, G4, E4 = 4, 4, 3
SMALL = ("extreme (1 vs 0)", "all perfect", "fair 0.7", "middling gap 0.3", "middling gap, seed spread",
         "one unfair class, seed spread")


def small_config(name: str):
    own = np.eye(K4, G4, dtype=bool)
    if name == "extreme (1 vs 0)":
        return np.where(own, 1.0, 0.0), 0.0, 0.0, 0.0
    if name == "all perfect":
        return np.ones((K4, G4)), 0.0, 0.0, 0.0
    if name == "fair 0.7":
        return np.full((K4, G4), 0.7), 0.0, 0.0, 0.0
    if name == "middling gap 0.3":
        return np.where(own, 0.8, 0.5), 0.0, 0.0, 0.0
    if name == "middling gap, seed spread":
        return np.where(own, 0.8, 0.5), 0.3, 0.2, 0.6
    p = np.full((K4, G4), 0.85)
    p[0, 0], p[0, 1] = 0.95, 0.35
    return p, 0.3, 0.2, 0.6


def small_seed_accuracies(p, cell_spread, eval_spread, shape, rng):
    with np.errstate(divide="ignore"):
        base = stats.norm.ppf(p)
    shift = cell_spread * rng.standard_normal((*shape, K4, G4)) + eval_spread * rng.standard_normal((*shape, 1, 1))
    return stats.norm.cdf(base + shift)


def small_simulate(name, sims, rng, low=5, high=20):
    p, cell_spread, eval_spread, rho = small_config(name)
    truth = float(deo(p)[0]) if cell_spread == eval_spread == 0 else float(
        np.mean(deo(small_seed_accuracies(p, cell_spread, eval_spread, (40_000,), rng))[0]))
    total = rng.integers(low, high + 1, (sims, K4, G4))
    mask = np.arange(high)[None, None, None, :] < total[..., None]
    with np.errstate(divide="ignore"):
        cut = stats.norm.ppf(small_seed_accuracies(p, cell_spread, eval_spread, (sims, E4), rng))
    shared = rng.standard_normal((sims, 1, K4, G4, high))
    own = rng.standard_normal((sims, E4, K4, G4, high))
    hits = (rho * shared + np.sqrt(1 - rho ** 2) * own < cut[..., None]) & mask[:, None]
    return truth, hits.sum(axis=-1), total, hits, mask


def posterior_interval(correct, total, rng, draws=1000, confidence=0.95):
    a = correct[None] + 0.5
    b = np.broadcast_to(total[:, None], correct.shape)[None] - correct[None] + 0.5
    samples = rng.beta(np.broadcast_to(a, (draws, *a.shape[1:])), np.broadcast_to(b, (draws, *b.shape[1:])))
    values = deo(samples)[0].mean(axis=-1)
    tail = (1 - confidence) / 2
    return np.quantile(values, tail, axis=0), np.quantile(values, 1 - tail, axis=0)


def bootstrap_intervals(hits, mask, n_boot, confidence=0.95):
    lows, highs = {"basic": [], "percentile": []}, {"basic": [], "percentile": []}
    tail = (1 - confidence) / 2
    for sim in range(hits.shape[0]):
        k, g, i = np.nonzero(mask[sim])
        y, a = k.astype(np.int64), g.astype(np.int64)
        right = hits[sim][:, k, g, i]
        preds = np.where(right, y[None], (y[None] + 1) % K4)
        boot = bootstrap_metric_means(y, a, preds, num_classes=K4, num_groups=G4, n_boot=n_boot, seed=sim)["deo_max"]
        sizes = np.bincount(y * G4 + a, minlength=K4 * G4).reshape(K4, G4)
        estimate = float(np.mean(deo(np.stack([np.bincount(y * G4 + a, weights=r, minlength=K4 * G4).reshape(K4, G4)
                                                for r in right]) / sizes)[0]))
        q_low, q_high = np.quantile(boot, [tail, 1 - tail])
        lows["percentile"].append(q_low)
        highs["percentile"].append(q_high)
        lows["basic"].append(max(0.0, 2 * estimate - q_high))
        highs["basic"].append(min(1.0, 2 * estimate - q_low))
    return {kind: (np.array(lows[kind]), np.array(highs[kind])) for kind in lows}


def run_small_cells(sims: int, n_boot: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(f"K={K4} classes x G={G4} groups, E={E4} evaluators, 5-20 test images per cell, "
          f"{sims} audits per configuration, 95 % intervals of DEO_M")
    print(f"{'configuration':32s} {'truth':>6s} {'method':22s} {'miss lo':>8s} {'miss hi':>8s} {'width':>6s} "
          f"{'low>0.3':>8s}")
    for name in SMALL:
        truth, correct, total, hits, mask = small_simulate(name, sims, rng)
        rows = {}
        dis = hits.astype(np.float64).var(axis=1, ddof=1).sum(axis=-1)
        table = interval_table(correct, total[:, None], disagreement=dis)["deo_max"]
        rows["gating (new)"] = (table["low"], table["high"])
        table = previous.interval_table(correct, total[:, None])["deo_max"]
        rows["gating (previous)"] = (table["low"], table["high"])
        rows["jeffreys-posterior"] = posterior_interval(correct, total, rng)
        if n_boot:
            boot = bootstrap_intervals(hits, mask, n_boot)
            rows["bootstrap-basic"] = boot["basic"]
            rows["bootstrap-percentile"] = boot["percentile"]
        for method, (low, high) in rows.items():
            print(f"{name:32s} {truth:6.3f} {method:22s} {np.mean(low > truth + 1e-9):8.3f} "
                  f"{np.mean(high < truth - 1e-9):8.3f} {np.mean(high - low):6.3f} {np.mean(low > 0.3):8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=400, help="simulated audits per configuration")
    parser.add_argument("--n-boot", type=int, default=0, help="bootstrap resamples per small-cell audit (0: skip)")
    parser.add_argument("--section", choices=("all", "metrics", "small-cells"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.section in ("all", "metrics"):
        run_metrics(args.sims, args.seed)
    if args.section in ("all", "small-cells"):
        run_small_cells(args.sims, args.n_boot, args.seed)


if __name__ == "__main__":
    main()

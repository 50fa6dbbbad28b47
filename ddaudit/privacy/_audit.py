"""The ``privacy`` report section: membership-attack figures with intervals, overall, per group and per class.

Each evaluator trained on the distilled set is one target model; a figure is
the mean over targets, and its interval a percentile bootstrap that resamples
members and non-members separately (the same rows for every target). The
random-subset reference's models never saw most members, so they calibrate the
attack (offline LiRA); rows of that subset are left out of the calibrated
attack. The references are attacked with the loss attack too: the distilled
set's advantage over them is the privacy amplification factor.
"""

from __future__ import annotations

import numpy as np
import torch

from ddaudit.privacy._roc import auc, needed_non_members, tpr_at_fpr
from ddaudit.privacy._scores import calibrated, log_confidence, scaled_confidence

#: False-positive rates reported, and the keys their TPR goes under.
FPRS = {"tpr_at_fpr_1pct": 0.01, "tpr_at_fpr_0_1pct": 0.001}
INTERVAL_METHOD = "stratified row bootstrap (percentile), members and non-members resampled apart; mean over evaluators"
ATTACKS = {"loss": "loss threshold (Yeom et al. 2018)",
           "calibrated": "difficulty-calibrated confidence against the random-subset reference (offline LiRA)"}


def attack_figures(scores: np.ndarray, is_member: np.ndarray, *, n_boot: int, confidence: float,
                   seed: int) -> dict:
    """AUC and TPR at each of :data:`FPRS`, with intervals, of scores ``(E, N)`` (higher: member)."""
    scores = np.atleast_2d(np.asarray(scores, float))
    is_member = np.asarray(is_member, bool)
    s1, s0 = scores[:, is_member], scores[:, ~is_member]
    n1, n0 = s1.shape[1], s0.shape[1]
    out: dict = {"members": int(n1), "non_members": int(n0)}
    if n1 == 0 or n0 == 0:
        return {**out, "auc": None, "auc_interval": None, **{k: None for k in FPRS},
                "note": "needs both members and non-members"}
    figures = {"auc": lambda a, b: auc(a, b)}
    for key, fpr in FPRS.items():
        if n0 >= needed_non_members(fpr):
            figures[key] = lambda a, b, fpr=fpr: tpr_at_fpr(a, b, fpr)
        else:
            out[key], out[f"{key}_interval"] = None, None
            out[f"{key}_note"] = f"needs at least {needed_non_members(fpr)} non-members, has {n0}"
    rng = np.random.default_rng([seed, 26, n1, n0])
    draws = (rng.integers(n1, size=(n_boot, n1)), rng.integers(n0, size=(n_boot, n0))) if n_boot else None
    alpha = (1 - confidence) / 2
    for key, figure in figures.items():
        out[key] = float(np.mean(figure(s1, s0)))
        if draws is None:
            out[f"{key}_interval"] = None
            continue
        boot = np.mean([figure(s1[e][draws[0]], s0[e][draws[1]]) for e in range(len(scores))], axis=0)
        out[f"{key}_interval"] = [float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))]
    out["interval_method"] = INTERVAL_METHOD if draws is not None else None
    return out


def attack_summary(scores: np.ndarray, is_member: np.ndarray, y: np.ndarray, a: np.ndarray, *, n_boot: int,
                   confidence: float, seed: int, class_names, group_names) -> dict:
    """:func:`attack_figures` overall, per protected group and per class."""
    common = dict(n_boot=n_boot, confidence=confidence, seed=seed)
    summary = attack_figures(scores, is_member, **common)
    summary["per_group"] = [{"group": str(name), **attack_figures(scores[:, a == g], is_member[a == g], **common)}
                            for g, name in enumerate(group_names) if (a == g).any()]
    summary["per_class"] = [{"class": str(name), **attack_figures(scores[:, y == c], is_member[y == c], **common)}
                            for c, name in enumerate(class_names) if (y == c).any()]
    return summary


def privacy_section(target_logits: torch.Tensor, y: torch.Tensor, a: torch.Tensor, is_member: np.ndarray, *,
                    reference_logits: dict[str, torch.Tensor], in_reference_subset: np.ndarray | None,
                    n_boot: int, confidence: float, seed: int, class_names, group_names, source: str) -> dict:
    """The section: attacks on the distilled set's evaluators, the references' exposure, the amplification.

    ``target_logits`` and each reference's are ``(E, N, K)`` on the candidate
    rows (members first or not: ``is_member`` says); ``in_reference_subset``
    marks candidates that trained the random-subset reference.
    """
    y_np, a_np = y.numpy(), a.numpy()
    names = dict(class_names=class_names, group_names=group_names)
    common = dict(n_boot=n_boot, confidence=confidence, seed=seed, **names)
    attacks = {"loss": attack_summary(log_confidence(target_logits, y), is_member, y_np, a_np, **common)}
    if "random_subset" in reference_logits:
        out = np.ones(len(y_np), bool) if in_reference_subset is None else ~in_reference_subset
        score = calibrated(scaled_confidence(target_logits, y)[:, out],
                           scaled_confidence(reference_logits["random_subset"], y)[:, out])
        attacks["calibrated"] = attack_summary(score, is_member[out], y_np[out], a_np[out], **common)
        attacks["calibrated"]["left_out_reference_rows"] = int((~out).sum())
    for name, summary in attacks.items():
        summary["attack"] = ATTACKS[name]
    references = {name: attack_summary(log_confidence(logits, y), is_member, y_np, a_np, **common)
                  for name, logits in reference_logits.items()}
    strongest = max(attacks, key=lambda name: attacks[name]["auc"] if attacks[name]["auc"] is not None else -1)
    headline = attacks[strongest]
    gated = {key: headline.get(key) for key in ("auc", "auc_interval", *FPRS, *(f"{k}_interval" for k in FPRS))}
    return {
        **gated,
        "interval_method": INTERVAL_METHOD,
        "gated_attack": strongest,
        "members": int(np.sum(is_member)),
        "non_members": int(np.sum(~is_member)),
        "non_member_source": source,
        "non_members_needed": {key: needed_non_members(fpr) for key, fpr in FPRS.items()},
        "attacks": attacks,
        "references": references,
        "amplification": {name: _amplification(attacks["loss"], ref) for name, ref in references.items()},
    }


#: Below this reference advantage (|AUC - 0.5|) the advantage ratio is not reported: it would be noise.
MIN_REFERENCE_ADVANTAGE = 0.01


def _amplification(target: dict, reference: dict) -> dict:
    """Attack advantage (AUC - 0.5) of the distilled set over a reference's: ratio and AUC difference."""
    t, r = target.get("auc"), reference.get("auc")
    if t is None or r is None:
        return {"attack": "loss", "advantage_ratio": None, "auc_difference": None}
    ratio = (t - 0.5) / (r - 0.5) if abs(r - 0.5) >= MIN_REFERENCE_ADVANTAGE else None
    return {"attack": "loss", "advantage_ratio": ratio, "auc_difference": t - r}

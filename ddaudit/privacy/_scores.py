"""Membership scores from evaluator logits: the loss attack and the calibrated (offline LiRA-style) attack.

Higher scores mean "member". Yeom et al. (2018) threshold the loss on the true
label; Carlini et al. (2022) score the logit-scaled confidence
``phi = log(p / (1 - p))`` against its distribution under models that never saw
the row (offline LiRA). With a handful of reference models a per-row mean and
one pooled variance is what that paper recommends; a pooled variance does not
change the ranking, so the calibrated score is ``(phi - mean_out(phi)) / sd``.
"""

from __future__ import annotations

import numpy as np
import torch


def log_confidence(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Log-probability of the true label, ``(E, N)``: minus the cross-entropy loss."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    return logp.gather(-1, labels.view(1, -1, 1).expand(logp.shape[0], -1, 1)).squeeze(-1).numpy()


def scaled_confidence(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """``phi = log p_y - log(1 - p_y)`` per evaluator and row, ``(E, N)``, computed from logits without overflow."""
    z = logits.double()
    index = labels.view(1, -1, 1).expand(z.shape[0], -1, 1)
    true = z.gather(-1, index).squeeze(-1)
    others = z.scatter(-1, index, float("-inf"))
    return (true - torch.logsumexp(others, dim=-1)).numpy()


def calibrated(target_phi: np.ndarray, out_phi: np.ndarray) -> np.ndarray:
    """Each target model's ``phi`` against the OUT models' mean for the same row, over one pooled sd."""
    centre = out_phi.mean(axis=0)
    spread = float(np.sqrt(out_phi.var(axis=0).mean())) if out_phi.shape[0] > 1 else 1.0
    return (target_phi - centre) / (spread if spread > 0 else 1.0)

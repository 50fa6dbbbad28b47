"""Membership-inference audit of a distilled set: does a model trained on it reveal its real training rows?

:func:`membership_split` picks members and composition-matched non-members;
:mod:`._scores` turns evaluator logits into attack scores; :mod:`._roc` reads
AUC and TPR at low FPR; :func:`privacy_section` builds the report section.
"""

from ddaudit.privacy._audit import FPRS, attack_figures, attack_summary, privacy_section
from ddaudit.privacy._roc import auc, needed_non_members, tpr_at_fpr
from ddaudit.privacy._scores import calibrated, log_confidence, scaled_confidence
from ddaudit.privacy._split import MembershipSplit, as_member_mask, membership_split, read_members

__all__ = [
    "FPRS", "MembershipSplit", "as_member_mask", "attack_figures", "attack_summary", "auc", "calibrated",
    "log_confidence", "membership_split", "needed_non_members", "privacy_section", "read_members",
    "scaled_confidence", "tpr_at_fpr",
]

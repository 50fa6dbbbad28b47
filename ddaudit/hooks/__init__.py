"""Make an existing distiller fair: the ``@fair_matching`` decorator and its group sources.

``fair_matching`` wraps a per-class matching loss; the groups of the real rows come
from a ``groups=`` keyword, a :class:`GroupTagged` batch or a :func:`group_context`.
Patchers for third-party codebases live in :mod:`ddaudit.hooks.patchers`
(``with ddaudit.hooks.patch("datasetcondensation", "main_DM.py", ...) as session:``).
"""

from __future__ import annotations

from ddaudit._lazy import lazy_getattr
from ddaudit.hooks.context import GroupContext, GroupTagged, current_group_context, group_context
from ddaudit.hooks.fair_matching import FairMatchingLoss, MatchingStats, SmallGroupWarning, fair_matching

__all__ = [
    "FairMatchingLoss",
    "GroupContext",
    "GroupTagged",
    "MatchingStats",
    "SmallGroupWarning",
    "current_group_context",
    "fair_matching",
    "group_context",
    "patch",
]


#: ``patch`` loads the patcher machinery only when asked for.
__getattr__ = lazy_getattr(__name__, {".patchers": ("patch",)})

"""The base class of every codebase's patcher, below the session that runs them.

Patchers import it from here, not from :mod:`._session`, which imports the
adapter patcher: one-way imports, no circle.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

from ddaudit.errors import PatchError
from ddaudit.hooks.patchers._checks import require_call_site
from ddaudit.mitigate.groups import MODES

ERR_NOTHING_SAMPLED = (
    "{codebase}: {script} ran with --sample-by-weight but drew no real batch through np.random.permutation "
    "of its training-row indices; this looks like another version or fork, or the run did no distillation step"
)
ERR_NOTHING_BALANCED = (
    "{codebase}: {script} ran with --batches balanced but drew no class batch through np.random.permutation "
    "of one class's training-row indices; this looks like another version or fork, or the run did no distillation step"
)
MIXED_CLASS_NOTE = "--batches balanced: {draws} draws spanning several classes kept the script's own order"
ERR_NOTHING_INTERCEPTED = (
    "{codebase}: {script} ran with the patches applied but no loss call reached them "
    "(expected {site}); this looks like another version or fork, or the run did no distillation step"
)


class Patcher:
    """Base class: what one codebase needs patched. Subclasses register with ``register_patcher``."""

    codebase: ClassVar[str] = ""
    modes: ClassVar[tuple[str, ...]] = MODES
    #: The loss site the patch must see at least once, named in the no-interception error.
    expected_site: ClassVar[str] = "a matching-loss call"
    #: Whether ``experts`` (expert-training strategy) means anything for this codebase.
    trains_experts: ClassVar[bool] = False
    #: Whether real batches are drawn through the recorded ``np.random.permutation``
    #: (``--sample-by-weight``, ``--batches balanced``).
    draws_by_permutation: ClassVar[bool] = False

    def __init__(self, session) -> None:
        """*session*: the :class:`~._session.PatchSession` this patcher serves."""
        self.session = session

    def prepare(self) -> None:
        """Check the codebase and install the module-level patches (before the script runs)."""
        raise NotImplementedError

    def prepare_script(self, namespace: dict) -> None:
        """Patch the script's own globals once its definitions have run (optional)."""

    def check_arguments(self, argv: Sequence[str]) -> None:
        """Refuse script arguments that conflict with the patch (optional; before the script runs)."""

    def requires_interception(self) -> bool:
        return self.session.mode != "none"

    def require_recorded_draws(self) -> None:
        """Refuse a script that draws its real batches other than by ``np.random.permutation`` when the
        run needs to know their rows (a fair mode or a groups table): :class:`DrawRecorder` finds them there."""
        session = self.session
        drawn_by_ddaudit = session.sample_by_weight or session.batches == "balanced"
        if session.mode != "none" or session.table.groups is not None or drawn_by_ddaudit:
            require_call_site(
                self.codebase, session.script.name, session.source, r"np\.random\.permutation\s*\(",
                "draw real batches with np.random.permutation(indices_class[c])",
            )

    def finish(self) -> None:
        """After a successful run: refuse to report a fair run that changed nothing."""
        session = self.session
        summary = session.summary
        if self.requires_interception() and summary.intercepted_calls == 0:
            raise PatchError(
                ERR_NOTHING_INTERCEPTED.format(
                    codebase=self.codebase, script=session.script.name, site=self.expected_site
                )
            )
        if session.sample_by_weight and session.recorder.weighted == 0:
            raise PatchError(ERR_NOTHING_SAMPLED.format(codebase=self.codebase, script=session.script.name))
        if session.batches == "balanced" and session.recorder.balanced_draws == 0:
            raise PatchError(ERR_NOTHING_BALANCED.format(codebase=self.codebase, script=session.script.name))
        if session.batches == "balanced" and session.recorder.mixed_class_draws:
            summary.note(MIXED_CLASS_NOTE.format(draws=session.recorder.mixed_class_draws))

"""The privacy and robustness audits as one optional step of :func:`ddaudit.auditing.audit`.

:class:`AttackPlan` checks the options before anything is loaded or trained,
draws the membership split before training (so a bad ``--members`` file or
overlapping splits stop the run first), and afterwards turns the kept
evaluators into the ``privacy`` and ``robustness`` report sections.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddaudit.choices import PGD_BUDGETS
from ddaudit.errors import ConfigError

NEEDS_PRIVACY = "--members names the rows the set was distilled from for the membership audit: add --privacy"
ONE_PROCESS = "--privacy and --robustness attack the trained evaluators and run in one process: launch without torchrun"
BAD_STEPS = "--pgd-steps must be a whole number >= 1, got {value!r}"


@dataclass(frozen=True)
class AttackPlan:
    """Which attack sections to add, and their settings (validated)."""

    privacy: bool = False
    robustness: bool = False
    members: object = None
    samples: int = 1000
    budgets: tuple[float, ...] = ()
    steps: int = 10

    @classmethod
    def build(cls, *, privacy: bool, robustness: bool, members=None, samples: int = 1000,
              budgets=PGD_BUDGETS, steps: int = 10) -> "AttackPlan":
        from ddaudit.distributed import world_size
        from ddaudit.robustness import check_samples, parse_budgets

        if members is not None and not privacy:
            raise ConfigError(NEEDS_PRIVACY)
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ConfigError(BAD_STEPS.format(value=steps))
        plan = cls(bool(privacy), bool(robustness), members, check_samples(samples), parse_budgets(budgets), int(steps))
        if plan.active and world_size() > 1:
            raise ConfigError(ONE_PROCESS)
        return plan

    @property
    def active(self) -> bool:
        return self.privacy or self.robustness

    def split(self, real, seed: int):
        """The membership split (:func:`ddaudit.privacy.membership_split`), or None without ``privacy``."""
        if not self.privacy:
            return None
        from ddaudit.privacy import membership_split, read_members

        mask = self.members
        if isinstance(mask, (str, Path)):
            if real.train is None:
                return membership_split(real)  # raises the no-training-split error
            mask = read_members(mask, len(real.train), real.name)
        return membership_split(real, mask, seed)

    def sections(self, models: dict, syn, real, aligned, split, *, seed: int, n_boot: int, confidence: float,
                 progress=None) -> list[tuple[str, dict]]:
        """``[(name, section)]`` for the report, from the ensembles :class:`~ddaudit.auditing.Evaluators` kept."""
        out = []
        references = {name: models[name] for name in ("random_subset", "full") if name in models}
        if self.privacy:
            out.append(("privacy", self._privacy(models["distilled"], references, syn, real, aligned, split,
                                                 seed=seed, n_boot=n_boot, confidence=confidence)))
        if self.robustness:
            from ddaudit.robustness import robustness_section

            out.append(("robustness", robustness_section(
                {"distilled": models["distilled"], **references}, real, aligned.space, samples=self.samples,
                budgets=self.budgets, steps=self.steps, confidence=confidence, seed=seed, progress=progress)))
        return out

    def _privacy(self, target, references: dict, syn, real, aligned, split, *, seed, n_boot, confidence) -> dict:
        from ddaudit._seeds import SUBSET_STREAM, derive_seeds, random_subset_rows
        from ddaudit.privacy import privacy_section

        train, test = aligned.train, aligned.test
        parts = [(train, split.members, True), (test, split.non_members_test, False),
                 (train, split.non_members_train, False)]
        x = torch.cat([data.x[torch.as_tensor(rows, dtype=torch.long)] for data, rows, _ in parts])
        y = torch.cat([data.y[torch.as_tensor(rows, dtype=torch.long)] for data, rows, _ in parts])
        a = torch.cat([data.a[torch.as_tensor(rows, dtype=torch.long)] for data, rows, _ in parts])
        is_member = np.concatenate([np.full(len(rows), member) for _, rows, member in parts])
        in_subset = None
        if "random_subset" in references:
            chosen = np.zeros(len(train), bool)
            chosen[random_subset_rows(train, syn.labels, real.num_classes,
                                      derive_seeds(seed, 1, stream=SUBSET_STREAM)[0]).numpy()] = True
            in_subset = np.concatenate([chosen[split.members], np.zeros(len(split.non_members_test), bool),
                                        chosen[split.non_members_train]])
        section = privacy_section(
            target.logits(x), y, a, is_member,
            reference_logits={name: ensemble.logits(x) for name, ensemble in references.items()},
            in_reference_subset=in_subset, n_boot=n_boot, confidence=confidence, seed=seed,
            class_names=real.class_names, group_names=real.group_names, source=split.source)
        section["members_source"] = "the whole training split" if self.members is None else "--members"
        return section

"""What a patched run did: the run summary printed on stderr and written with ``--summary``."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch

#: Schema tag of the ``--summary`` JSON.
SUMMARY_SCHEMA = "ddaudit.run/1"


@dataclass
class RunSummary:
    """Counters filled by the interceptors while the script runs.

    ``intercepted_calls`` counts loss-site calls that a patch acted on (or, in
    mode ``none``, observed): real ``embed`` calls for DM, ``match_loss`` calls
    for DC/DSA, ``matchloss`` calls for IDC, expert training batches for MTT.
    ``groups_seen[c][g]`` counts real rows of class ``c`` and group ``g`` that
    reached a loss; ``absent_group_batches`` counts class batches missing a
    group that the class has in the training set (FairDD skips such groups).
    """

    codebase: str
    script: str | None
    mode: str
    faithful: bool
    seed: int
    #: How the script's real batches were drawn: ``uniform`` (its own draw), ``weights`` (--sample-by-weight)
    #: or ``balanced`` (--batches balanced).
    sampling: str = "uniform"
    group_source: str | None = None
    variant: str | None = None
    fork: str | None = None
    device: str | None = None
    patched: list[str] = field(default_factory=list)
    calls_by_site: Counter = field(default_factory=Counter)
    groups_seen: dict = field(default_factory=lambda: defaultdict(Counter))
    batches: int = 0
    absent_group_batches: int = 0
    absent_by_class: Counter = field(default_factory=Counter)
    dropped_small_groups: int = 0
    dataset: dict | None = None
    notes: list[str] = field(default_factory=list)
    #: Set when the patch refused the script: the reason, and what the script imports and calls.
    refusal: str | None = None
    found: dict | None = None

    @property
    def intercepted_calls(self) -> int:
        return int(sum(self.calls_by_site.values()))

    def count(self, site: str, calls: int = 1) -> None:
        self.calls_by_site[site] += calls

    def observe(self, cls: int | None, groups: torch.Tensor | None, expected: list[int] | None = None) -> None:
        """Record one class batch: its group counts and whether a known group was absent."""
        self.batches += 1
        if groups is None:
            return
        key = -1 if cls is None else int(cls)
        ids, counts = torch.unique(groups.detach().cpu(), return_counts=True)
        seen = self.groups_seen[key]
        for g, n in zip(ids.tolist(), counts.tolist()):
            seen[int(g)] += int(n)
        if expected and set(expected) - set(ids.tolist()):
            self.absent_group_batches += 1
            self.absent_by_class[key] += 1

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def to_dict(self) -> dict:
        return {
            "schema": SUMMARY_SCHEMA,
            "codebase": self.codebase,
            "script": self.script,
            "variant": self.variant,
            "fork": self.fork,
            "device": self.device,
            "mode": self.mode,
            "faithful": self.faithful,
            "seed": self.seed,
            "sampling": self.sampling,
            "group_source": self.group_source,
            "dataset": self.dataset,
            "patched": list(self.patched),
            "intercepted_calls": self.intercepted_calls,
            "calls_by_site": dict(sorted(self.calls_by_site.items())),
            "batches": self.batches,
            "absent_group_batches": self.absent_group_batches,
            "absent_group_batches_by_class": {str(c): n for c, n in sorted(self.absent_by_class.items())},
            "groups_seen": {
                str(c): {str(g): n for g, n in sorted(seen.items())} for c, seen in sorted(self.groups_seen.items())
            },
            "dropped_small_groups": self.dropped_small_groups,
            "notes": list(self.notes),
            "refusal": self.refusal,
            "found": self.found,
        }

    def write_json(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

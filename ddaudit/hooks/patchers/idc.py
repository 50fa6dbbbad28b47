"""snu-mllab/Efficient-Dataset-Condensation (IDC) and DREAM: ``condense.matchloss``.

``matchloss(args, img_real, img_syn, lab_real, lab_syn, model)`` is defined and
called inside ``condense.py``, so it is patched in the script's own namespace
after its definitions run (see :mod:`ddaudit.hooks.patchers._session`). It receives
the real images, so FairDD is applied literally: ``sum_g matchloss(real[g], syn)``
over the groups present, through :func:`~ddaudit.hooks.fair_matching` (``feat`` and
``grad`` matching, every ``--metric``). Only ``sync`` and ``none`` are offered:
``matchloss`` averages real features or gradients internally, so a weighted
target would need a deeper hook than the one the codebase exposes.

Which training rows a real batch holds:

- IDC: ``ClassDataLoader.class_sample(c)`` takes ``next(self.class_sampler.samplers[c])``;
  ``data.ClassBatchSampler.__init__`` is wrapped so those iterators report each
  index batch (``augment(cat([img, img_syn]))[:n]`` keeps the order).
- DREAM: the batch is ``img_class[c][query_list[c]]`` with positions from
  ``NEW_Strategy.query``, refreshed every ``args.interval`` steps; the positions
  are recorded and mapped through class ``c``'s rows in dataset order.

With ``--dataset`` the preset replaces ``load_resized_data(args)`` (raw [0, 1]
training images, as IDC normalises inside its augmentation, with the preset's
mean/std registered under ``args.dataset`` in ``data.MEANS``/``STDS``).
"""

from __future__ import annotations

import numpy as np
import torch

from ddaudit.errors import PatchError
from ddaudit.hooks.fair_matching import fair_matching
from ddaudit.hooks.patchers._checks import require_call_site, require_function
from ddaudit.hooks.patchers._common import dataset_labels
from ddaudit.hooks.patchers._registry import register_patcher
from ddaudit.hooks.patchers._patcher import Patcher

CODEBASE = "idc"
MATCHLOSS = "matchloss(args, img_real, img_syn, lab_real, lab_syn, model)"
LOAD_RESIZED_DATA = "load_resized_data(args)"
SAMPLER_INIT = "ClassBatchSampler(cls_idx, batch_size, drop_last=True)"
QUERY = "query(n)"
ERR_UNRESOLVED = (
    "idc: matchloss received a real batch of {rows} rows that matches no recorded class_sample "
    "draw; the patcher expects img_real = aug(cat([img, img_syn]))[:n] with img from loader_real.class_sample(c)"
)
ERR_DREAM_UNRESOLVED = (
    "idc (DREAM): matchloss received {rows} real rows of class {cls} but no NEW_Strategy.query "
    "positions of that size were recorded for it"
)


class _ReportingIterator:
    """An index-batch iterator that reports every batch it hands out."""

    def __init__(self, iterator, report) -> None:
        self._iterator, self._report = iterator, report

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self._iterator)
        self._report(batch)
        return batch


@register_patcher(CODEBASE, aliases=("dream", "efficient-dataset-condensation"))
class IDCPatcher(Patcher):
    """snu-mllab/Efficient-Dataset-Condensation (IDC) and DREAM: condense.py's matchloss."""

    modes = ("none", "sync")
    expected_site = MATCHLOSS

    def prepare(self) -> None:
        session = self.session
        script = session.script.name
        require_call_site(CODEBASE, script, session.source, r"def\s+matchloss\s*\(", "define matchloss(...)")
        require_call_site(CODEBASE, script, session.source, r"\bmatchloss\s*\(\s*args", "call matchloss(args, ...)")
        self.variant = "dream" if "NEW_Strategy" in session.source else "idc"
        session.summary.variant = self.variant
        self._fair = fair_matching(
            mode="sync", reduce="sum" if session.faithful else "mean", strategy="loop",
            min_group_size=session.min_group_size,
        )(self._group_term)
        self._new_positions: np.ndarray | None = None
        self._positions: dict[int, np.ndarray] = {}
        if self.variant == "idc":
            data = session.import_module("data")
            sampler = require_function(CODEBASE, data, SAMPLER_INIT, label="data")
            session.stack.replace(sampler, "__init__", self._sampler_init(sampler.__init__))
        else:
            strategies = session.import_module("new_strategy")
            strategy = getattr(strategies, "NEW_Strategy", None)
            if strategy is None:
                raise PatchError("idc (DREAM): expected class new_strategy.NEW_Strategy with query(n); found none")
            require_function(CODEBASE, dict(vars(strategy)), "query(self, n)", label="new_strategy.NEW_Strategy")
            session.stack.replace(strategy, "query", self._query(strategy.query))

    def prepare_script(self, namespace: dict) -> None:
        stem = self.session.script.stem
        original = require_function(CODEBASE, namespace, MATCHLOSS, label=stem)
        self.session.stack.replace_item(namespace, "matchloss", self._matchloss(original), name=f"{stem}.matchloss")
        loader = require_function(CODEBASE, namespace, LOAD_RESIZED_DATA, label=stem)
        self.session.stack.replace_item(
            namespace, "load_resized_data", self._load_resized_data(loader, namespace), name=f"{stem}.load_resized_data"
        )

    # -- which rows a real batch holds ---------------------------------------------------

    def _sampler_init(self, original):
        recorder = self.session.recorder

        def __init__(sampler, *args, **kwargs):
            original(sampler, *args, **kwargs)
            sampler.samplers = [_ReportingIterator(it, recorder.record) for it in sampler.samplers]

        __init__.__wrapped__ = original
        return __init__

    def _query(self, original):
        def query(strategy, n, *args, **kwargs):
            positions = original(strategy, n, *args, **kwargs)
            self._new_positions = np.asarray(torch.as_tensor(positions).detach().cpu().reshape(-1), dtype=np.int64)
            return positions

        query.__wrapped__ = original
        return query

    def _rows_of_batch(self, rows: int, lab_real) -> np.ndarray:
        session = self.session
        if self.variant == "idc":
            draws = session.recorder.claim(rows, single=True)
            if draws is None:
                raise PatchError(ERR_UNRESOLVED.format(rows=rows))
            return draws[0].indices
        cls = int(torch.as_tensor(lab_real).reshape(-1)[0])
        if self._new_positions is not None:
            self._positions[cls], self._new_positions = self._new_positions, None
        positions = self._positions.get(cls)
        labels = session.table.labels
        if positions is None or len(positions) != rows or labels is None:
            raise PatchError(ERR_DREAM_UNRESOLVED.format(rows=rows, cls=cls))
        return np.flatnonzero(labels == cls)[positions]

    # -- the loss ----------------------------------------------------------------------

    def _matchloss(self, original):
        session = self.session

        def matchloss(args, img_real, img_syn, lab_real, lab_syn, model, *rest, **kwargs):
            rows = img_real.shape[0]
            indices = self._rows_of_batch(rows, lab_real)
            table = session.table
            cls = table.class_of(indices)
            groups = table.groups_of(indices, img_real.device)
            session.summary.observe(cls, groups, table.class_groups(cls) if cls is not None else None)
            session.summary.count("matchloss")
            if session.mode == "none" or groups is None:
                return original(args, img_real, img_syn, lab_real, lab_syn, model, *rest, **kwargs)
            per_row = isinstance(lab_real, torch.Tensor) and lab_real.ndim == 1 and lab_real.shape[0] == rows
            real = (img_real, lab_real) if per_row else img_real
            before = self._fair.stats.skipped_groups
            loss = self._fair(real, (img_syn, lab_syn), args, model, original, None if per_row else lab_real,
                              rest, kwargs, groups=groups)
            session.summary.dropped_small_groups += self._fair.stats.skipped_groups - before
            return loss

        matchloss.__wrapped__ = original
        return matchloss

    @staticmethod
    def _group_term(real, syn, args, model, original, shared_labels, rest, kwargs):
        img_real, lab_real = real if shared_labels is None else (real, shared_labels)
        img_syn, lab_syn = syn
        return original(args, img_real, img_syn, lab_real, lab_syn, model, *rest, **kwargs)

    # -- data --------------------------------------------------------------------------

    def _load_resized_data(self, original, namespace: dict):
        session = self.session

        def load_resized_data(args, *rest, **kwargs):
            injected = session.injected
            if injected is None:
                trainset, val_loader = original(args, *rest, **kwargs)
                session.table.bind_labels(dataset_labels(trainset), what=f"groups from {session.table.source}")
                return trainset, val_loader
            name = str(args.dataset)
            for table_name in ("MEANS", "STDS"):
                table = namespace.get(table_name)
                if isinstance(table, dict):
                    values = injected.mean if table_name == "MEANS" else injected.std
                    session.stack.replace_item(table, name, values, name=f"data.{table_name}[{name!r}]")
            session.summary.dataset = {
                "preset": injected.spec, "script_asked": name, "train_rows": len(injected.real.train),
            }
            val = torch.utils.data.DataLoader(
                injected.test_rows(), batch_size=max(1, int(getattr(args, "batch_size", 256)) // 2), shuffle=False
            )
            return injected.train_rows(raw=True), val

        load_resized_data.__wrapped__ = original
        return load_resized_data

"""VICO-UoE/DatasetCondensation: ``main_DM.py`` (DM) and ``main.py`` (DC, DSA), unmodified.

Both scripts start with ``from utils import get_dataset, get_network, match_loss, ...``,
so the patches go on ``utils`` before the script runs and the script binds them.
What is patched:

- ``utils.get_dataset``: answers with the injected preset (the 9-tuple
  ``channel, im_size, num_classes, class_names, mean, std, dst_train, dst_test,
  testloader``), or checks a ``--groups`` file against the script's own training set;
- ``numpy.random.permutation`` (codebase frames only): records which rows
  ``get_images`` drew, see :mod:`ddaudit.hooks.patchers._draws`;
- ``time.time`` (codebase frames only): pinned, see :mod:`ddaudit.hooks.patchers._seeding`;
- DM: ``utils.get_network`` wraps ``net.embed`` (:mod:`~ddaudit.hooks.patchers._embed`);
- DC/DSA: ``torch.nn.CrossEntropyLoss``, ``torch.autograd.grad`` and
  ``utils.match_loss`` (:mod:`~ddaudit.hooks.patchers._gradients`).

The FairDD (zqhang/FairDD ``main_DM.py``, ``main_DC.py``) and COBRA
(mhmoslemi/COBRA ``train_dm.py``, ``train_dc.py``) forks share this layout; they
are recognised from their scripts and get ``(image, label, group)`` rows and a
refusal of their own fair mode under a ddaudit mode (:mod:`~ddaudit.hooks.patchers._forks`).
"""

from __future__ import annotations

import re

import numpy as np
import torch

from ddaudit.errors import PatchError
from ddaudit.hooks.patchers._checks import require_call_site, require_function
from ddaudit.hooks.patchers._common import dataset_labels
from ddaudit.hooks.patchers._embed import EmbedInterceptor, wrapping_factory
from ddaudit.hooks.patchers._forks import detect_fork, reads_group_item, refuse_own_fair_mode
from ddaudit.hooks.patchers._gradients import RealGradientChannel
from ddaudit.hooks.patchers._registry import register_patcher
from ddaudit.hooks.patchers._patcher import Patcher

CODEBASE = "datasetcondensation"
ERR_VARIANT = (
    "datasetcondensation: {script} is neither a DM script (real and synthetic batches through net.embed, "
    "as main_DM.py) nor a DC/DSA script (torch.autograd.grad and match_loss, as main.py)"
)

GET_DATASET = "get_dataset(dataset, data_path)"
GET_NETWORK = "get_network(model, channel, num_classes, im_size=(32, 32))"
MATCH_LOSS = "match_loss(gw_syn, gw_real, args)"


def detect_variant(source: str, script: str) -> str:
    """``"dc"`` for gradient matching (main.py), ``"dm"`` for distribution matching (main_DM.py)."""
    if re.search(r"autograd\.grad\s*\(", source) and re.search(r"\bmatch_loss\s*\(", source):
        return "dc"
    if re.search(r"\.embed\b", source):
        return "dm"
    raise PatchError(ERR_VARIANT.format(script=script))


@register_patcher(CODEBASE, aliases=("dc", "dsa", "dm", "fairdd", "cobra"))
class DatasetCondensationPatcher(Patcher):
    """VICO-UoE/DatasetCondensation: main_DM.py (DM), main.py (DC, DSA); forks FairDD and COBRA."""

    draws_by_permutation = True

    def prepare(self) -> None:
        session = self.session
        script = session.script.name
        self.fork = detect_fork(session.source)
        session.summary.fork = self.fork.name if self.fork else None
        #: FairDD/COBRA read ``(image, label, group)`` rows, train and test.
        self.group_rows = reads_group_item(session.source)
        self.variant = detect_variant(session.source, script)
        session.summary.variant = self.variant
        self.expected_site = "net.embed on real batches" if self.variant == "dm" else "match_loss after a real gradient"
        require_call_site(CODEBASE, script, session.source, r"from\s+utils\s+import|import\s+utils", "import its helpers from utils")
        utils = session.import_module("utils")
        self.utils = utils
        get_dataset = require_function(CODEBASE, utils, GET_DATASET)
        get_network = require_function(CODEBASE, utils, GET_NETWORK)
        self.require_recorded_draws()
        stack = session.stack
        stack.replace(utils, "get_dataset", self._get_dataset(get_dataset))
        stack.replace(np.random, "permutation", session.recorder.patched_permutation(np.random.permutation))
        self._patched = {"get_dataset"}
        if self.variant == "dm":
            self.embed = EmbedInterceptor(session)
            stack.replace(utils, "get_network", self._get_network(get_network))
            self._patched.add("get_network")
            return
        match_loss = require_function(CODEBASE, utils, MATCH_LOSS)
        require_call_site(CODEBASE, script, session.source, r"CrossEntropyLoss\s*\(", "build its criterion with nn.CrossEntropyLoss()")
        self.channel = RealGradientChannel(session)
        stack.replace(torch.nn, "CrossEntropyLoss", self.channel.criterion_class(torch.nn.CrossEntropyLoss))
        if session.mode == "sync":
            stack.replace(torch.autograd, "grad", self.channel.patched_grad(torch.autograd.grad))
            stack.replace(utils, "match_loss", self.channel.patched_match_loss(match_loss))
            self._patched.add("match_loss")

    def requires_interception(self) -> bool:
        return True

    def check_arguments(self, argv) -> None:
        if self.fork is not None:
            refuse_own_fair_mode(self.fork, self.session.source, self.session.script.name, argv, self.session.mode)

    def prepare_script(self, namespace: dict) -> None:
        """A fork that defines its own helper instead of importing it from utils gets it patched too."""
        for name in sorted(self._patched):
            ours = getattr(self.utils, name)
            if name in namespace and namespace[name] is not ours:
                signature = {"get_dataset": GET_DATASET, "get_network": GET_NETWORK, "match_loss": MATCH_LOSS}[name]
                theirs = require_function(CODEBASE, namespace, signature, label=self.session.script.stem)
                wrapped = {
                    "get_dataset": self._get_dataset,
                    "get_network": self._get_network,
                    "match_loss": lambda fn: self.channel.patched_match_loss(fn),
                }[name](theirs)
                self.session.stack.replace_item(namespace, name, wrapped, name=f"{self.session.script.stem}.{name}")

    def _get_dataset(self, original):
        session = self.session

        def get_dataset(dataset, data_path, *args, **kwargs):
            injected = session.injected
            if injected is None:
                result = original(dataset, data_path, *args, **kwargs)
                session.table.bind_labels(dataset_labels(result[6]), what=f"groups from {session.table.source}")
                return result
            real = injected.real
            session.summary.dataset = {
                "preset": injected.spec, "script_asked": str(dataset), "train_rows": len(real.train),
            }
            session.summary.note(f"get_dataset({dataset!r}) answered with preset {injected.spec}")
            triples = self.group_rows
            if triples:
                session.summary.note("rows handed over as (image, label, group), train and test, as the fork reads them")
            return (
                real.channel, tuple(real.im_size), real.num_classes, list(real.class_names),
                injected.mean, injected.std, injected.train_rows(groups=triples), injected.test_rows(groups=triples),
                injected.test_loader(groups=triples),
            )

        get_dataset.__wrapped__ = original
        return get_dataset

    def _get_network(self, original):
        return wrapping_factory(original, self.embed.wrap_network)

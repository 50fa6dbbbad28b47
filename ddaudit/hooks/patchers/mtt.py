"""GeorgeCazenavette/mtt-distillation: fair experts from ``buffer.py``; ``distill.py`` unchanged.

Trajectory matching sees real data only through the expert trajectories, so the
patch acts on ``buffer.py`` (see :mod:`ddaudit.hooks.patchers._experts`):

- ``torch.utils.data.DataLoader`` (calls from the codebase only): the expert-training
  loader draws group-balanced batches (``--experts sample``) or records its batches
  for the weighted criterion (``--experts reweight``);
- ``torch.nn.CrossEntropyLoss`` (``reweight`` only): importance-weighted cross-entropy;
- ``utils.get_dataset``: the injected preset as MTT's 12-tuple, or a check of a
  ``--groups`` file against the script's training set;
- ``time.time`` in the codebase: pinned (``get_network`` reseeds from it);
- ``torch.Tensor.cpu``, for calls made by ``buffer.py`` itself: a tensor already
  on the CPU comes back as a copy, as it does from a GPU. ``buffer.py`` records
  each epoch with ``[p.detach().cpu() for p in teacher_net.parameters()]``;
  without the copy a CPU run saves every epoch as a view of the live weights, so
  the whole trajectory equals the final epoch and ``distill.py``'s loss is inf.

``distill.py`` runs with the dataset injection and pinned seeds only: it matches
the (now fair) trajectories and needs no loss patch.
"""

from __future__ import annotations

import re
import sys

import torch

from ddaudit.errors import PatchError
from ddaudit.hooks.patchers._checks import require_call_site, require_function
from ddaudit.hooks.patchers._experts import ExpertTraining
from ddaudit.hooks.patchers._registry import register_patcher
from ddaudit.hooks.patchers._common import ERR_MTT_ZCA as ERR_ZCA  # noqa: F401
from ddaudit.hooks.patchers._common import MTT_GET_DATASET as GET_DATASET
from ddaudit.hooks.patchers._common import dataset_labels, preset_as_mtt_tuple
from ddaudit.hooks.patchers._patcher import Patcher

CODEBASE = "mtt"
GET_NETWORK = "get_network(model, channel, num_classes, im_size=(32, 32), dist=True)"
ERR_VARIANT = (
    "mtt: {script} is neither buffer.py (experts trained with a shuffled DataLoader and "
    "nn.CrossEntropyLoss) nor distill.py (matching expert_trajectory)"
)


def detect_variant(source: str, script: str) -> str:
    """``"buffer"`` (expert training) or ``"distill"`` (trajectory matching)."""
    if re.search(r"DataLoader\s*\(", source) and re.search(r"trajector", source) and "expert_trajectory" not in source:
        return "buffer"
    if "expert_trajectory" in source:
        return "distill"
    raise PatchError(ERR_VARIANT.format(script=script))


@register_patcher(CODEBASE, aliases=("mtt-distillation",))
class MTTPatcher(Patcher):
    """GeorgeCazenavette/mtt-distillation: buffer.py (fair experts), distill.py (unchanged loss)."""

    expected_site = "the expert-training DataLoader built with shuffle=True"
    trains_experts = True

    def prepare(self) -> None:
        session = self.session
        script = session.script.name
        self.variant = detect_variant(session.source, script)
        session.summary.variant = self.variant
        utils = session.import_module("utils")
        get_dataset = require_function(CODEBASE, utils, GET_DATASET)
        require_function(CODEBASE, utils, GET_NETWORK)
        session.stack.replace(utils, "get_dataset", self._get_dataset(get_dataset))
        if self.variant == "distill":
            session.summary.note("distill.py matches expert trajectories only: its loss is unchanged")
            return
        require_call_site(CODEBASE, script, session.source, r"shuffle\s*=\s*True", "train experts with a shuffled DataLoader")
        self.training = ExpertTraining(session)
        stack = session.stack
        stack.replace(torch.utils.data, "DataLoader", self.training.loader_class(torch.utils.data.DataLoader))
        if session.experts == "reweight" and session.mode != "none":
            require_call_site(CODEBASE, script, session.source, r"CrossEntropyLoss\s*\(", "build its criterion with nn.CrossEntropyLoss()")
            stack.replace(torch.nn, "CrossEntropyLoss", self.training.criterion_class(torch.nn.CrossEntropyLoss))
        stack.replace(torch.Tensor, "cpu", snapshotting_cpu(torch.Tensor.cpu, session), name="torch.Tensor.cpu")

    def requires_interception(self) -> bool:
        return self.variant == "buffer"

    def _get_dataset(self, original):
        session = self.session

        def get_dataset(dataset, data_path, batch_size=1, subset="imagenette", args=None, *rest, **kwargs):
            injected = session.injected
            if injected is None:
                result = original(dataset, data_path, batch_size, subset, args, *rest, **kwargs)
                session.table.bind_labels(dataset_labels(result[6]), what=f"groups from {session.table.source}")
                return result
            return preset_as_mtt_tuple(session, dataset, args)

        get_dataset.__wrapped__ = original
        return get_dataset


def snapshotting_cpu(original, session):
    """``Tensor.cpu`` that copies CPU tensors when the script's own code asks, as a GPU-to-CPU move does."""

    def cpu(tensor, *args, **kwargs):
        moved = original(tensor, *args, **kwargs)
        if moved is tensor and session.called_from_script(sys._getframe(1)):
            return tensor.clone()
        return moved

    cpu.__wrapped__ = original
    return cpu

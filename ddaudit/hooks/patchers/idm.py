"""uitrbn/IDM (``IDM_cifar10.py`` and its siblings): DM over ``net.embed_channel_avg``, unmodified.

IDM keeps DatasetCondensation's closure ``get_images`` and inline DM loss but

- matches ``embed_channel_avg(x, last=...)`` of a queue of partially trained
  networks built by ``dc_utils.get_network`` (the networks are trained on real
  batches between steps, so parameters require grad; real calls are still the
  ones whose input does not);
- loads data with ``from utils import get_dataset as get_dataset_mtt``, MTT's
  12-tuple signature ``get_dataset(dataset, data_path, batch_size, subset, args=...)``.

What is patched: ``utils.get_dataset`` (the injected preset as the 12-tuple),
``dc_utils.get_network`` (wraps ``embed_channel_avg`` like DM's ``embed``, see
:mod:`~ddaudit.hooks.patchers._embed`), ``numpy.random.permutation`` (the drawn
rows) and the codebase's clock. Limit: with ``--ipc 1`` and no ``--aug`` IDM
keeps the 2560 lowest-loss real rows of a batch (``topk``), a selection the draw
recorder cannot follow; that setting is refused at the first real batch.
"""

from __future__ import annotations

import re

import numpy as np

from ddaudit.errors import PatchError
from ddaudit.hooks.patchers._checks import require_call_site, require_function
from ddaudit.hooks.patchers._common import MTT_GET_DATASET as GET_DATASET
from ddaudit.hooks.patchers._common import dataset_labels, preset_as_mtt_tuple
from ddaudit.hooks.patchers._embed import EmbedInterceptor, wrapping_factory
from ddaudit.hooks.patchers._registry import register_patcher
from ddaudit.hooks.patchers._patcher import Patcher

CODEBASE = "idm"
GET_NETWORK = "get_network(model, channel, num_classes, im_size=(32, 32))"
ERR_VARIANT = "idm: {script} does not match through embed_channel_avg (expected `embed_channel_avg` as IDM_cifar10.py)"


@register_patcher(CODEBASE)
class IDMPatcher(Patcher):
    """uitrbn/IDM: IDM_*.py, DM over net.embed_channel_avg with MTT's get_dataset."""

    draws_by_permutation = True

    expected_site = "net.embed_channel_avg on real batches"

    def prepare(self) -> None:
        session = self.session
        script = session.script.name
        if not re.search(r"\.embed_channel_avg\b", session.source):
            raise PatchError(ERR_VARIANT.format(script=script))
        session.summary.variant = "dm"
        require_call_site(CODEBASE, script, session.source, r"from\s+utils\s+import\s+get_dataset", "import get_dataset from utils")
        require_call_site(CODEBASE, script, session.source, r"from\s+dc_utils\s+import", "import its helpers from dc_utils")
        self.require_recorded_draws()
        utils = session.import_module("utils")
        dc_utils = session.import_module("dc_utils")
        get_dataset = require_function(CODEBASE, utils, GET_DATASET)
        get_network = require_function(CODEBASE, dc_utils, GET_NETWORK)
        self.embed = EmbedInterceptor(session, method="embed_channel_avg")
        stack = session.stack
        stack.replace(utils, "get_dataset", self._get_dataset(get_dataset))
        stack.replace(np.random, "permutation", session.recorder.patched_permutation(np.random.permutation))
        stack.replace(dc_utils, "get_network", self._get_network(get_network))

    def requires_interception(self) -> bool:
        return True

    def _get_dataset(self, original):
        session = self.session

        def get_dataset(dataset, data_path, batch_size=1, subset="imagenette", args=None, *rest, **kwargs):
            if session.injected is None:
                result = original(dataset, data_path, batch_size, subset, args, *rest, **kwargs)
                session.table.bind_labels(dataset_labels(result[6]), what=f"groups from {session.table.source}")
                return result
            session.summary.note(f"get_dataset({dataset!r}) answered with preset {session.injected.spec} (MTT's 12-tuple)")
            return preset_as_mtt_tuple(session, dataset, args)

        get_dataset.__wrapped__ = original
        return get_dataset

    def _get_network(self, original):
        return wrapping_factory(original, self.embed.wrap_network)

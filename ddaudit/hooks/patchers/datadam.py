"""DataDistillation/DataDAM (``main_DataDAM.py``): attention matching through forward hooks, unmodified.

Each step DataDAM embeds every class's real batch at once
(``net(images_real_all)[0]``), collects the ReLU outputs with forward hooks,
turns each into per-sample spatial attention with ``utils.get_attention`` and
matches, for every layer and for the final embedding, the per-class means::

    sum_c || mean(real_c) - mean(syn_c) ||^2      (its ``error(..., "MSE_B")``)

Both matched quantities are per-sample rows averaged per class block, so the
DM arithmetic applies (:class:`~ddaudit.hooks.patchers._embed.BlockRescaler`):

- ``utils.get_network``: the network's ``forward`` is wrapped; on the real batch
  (input without grad, called from the script) the rows are resolved into their
  class draws and the embedding ``[0]`` is rescaled; on the synthetic batch it
  gets the matching factor and zero column;
- ``utils.get_attention``: the attention rows of real features (no grad) are
  rescaled with the same class blocks, the synthetic ones get the same plan;
- ``utils.get_dataset(dataset, data_path, args)``: the injected preset as
  DataDAM's 10-tuple (``..., testloader, zca`` with ``zca=None``);
- ``numpy.random.permutation`` and the clock, as for DatasetCondensation.
"""

from __future__ import annotations

import re

import numpy as np

from ddaudit.errors import ConfigError, PatchError
from ddaudit.hooks.patchers._checks import require_call_site, require_function
from ddaudit.hooks.patchers._common import dataset_labels
from ddaudit.hooks.patchers._embed import ForwardFeatureInterceptor, wrapping_factory
from ddaudit.hooks.patchers._registry import register_patcher
from ddaudit.hooks.patchers._patcher import Patcher

CODEBASE = "datadam"
GET_DATASET = "get_dataset(dataset, data_path, args)"
GET_NETWORK = "get_network(model, channel, num_classes, im_size=(32, 32))"
GET_ATTENTION = "get_attention(feature_set, param=0, exp=4, norm='l2')"
ERR_VARIANT = (
    "datadam: {script} does not match attention maps (expected get_attention(...) on features "
    "collected with register_forward_hook, as main_DataDAM.py)"
)
ERR_ZCA = "datadam: --zca cannot be combined with an injected dataset preset; drop --zca from the script's arguments"


@register_patcher(CODEBASE, aliases=("data-dam",))
class DataDAMPatcher(Patcher):
    """DataDistillation/DataDAM: main_DataDAM.py, attention maps from forward hooks + embedding."""

    draws_by_permutation = True

    expected_site = "the network's forward and get_attention on real batches"

    def prepare(self) -> None:
        session = self.session
        script = session.script.name
        if not (re.search(r"get_attention\s*\(", session.source) and "register_forward_hook" in session.source):
            raise PatchError(ERR_VARIANT.format(script=script))
        session.summary.variant = "attention"
        require_call_site(CODEBASE, script, session.source, r"from\s+utils\s+import", "import its helpers from utils")
        self.require_recorded_draws()
        utils = session.import_module("utils")
        get_dataset = require_function(CODEBASE, utils, GET_DATASET)
        get_network = require_function(CODEBASE, utils, GET_NETWORK)
        get_attention = require_function(CODEBASE, utils, GET_ATTENTION)
        self.features = ForwardFeatureInterceptor(session)
        stack = session.stack
        stack.replace(utils, "get_dataset", self._get_dataset(get_dataset))
        stack.replace(np.random, "permutation", session.recorder.patched_permutation(np.random.permutation))
        stack.replace(utils, "get_network", self._get_network(get_network))
        stack.replace(utils, "get_attention", self.features.wrap_feature(get_attention))

    def requires_interception(self) -> bool:
        return True

    def _get_dataset(self, original):
        session = self.session

        def get_dataset(dataset, data_path, args, *rest, **kwargs):
            injected = session.injected
            if injected is None:
                result = original(dataset, data_path, args, *rest, **kwargs)
                session.table.bind_labels(dataset_labels(result[6]), what=f"groups from {session.table.source}")
                return result
            if getattr(args, "zca", False):
                raise ConfigError(ERR_ZCA)
            real = injected.real
            session.summary.dataset = {"preset": injected.spec, "script_asked": str(dataset), "train_rows": len(real.train)}
            session.summary.note(f"get_dataset({dataset!r}) answered with preset {injected.spec} (DataDAM's 10-tuple, zca=None)")
            return (
                real.channel, tuple(real.im_size), real.num_classes, list(real.class_names), injected.mean,
                injected.std, injected.train_rows(), injected.test_rows(), injected.test_loader(), None,
            )

        get_dataset.__wrapped__ = original
        return get_dataset

    def _get_network(self, original):
        return wrapping_factory(original, self.features.wrap_network)

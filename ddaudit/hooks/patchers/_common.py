"""Helpers more than one codebase's patcher uses, kept below all of them.

A patcher imports these from here rather than from a sibling patcher, so
patchers never import one another.
"""

from __future__ import annotations

import numpy as np
import torch

from ddaudit.errors import ConfigError

#: MTT's ``get_dataset`` signature (IDM imports MTT's utils and calls the same one).
MTT_GET_DATASET = "get_dataset(dataset, data_path, batch_size=1, subset='imagenette', args=None)"
ERR_MTT_ZCA = "mtt: --zca cannot be combined with an injected dataset preset; drop --zca from the script's arguments"


def dataset_labels(dataset) -> np.ndarray:
    """Class of every row of a torchvision-style dataset (``targets``/``labels``, else item [1])."""
    for name in ("targets", "labels"):
        values = getattr(dataset, name, None)
        if values is not None and len(values) == len(dataset):
            return np.asarray(torch.as_tensor(values).reshape(-1), dtype=np.int64)
    return np.asarray([int(dataset[i][1]) for i in range(len(dataset))], dtype=np.int64)


def preset_as_mtt_tuple(session, dataset, args) -> tuple:
    """The injected preset as MTT's ``get_dataset`` 12-tuple (also IDM's, which imports MTT's utils)."""
    if args is not None and getattr(args, "zca", False):
        raise ConfigError(ERR_MTT_ZCA)
    injected = session.injected
    real = injected.real
    session.summary.dataset = {"preset": injected.spec, "script_asked": str(dataset), "train_rows": len(real.train)}
    identity = {c: c for c in range(real.num_classes)}
    return (
        real.channel, tuple(real.im_size), real.num_classes, list(real.class_names),
        injected.mean, injected.std, injected.train_rows(), injected.test_rows(),
        injected.test_loader(batch_size=128), None, identity, dict(identity),
    )

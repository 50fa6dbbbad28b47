"""Run unmodified third-party distillers with fairness injected (``ddaudit run``).

One patcher per codebase, registered by name:

- ``datasetcondensation``: VICO-UoE/DatasetCondensation ``main_DM.py`` (DM) and ``main.py`` (DC, DSA);
- ``mtt``: GeorgeCazenavette/mtt-distillation ``buffer.py`` (fair experts) and ``distill.py``;
- ``idc``: snu-mllab/Efficient-Dataset-Condensation and DREAM ``condense.py``;
- ``idm``: uitrbn/IDM ``IDM_*.py`` (DM over ``embed_channel_avg``, MTT's ``get_dataset``);
- ``datadam``: DataDistillation/DataDAM ``main_DataDAM.py`` (attention maps from forward hooks).

The FairDD and COBRA forks are handled by ``datasetcondensation`` (also under
their own names); ``--adapter FILE`` describes any other fork.

``with patch("datasetcondensation", "main_DM.py", mode="sync", dataset="cmnist-fg") as s:
s.run(["--ipc", "10"])`` runs the script in this process with the patches applied,
undoes them on exit (also on error) and leaves what it did in ``s.summary``.
"""

from ddaudit.hooks.patchers._groups import GroupTable, InjectedDataset, load_groups, load_vector
from ddaudit.hooks.patchers._registry import get_patcher, register_patcher
from ddaudit.hooks.patchers._session import Patcher, PatchSession, patch, run
from ddaudit.hooks.patchers._stack import PatchStack
from ddaudit.hooks.patchers._summary import SUMMARY_SCHEMA, RunSummary
from ddaudit.hooks.patchers._experts import EXPERT_STRATEGIES
from ddaudit.hooks.patchers import datadam, datasetcondensation, idc, idm, mtt  # noqa: F401  (register the patchers)

__all__ = [
    "EXPERT_STRATEGIES",
    "GroupTable",
    "InjectedDataset",
    "PatchSession",
    "PatchStack",
    "Patcher",
    "RunSummary",
    "SUMMARY_SCHEMA",
    "get_patcher",
    "load_groups",
    "load_vector",
    "patch",
    "register_patcher",
    "run",
]

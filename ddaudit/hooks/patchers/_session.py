"""One patched run: build the group table, install a codebase's patches, run its script, undo.

A :class:`Patcher` subclass per codebase says what to check and patch; a
:class:`PatchSession` owns the state they share (group table, draw recorder,
pinned clock, run summary) and the :class:`PatchStack` that undoes everything.
The script itself runs through :func:`~ddaudit.hooks.patchers._script.run_as_main`.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ddaudit.choices import BATCH_SAMPLINGS
from ddaudit.errors import ConfigError, InputError, PatchError
from ddaudit.hooks.patchers._checks import ERR_NO_MODULE
from ddaudit.hooks.patchers._device import DEVICES, ERR_DEVICE, force_cpu, require_cuda
from ddaudit.hooks.patchers._draws import DrawRecorder
from ddaudit.hooks.patchers._experts import check_strategy
from ddaudit.hooks.patchers._patcher import (  # noqa: F401
    ERR_NOTHING_BALANCED,
    ERR_NOTHING_INTERCEPTED,
    ERR_NOTHING_SAMPLED,
    Patcher,
)
from ddaudit.hooks.patchers._groups import GroupTable, InjectedDataset, load_groups, load_vector
from ddaudit.hooks.patchers._registry import get_patcher
from ddaudit.hooks.patchers._script import run_as_main
from ddaudit.hooks.patchers._seeding import pin_seeds
from ddaudit.hooks.patchers._stack import PatchStack
from ddaudit.hooks.patchers._summary import RunSummary
from ddaudit.hooks.patchers._survey import ADAPTER_HINT, describe, survey
from ddaudit.mitigate.groups import check_min_group_size, check_mode

#: ddaudit's own folder, three levels up (importing the ``ddaudit`` facade here would import upward).
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
_LIBRARY_PREFIXES = tuple(os.path.join(folder, "") for folder in (os.path.dirname(torch.__file__), _PACKAGE_DIR))

ERR_NO_CODEBASE = "name the codebase with --codebase NAME, or describe the fork with --adapter FILE"
ERR_SCRIPT_MISSING = "script {script} does not exist; give the path of the codebase's script after `--`"
ERR_MODE_UNSUPPORTED = "codebase {codebase!r} supports --mode {valid}; got {mode!r}"
ERR_NEEDS_GROUPS = "--mode {mode} needs the group of every training row: pass --groups FILE or --dataset PRESET"
ERR_NEEDS_WEIGHTS = "--mode weights needs one weight per training row: pass --weights FILE"
ERR_WEIGHTS_UNUSED = "--weights is used only with --mode weights or --sample-by-weight; drop it or add one of them"
ERR_WEIGHT_VALUES = "weights must be finite and non-negative with at least one positive value; {path} is not"
ERR_SAMPLE_NEEDS_WEIGHTS = "--sample-by-weight draws real rows by weight: pass --weights FILE (e.g. from `ddaudit weights`)"
ERR_SAMPLE_TWICE = (
    "--sample-by-weight with --mode weights would apply the weights twice (in the draw and in the loss); "
    "use --mode none (or sync/barycenter) with --sample-by-weight"
)
ERR_SAMPLE_UNSUPPORTED = (
    "codebase {codebase!r} does not draw its real batches with np.random.permutation, so --sample-by-weight "
    "cannot change them; use --mode weights instead"
)
ERR_BATCHES = "--batches must be one of {valid}; got {batches!r}"
ERR_BALANCED_NEEDS_GROUPS = (
    "--batches balanced draws real rows evenly over the groups: pass --groups FILE or --dataset PRESET"
)
ERR_BALANCED_WEIGHTED = (
    "--batches balanced draws real rows evenly over the groups and --sample-by-weight draws them by weight; use one"
)
ERR_BALANCED_UNSUPPORTED = (
    "codebase {codebase!r} does not draw its real batches with np.random.permutation, so --batches balanced "
    "cannot change them; use --batches uniform"
)
ERR_EXPERTS = "--experts applies to codebases that train experts (mtt) only"
ERR_NOT_OPEN = "this patch session is not active; use it as `with patch(...) as session: session.run(argv)`"

class PatchSession:
    """Patches for one codebase, active inside ``with``; :meth:`run` runs its script.

    Use :func:`patch` to create one. Everything patched is listed in
    ``summary.patched`` and undone when the ``with`` block exits, normally or by
    an exception; the caller's random generator states are restored too.
    """

    def __init__(
        self,
        codebase: str | None,
        script: str | os.PathLike,
        *,
        mode: str = "sync",
        groups=None,
        weights=None,
        sample_by_weight: bool = False,
        batches: str = "uniform",
        dataset=None,
        dataset_options: dict | None = None,
        faithful: bool = True,
        min_group_size: int = 1,
        seed: int = 0,
        experts: str = "sample",
        device: str | None = None,
        adapter=None,
    ) -> None:
        self.adapter = None
        if adapter is not None:
            from ddaudit.hooks.patchers.adapter import AdapterPatcher, AdapterSpec, load_adapter

            self.adapter = adapter if isinstance(adapter, AdapterSpec) else load_adapter(adapter)
            self.patcher_class = AdapterPatcher
        elif codebase is None:
            raise ConfigError(ERR_NO_CODEBASE)
        else:
            self.patcher_class = get_patcher(codebase)
        self.codebase = self.patcher_class.codebase
        self.mode = check_mode(mode)
        if mode not in self.patcher_class.modes:
            raise ConfigError(
                ERR_MODE_UNSUPPORTED.format(codebase=self.codebase, valid="|".join(self.patcher_class.modes), mode=mode)
            )
        self.script_arg = str(script)
        self.script = Path(script).resolve()
        if not self.script.is_file():
            raise InputError(ERR_SCRIPT_MISSING.format(script=script))
        self.root = self.script.parent
        self.source = self.script.read_text(encoding="utf-8", errors="replace")
        self.sample_by_weight = bool(sample_by_weight)
        if self.sample_by_weight:
            if weights is None:
                raise ConfigError(ERR_SAMPLE_NEEDS_WEIGHTS)
            if mode == "weights":
                raise ConfigError(ERR_SAMPLE_TWICE)
            if not self.patcher_class.draws_by_permutation:
                raise ConfigError(ERR_SAMPLE_UNSUPPORTED.format(codebase=self.codebase))
        if batches not in BATCH_SAMPLINGS:
            raise ConfigError(ERR_BATCHES.format(valid="|".join(BATCH_SAMPLINGS), batches=batches))
        self.batches = batches
        if batches == "balanced":
            if self.sample_by_weight:
                raise ConfigError(ERR_BALANCED_WEIGHTED)
            if groups is None and dataset is None:
                raise ConfigError(ERR_BALANCED_NEEDS_GROUPS)
            if not self.patcher_class.draws_by_permutation:
                raise ConfigError(ERR_BALANCED_UNSUPPORTED.format(codebase=self.codebase))
        if weights is not None and mode != "weights" and not self.sample_by_weight:
            raise ConfigError(ERR_WEIGHTS_UNUSED)
        if mode == "weights" and weights is None:
            raise ConfigError(ERR_NEEDS_WEIGHTS)
        if mode in ("sync", "barycenter") and groups is None and dataset is None:
            raise ConfigError(ERR_NEEDS_GROUPS.format(mode=mode))
        self.faithful = bool(faithful)
        self.min_group_size = check_min_group_size(min_group_size)
        self.seed = int(seed)
        self.experts = check_strategy(experts)
        if experts != "sample" and not self.patcher_class.trains_experts:
            raise ConfigError(ERR_EXPERTS)
        if device is not None and device not in DEVICES:
            raise ConfigError(ERR_DEVICE.format(device=device))
        if device == "cuda":
            require_cuda()
        self.device = device
        self._groups_arg, self._weights_arg = groups, weights
        self._dataset_arg, self._dataset_options = dataset, dict(dataset_options or {})
        self.injected: InjectedDataset | None = None
        self.table: GroupTable | None = None
        self.summary = RunSummary(
            codebase=self.codebase, script=self.script_arg, mode=mode, faithful=self.faithful, seed=self.seed,
            sampling="weights" if self.sample_by_weight else self.batches,
        )
        self.summary.device = device
        self.stack: PatchStack | None = None
        self.recorder: DrawRecorder | None = None
        self.patcher: Patcher | None = None
        self._script_frames: dict[str, bool] = {}

    # -- group sources -------------------------------------------------------------------

    def _build_table(self) -> GroupTable:
        weights = self._weights_arg
        if weights is not None:
            if isinstance(weights, (str, os.PathLike)):
                named, weights = weights, load_vector(weights, "weights")
            else:
                named, weights = "the weights array", np.asarray(weights)
            weights = weights.astype(np.float64)
            if not (np.all(np.isfinite(weights)) and np.all(weights >= 0) and np.any(weights > 0)):
                raise InputError(ERR_WEIGHT_VALUES.format(path=named))
        if self._dataset_arg is not None:
            injected = self._dataset_arg
            if not isinstance(injected, InjectedDataset):
                injected = InjectedDataset.load(str(injected), self._dataset_options)
            self.injected = injected
            groups = self._groups_arg
            if groups is None:
                return injected.table(weights)
            named = f"file {groups}" if isinstance(groups, (str, os.PathLike)) else "array"
            values = load_groups(groups) if isinstance(groups, (str, os.PathLike)) else np.asarray(groups, dtype=np.int64).reshape(-1)
            return injected.table(weights, groups=values, source=named)
        groups = self._groups_arg
        if groups is None:
            return GroupTable(groups=None, source="weights file" if weights is not None else None, weights=weights)
        if isinstance(groups, (str, os.PathLike)):
            return GroupTable(groups=load_groups(groups), source=f"file {groups}", weights=weights)
        return GroupTable(groups=np.asarray(groups, dtype=np.int64).reshape(-1), source="array", weights=weights)

    # -- the environment the script runs in ----------------------------------------------

    def covers(self, filename: str) -> bool:
        """Whether *filename* is the codebase's own code (the checkout holding the script)."""
        return self.clock.covers(filename)

    def called_from_script(self, frame) -> bool:
        """Whether *frame*, skipping torch's and ddaudit's own frames, runs the script's code.

        Loss sites live in the script (``embed(img_real)`` in ``main()``); the same
        functions called from elsewhere (a network's ``forward``, an evaluation
        loop in ``utils``) are left alone.
        """
        while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_PREFIXES):
            frame = frame.f_back
        if frame is None:
            return False
        filename = frame.f_code.co_filename
        verdict = self._script_frames.get(filename)
        if verdict is None:
            verdict = os.path.realpath(filename) == str(self.script)
            self._script_frames[filename] = verdict
        return verdict

    def _isolate_modules(self) -> None:
        """Make ``import utils`` find the codebase's ``utils``; forget its modules afterwards."""
        root = os.path.join(str(self.root), "")
        local = {p.stem for p in self.root.glob("*.py")} | {
            p.name for p in self.root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()
        }

        def inside(module) -> bool:
            path = getattr(module, "__file__", None)
            return bool(path) and os.path.realpath(path).startswith(root)

        before = dict(sys.modules)
        shadowed = {name: sys.modules.pop(name) for name in local if name in sys.modules and not inside(sys.modules[name])}

        def restore() -> None:
            # Forget only what the run added or replaced: modules the caller had
            # before (its own __main__ may live in the codebase folder) stay as they were.
            for name in [n for n, m in list(sys.modules.items()) if inside(m) and before.get(n) is not m]:
                del sys.modules[name]
            sys.modules.update((name, module) for name, module in before.items()
                               if name not in sys.modules and (name in shadowed or inside(module)))

        self.stack.callback(restore)
        sys.path.insert(0, str(self.root))
        self.stack.callback(lambda: sys.path.remove(str(self.root)) if str(self.root) in sys.path else None)
        saved_filters = list(warnings.filters)
        self.stack.callback(lambda: warnings.filters.__setitem__(slice(None), saved_filters))

    def import_module(self, name: str) -> types.ModuleType:
        """Import the codebase's module *name*, refusing one found elsewhere."""
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            raise PatchError(
                ERR_NO_MODULE.format(codebase=self.codebase, module=name, script=self.script.name)
            ) from None
        path = getattr(module, "__file__", None)
        if not path or not self.covers(path):
            raise PatchError(ERR_NO_MODULE.format(codebase=self.codebase, module=name, script=self.script.name))
        return module

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> "PatchSession":
        self.stack = PatchStack()
        self.summary.patched = self.stack.names
        try:
            self.table = self._build_table()
            self.summary.group_source = self.table.source
            if self.injected is not None:
                self.summary.dataset = {"preset": self.injected.spec, "train_rows": len(self.injected.real.train)}
            self._isolate_modules()
            if self.device == "cpu":
                force_cpu(self.stack)
            self.clock = pin_seeds(self.stack, self.seed, [str(self.root)])
            self.recorder = DrawRecorder(
                self.table, self.covers, by_weight=self.sample_by_weight, balanced=self.batches == "balanced"
            )
            self.patcher = self.patcher_class(self)
            self.patcher.prepare()
        except PatchError as error:
            self.stack.close()
            self.summary.found = survey(self.source, self.root)
            self.summary.refusal = str(error)
            if self.adapter is None:
                raise PatchError(str(error) + ADAPTER_HINT.format(seen=describe(self.summary.found))) from None
            raise
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        stack, self.stack = self.stack, None
        if stack is not None:
            stack.close()

    @property
    def active(self) -> bool:
        return self.stack is not None

    def run(self, argv: Sequence[str] = ()) -> RunSummary:
        """Run the script as ``__main__`` with ``sys.argv = [script, *argv]``; return the summary.

        ``SystemExit`` with status 0 or ``None`` counts as success; any other exit
        or exception propagates (the patches are undone by the ``with`` block).
        """
        if self.stack is None:
            raise ConfigError(ERR_NOT_OPEN)
        try:
            self.patcher.check_arguments([str(a) for a in argv])
        except PatchError as error:
            self.summary.refusal = str(error)
            raise
        run_as_main(self.script, self.source, argv, argv0=self.script_arg, between=self.patcher.prepare_script)
        self.patcher.finish()
        return self.summary


def patch(codebase: str | None, script: str | os.PathLike, **options) -> PatchSession:
    """Patches that make *codebase*'s unmodified *script* fair, active inside ``with``.

    ``with patch("datasetcondensation", "main_DM.py", mode="sync", dataset="cmnist-fg") as s:
    s.run(["--ipc", "10"])`` (or ``import main_DM; main_DM.main()`` inside the block).
    Options: ``mode`` (sync, barycenter, weights, none), ``groups`` (a per-row file or
    array), ``weights`` (per-row, mode ``weights``), ``sample_by_weight`` (draw the
    script's real batches by ``weights`` instead: codebases that draw with
    ``np.random.permutation``), ``batches`` (``"uniform"``: the script's own draw;
    ``"balanced"``: each class batch drawn evenly over the groups, same codebases,
    needs ``groups`` or ``dataset``), ``dataset`` (a preset injected
    through the codebase's ``get_dataset``) with ``dataset_options``, ``faithful``
    (FairDD's unnormalised sum; ``False`` divides by the number of groups),
    ``min_group_size``, ``seed``, ``experts`` (MTT: ``sample`` or ``reweight``), ``device``
    (``"cpu"``: a script that hard-codes CUDA runs on the CPU, see :mod:`._device`), ``adapter``
    (an adapter file describing a fork no patcher knows; ``codebase`` may then be ``None``).
    """
    return PatchSession(codebase, script, **options)


def run(codebase: str | None, script: str | os.PathLike, argv: Sequence[str] = (), **options) -> RunSummary:
    """Run *script* with *codebase*'s patches applied and undone; return the run summary."""
    with patch(codebase, script, **options) as session:
        return session.run(argv)

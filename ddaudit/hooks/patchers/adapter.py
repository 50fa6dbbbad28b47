"""A declarative adapter for a fork no built-in patcher knows (``ddaudit run --adapter FILE``).

The file is TOML and names three things about the fork::

    [adapter]
    name = "myfork"                       # shown in the run summary

    [dataset]                             # the function the script loads its data with
    module = "helpers"                    # a module next to the script (or the script's own name)
    function = "load_data"
    returns = ["channel", "im_size", "num_classes", "class_names", "mean", "std", "train", "test", "testloader"]
    rows = "pair"                         # "triple": rows are (image, label, group), train and test

    [matching]                            # the function whose real-batch output is matched
    kind = "embed"                        # embed | gradient | feature | feature_loss
    network_module = "helpers"            # embed, feature: the function that builds the networks
    network_function = "build_net"
    method = "embed"                      # embed: the network method called on real and synthetic batches
    # gradient: match_module, match_function = f(gw_syn, gw_real, ...) after torch.autograd.grad
    #           of nn.CrossEntropyLoss on the real batch (as DatasetCondensation's match_loss)
    # feature:  feature_module, feature_function = f(features, ...) on activations of net(real_batch),
    #           returning values per row (DataDAM's attention maps)
    # feature_loss: network_module, network_function, loss_module, loss_function =
    #           f(real_features, syn_features, ...) returning one loss from the class-block means of
    #           both (CAFE's criterion_middle on each layer of net(x) -> (logits, [activations]))

``returns`` names each item of the dataset function's return value: ``channel``,
``im_size``, ``num_classes``, ``class_names``, ``mean``, ``std``, ``train``, ``test``,
``testloader``, or ``none`` for an item ddaudit fills with ``None``. Real batches
must be drawn with ``np.random.permutation(<class index list>)[:n]`` as in
DatasetCondensation (the draw recorder follows them).

The named matching functions are checked against the shape their kind needs
before the script's ``main`` runs (signature, and a dry call on tiny tensors where
the function needs nothing else, see :mod:`._shapes`): a function of the wrong
shape is refused with one line (exit 2) instead of failing inside the run.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ddaudit.errors import InputError, PatchError
from ddaudit.hooks.patchers._checks import require_call_site
from ddaudit.hooks.patchers._common import dataset_labels
from ddaudit.hooks.patchers._embed import EmbedInterceptor, ForwardFeatureInterceptor, wrapping_factory
from ddaudit.hooks.patchers._feature_loss import FeatureLossInterceptor
from ddaudit.hooks.patchers._gradients import RealGradientChannel
from ddaudit.hooks.patchers._patcher import Patcher
from ddaudit.hooks.patchers._shapes import check_feature_function, check_feature_loss

RETURN_ITEMS = ("channel", "im_size", "num_classes", "class_names", "mean", "std", "train", "test", "testloader", "none")
KINDS = ("embed", "gradient", "feature", "feature_loss")
ERR_ADAPTER_FILE = "adapter file {path}: {problem}"
ERR_ADAPTER_FIELD = "adapter file {path}: [{table}] {key} {problem}"
ERR_MISSING_FUNCTION = "adapter {name}: expected a function {module}.{function} in {path}, found none; fix the adapter file"
ERR_NOT_CALLED = (
    "adapter {name}: {script} never called {what}; check the adapter's [{table}] fields against the script"
)


@dataclass(frozen=True)
class AdapterSpec:
    """The parsed adapter file."""

    path: str
    name: str
    dataset_module: str
    dataset_function: str
    returns: tuple[str, ...]
    rows: str
    kind: str
    fields: dict = field(default_factory=dict)

    @property
    def site(self) -> str:
        if self.kind == "embed":
            return f"net.{self.fields['method']} on real batches"
        if self.kind == "gradient":
            return f"{self.fields['match_module']}.{self.fields['match_function']} after a real gradient"
        if self.kind == "feature_loss":
            return f"{self.fields['loss_module']}.{self.fields['loss_function']} on real and synthetic features"
        return f"{self.fields['feature_module']}.{self.fields['feature_function']} on real features"


def _text(path, table: dict, table_name: str, key: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InputError(ERR_ADAPTER_FIELD.format(path=path, table=table_name, key=key, problem="must be a non-empty string"))
    return value.strip()


def load_adapter(path: str | Path) -> AdapterSpec:
    """Read and check an adapter file; every problem is a one-line :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(ERR_ADAPTER_FILE.format(path=path, problem="does not exist"))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(ERR_ADAPTER_FILE.format(path=path, problem=f"is not valid TOML ({error})")) from None
    for table in ("dataset", "matching"):
        if not isinstance(data.get(table), dict):
            raise InputError(ERR_ADAPTER_FILE.format(path=path, problem=f"needs a [{table}] table"))
    dataset, matching = data["dataset"], data["matching"]
    returns = dataset.get("returns")
    if not isinstance(returns, list) or not returns or any(r not in RETURN_ITEMS for r in returns):
        raise InputError(ERR_ADAPTER_FIELD.format(
            path=path, table="dataset", key="returns", problem=f"must list the returned items, each one of {', '.join(RETURN_ITEMS)}"))
    if "train" not in returns:
        raise InputError(ERR_ADAPTER_FIELD.format(path=path, table="dataset", key="returns", problem="must include train"))
    rows = dataset.get("rows", "pair")
    if rows not in ("pair", "triple"):
        raise InputError(ERR_ADAPTER_FIELD.format(path=path, table="dataset", key="rows", problem="must be pair or triple"))
    kind = matching.get("kind")
    if kind not in KINDS:
        raise InputError(ERR_ADAPTER_FIELD.format(path=path, table="matching", key="kind", problem=f"must be one of {', '.join(KINDS)}"))
    needed = {
        "embed": ("network_module", "network_function", "method"),
        "gradient": ("match_module", "match_function"),
        "feature": ("network_module", "network_function", "feature_module", "feature_function"),
        "feature_loss": ("network_module", "network_function", "loss_module", "loss_function"),
    }[kind]
    fields = {key: _text(path, matching, "matching", key) for key in needed}
    header = data.get("adapter", {})
    name = str((header.get("name") if isinstance(header, dict) else None) or path.stem)
    return AdapterSpec(
        path=str(path), name=name, dataset_module=_text(path, dataset, "dataset", "module"),
        dataset_function=_text(path, dataset, "dataset", "function"), returns=tuple(returns), rows=rows,
        kind=kind, fields=fields,
    )


class AdapterPatcher(Patcher):
    """A fork described by an adapter file (--adapter FILE)."""

    draws_by_permutation = True

    codebase = "adapter"

    def __init__(self, session) -> None:
        super().__init__(session)
        self.spec: AdapterSpec = session.adapter
        self.expected_site = self.spec.site
        self._in_script: list[tuple[str, str, object]] = []
        self._dataset_called = False

    def prepare(self) -> None:
        session, spec = self.session, self.spec
        session.summary.variant = spec.kind
        session.summary.fork = spec.name
        self.require_recorded_draws()
        session.stack.replace(np.random, "permutation", session.recorder.patched_permutation(np.random.permutation))
        self._patch(spec.dataset_module, spec.dataset_function, self._dataset)
        fields = spec.fields
        if spec.kind == "embed":
            self.embed = EmbedInterceptor(session, method=fields["method"])
            self._patch(fields["network_module"], fields["network_function"], self._network(self.embed.wrap_network))
        elif spec.kind == "feature":
            self.features = ForwardFeatureInterceptor(session)
            self._patch(fields["network_module"], fields["network_function"], self._network(self.features.wrap_network))
            self._patch(fields["feature_module"], fields["feature_function"], self.features.wrap_feature,
                        check=check_feature_function)
        elif spec.kind == "feature_loss":
            self.feature_loss = FeatureLossInterceptor(session)
            self._patch(fields["network_module"], fields["network_function"], self._network(self.feature_loss.wrap_network))
            self._patch(fields["loss_module"], fields["loss_function"], self.feature_loss.wrap_loss,
                        check=check_feature_loss)
        else:
            require_call_site(self.codebase, session.script.name, session.source, r"CrossEntropyLoss\s*\(",
                              "build its criterion with nn.CrossEntropyLoss()")
            self.channel = RealGradientChannel(session)
            session.stack.replace(torch.nn, "CrossEntropyLoss", self.channel.criterion_class(torch.nn.CrossEntropyLoss))
            if session.mode == "sync":
                session.stack.replace(torch.autograd, "grad", self.channel.patched_grad(torch.autograd.grad))
                self._patch(fields["match_module"], fields["match_function"], self.channel.patched_match_loss)

    def _patch(self, module_name: str, function: str, wrap, check=None) -> None:
        """Patch ``module.function`` now, or in the script's namespace when the module is the script.

        *check* (from :mod:`._shapes`) refuses a function of the wrong shape before it is wrapped.
        """
        if module_name in (self.session.script.stem, "__main__"):
            self._in_script.append((module_name, function, wrap, check))
            return
        module = self.session.import_module(module_name)
        original = self._lookup(module, function, module_name, getattr(module, "__file__", module_name))
        if check is not None:
            check(original, name=self.spec.name, label=f"{module_name}.{function}")
        self.session.stack.replace(module, function, wrap(original))

    def prepare_script(self, namespace: dict) -> None:
        stem = self.session.script.stem
        for _, function, wrap, check in self._in_script:
            original = self._lookup(namespace, function, stem, "the script")
            if check is not None:
                check(original, name=self.spec.name, label=f"{stem}.{function}")
            self.session.stack.replace_item(namespace, function, wrap(original), name=f"{stem}.{function}")

    def _lookup(self, owner, name: str, label: str, path: str):
        value = owner.get(name) if isinstance(owner, dict) else getattr(owner, name, None)
        if value is None or not callable(value):
            raise PatchError(ERR_MISSING_FUNCTION.format(name=self.spec.name, module=label, function=name, path=path))
        return value

    def requires_interception(self) -> bool:
        return True

    def finish(self) -> None:
        if not self._dataset_called and self.session.injected is not None:
            raise PatchError(ERR_NOT_CALLED.format(
                name=self.spec.name, script=self.session.script.name, table="dataset",
                what=f"{self.spec.dataset_module}.{self.spec.dataset_function}"))
        if self.spec.kind == "feature_loss":
            self.feature_loss.finish(self.spec.fields["loss_function"])
        super().finish()

    def _network(self, wrap_network):
        return lambda original: wrapping_factory(original, wrap_network)

    def _dataset(self, original):
        session, spec = self.session, self.spec

        def load(*args, **kwargs):
            self._dataset_called = True
            injected = session.injected
            if injected is None:
                result = original(*args, **kwargs)
                items = result if isinstance(result, tuple) else (result,)
                if len(items) != len(spec.returns):
                    raise PatchError(
                        f"adapter {spec.name}: {spec.dataset_module}.{spec.dataset_function} returned {len(items)} "
                        f"items but [dataset] returns lists {len(spec.returns)}"
                    )
                train = items[spec.returns.index("train")]
                session.table.bind_labels(dataset_labels(train), what=f"groups from {session.table.source}")
                return result
            real, triples = injected.real, spec.rows == "triple"
            values = {
                "channel": real.channel, "im_size": tuple(real.im_size), "num_classes": real.num_classes,
                "class_names": list(real.class_names), "mean": injected.mean, "std": injected.std,
                "train": injected.train_rows(groups=triples), "test": injected.test_rows(groups=triples),
                "testloader": injected.test_loader(groups=triples), "none": None,
            }
            session.summary.dataset = {"preset": injected.spec, "train_rows": len(real.train)}
            session.summary.note(
                f"{spec.dataset_module}.{spec.dataset_function} answered with preset {injected.spec} as {', '.join(spec.returns)}"
            )
            out = tuple(values[item] for item in spec.returns)
            return out if len(out) > 1 else out[0]

        load.__wrapped__ = original
        return load

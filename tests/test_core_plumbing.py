"""The shared plumbing: one device resolver, one plain-output rule, one reference cache, preflight."""

from __future__ import annotations

import io

import pytest
import torch

from ddaudit._output import is_plain_output
from ddaudit.devices import check_device_name, resolve_device
from ddaudit.errors import ConfigError
from ddaudit.preflight import check_outputs
from ddaudit.reference_cache import ReferenceCache, content_hash


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


# ---------------------------------------------------------------- devices


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:3", "mps", "CPU", " cuda:1 "])
def test_device_names_ddaudit_knows(name):
    assert check_device_name(name) == name.strip().lower()


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x", "cuda:", "cuda:-1", "", "cpu:0", "xla"])
def test_other_device_names_are_refused_with_the_choices(name):
    with pytest.raises(ConfigError, match="auto, cpu, cuda, cuda:N or mps"):
        resolve_device(name)


def test_auto_and_cpu_resolve_and_a_missing_gpu_is_a_config_error():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(torch.device("cpu")) == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda:0")
    else:
        with pytest.raises(ConfigError, match="CUDA GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_every_entry_point_uses_the_same_resolver():
    from ddaudit import auditing
    from ddaudit.mitigate import bias_model, surrogate, without_labels

    assert auditing.resolve_device is resolve_device
    assert surrogate.resolve_device is resolve_device
    with pytest.raises(ConfigError, match="unknown --device 'tpu'"):
        bias_model.train_bias_model(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), device="tpu")
    with pytest.raises(ConfigError, match="unknown --device 'tpu'"):
        without_labels.label_free((torch.zeros(2, 1, 4, 4), torch.tensor([0, 1])), device="tpu")


# ---------------------------------------------------------------- plain output


@pytest.mark.parametrize("environ,tty,plain", [
    ({}, True, False),
    ({}, False, True),
    ({"CI": "true"}, True, True),
    ({"CI": "1"}, True, True),
    ({"CI": "false"}, True, False),
    ({"CI": "0"}, True, False),
    ({"CI": ""}, True, False),
    ({"TERM": "dumb"}, True, True),
    ({"TERM": "xterm-256color"}, True, False),
])
def test_one_plain_output_rule(environ, tty, plain):
    assert is_plain_output(_Stream(tty), environ=environ) is plain


def test_cli_and_gates_share_the_rule(monkeypatch):
    from ddaudit.cli import _common
    from ddaudit.gate import is_plain_output as gate_rule

    assert gate_rule is is_plain_output
    monkeypatch.setattr(_common.sys, "stderr", _Stream(True))
    monkeypatch.setenv("CI", "false")
    monkeypatch.delenv("TERM", raising=False)
    assert _common.plain_output() is False
    monkeypatch.setenv("TERM", "dumb")
    assert _common.plain_output() is True


# ---------------------------------------------------------------- reference cache


def test_content_hash_sees_every_value():
    x = torch.zeros(500, 3, 4, 4)
    base = content_hash(x)
    for row in (0, 1, 96, 250, 499):  # the old checksum read only every 97th row
        changed = x.clone()
        changed[row, 1, 2, 3] = 1e-3
        assert content_hash(changed) != base
    assert content_hash(x.clone()) == base
    assert content_hash(x.double()) != base  # dtype is part of the content
    assert content_hash(x.reshape(250, 6, 4, 4)) != base  # and so is the shape


def test_reference_cache_misses_on_changed_data_and_reuses_on_same(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return torch.arange(6).reshape(2, 3).numpy()

    x = torch.zeros(200, 2)
    key = {"content": content_hash(x)}
    cache = ReferenceCache({}, tmp_path)
    cache.get("full", key, compute)
    assert len(calls) == 1 and len(list(tmp_path.glob("reference-full-*.npy"))) == 1
    ReferenceCache({}, tmp_path).get("full", key, compute)  # from disk
    assert len(calls) == 1
    x[123, 1] = 5.0
    ReferenceCache({}, tmp_path).get("full", {"content": content_hash(x)}, compute)
    assert len(calls) == 2
    ReferenceCache({}, tmp_path).get("random_subset", key, compute)  # subsets stay in memory only
    assert len(list(tmp_path.glob("*.npy"))) == 2


# ---------------------------------------------------------------- preflight


def test_outputs_are_distinct_and_proven_writable(tmp_path):
    with pytest.raises(ConfigError, match="both name"):
        check_outputs({"--json": tmp_path / "a.json", "--markdown": tmp_path / "sub" / ".." / "a.json"}, force=False)
    with pytest.raises(ConfigError, match="also an input"):
        check_outputs({"--json": tmp_path / "in.pt"}, force=True, inputs=[tmp_path / "in.pt"])
    with pytest.raises(ConfigError, match="cannot write"):
        check_outputs({"--json": "/proc/ddaudit.json"}, force=False)
    given = check_outputs({"--json": tmp_path / "a.json", "--junit": None, "--md": "-"}, force=False)
    assert list(given) == ["--json"]
    assert list(tmp_path.iterdir()) == []  # the proof leaves nothing behind


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_reports_are_written_with_the_umask_and_keep_a_replaced_files_mode(tmp_path, umask):
    import os
    import stat

    from ddaudit.report import write_json, write_text

    before = os.umask(umask)
    try:
        fresh = write_json(tmp_path / "report.json", {"a": 1})
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask
        kept = tmp_path / "kept.md"
        kept.write_text("old")
        kept.chmod(0o640)
        write_text(kept, "new", force=True)
        assert kept.read_text() == "new" and stat.S_IMODE(kept.stat().st_mode) == 0o640
        # A plain open() gives the same mode as the atomic writer.
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        assert stat.S_IMODE(plain.stat().st_mode) == stat.S_IMODE(fresh.stat().st_mode)
    finally:
        os.umask(before)

"""What a report's figures depend on is recorded, and ``--threads`` sets it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddaudit.errors import ConfigError
from ddaudit.reproducibility import check_threads, cpu_model, cpu_path, runtime_settings, use_threads

DDAUDIT = str(Path(sys.executable).parent / "ddaudit")


def test_thread_counts_are_checked():
    assert check_threads(None) is None and check_threads(3) == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="--threads must be a positive integer"):
            check_threads(bad)


def test_use_threads_sets_torch_and_none_leaves_it():
    before = torch.get_num_threads()
    try:
        assert use_threads(2) == 2 == torch.get_num_threads()
        assert use_threads(None) == 2
        assert use_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_runtime_settings_name_threads_cpu_and_software():
    settings = runtime_settings()
    assert settings["threads"] == torch.get_num_threads()
    assert settings["torch"] == torch.__version__
    assert settings["cpu"] == cpu_model() and settings["cpu"]
    assert settings["cpu_path"] == cpu_path()
    assert settings["cpu_path"] in ("amx-bf16", "avx512-bf16", "avx512", "avx2", "default") or settings["cpu_path"]
    # The path agrees with torch's own probes on this machine.
    if torch.cpu._is_amx_tile_supported():
        assert settings["cpu_path"] == "amx-bf16"
    elif torch.cpu._is_avx512_bf16_supported():
        assert settings["cpu_path"] == "avx512-bf16"
    assert set(settings) == {"threads", "cpu", "cpu_path", "torch", "numpy", "python", "ddaudit"}
    # Plain types only: the settings go into files read back with torch.load(weights_only=True).
    assert all(type(value) in (int, str) for value in settings.values())


@pytest.mark.parametrize("command", [["check", "set.pt", "--real", "cmnist-fg"], ["probe", "set.pt", "--real", "cmnist-fg"],
                                     ["weights", "--real", "cmnist-fg", "-o", "w.pt"], ["demo", "--out", "demo"]])
def test_every_training_command_refuses_a_bad_thread_count_before_work(command, tmp_path):
    proc = subprocess.run([DDAUDIT, *command, "--threads", "0"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "error: --threads must be a positive integer, got 0\n"
    assert list(tmp_path.iterdir()) == []

"""The examples run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_custom_distiller_example_runs_and_reports():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "custom_distiller.py"), "--iterations", "2", "--ipc", "2", "--epochs", "3"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("accuracy") and "DEO_M" in line
    # 2 iterations x 10 classes went through the fair wrapper.
    assert "(loss calls: 20)" in line

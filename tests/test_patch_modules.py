"""``ddaudit.hooks.patch`` leaves ``sys.modules`` as the caller had it.

A driver script that lives inside the codebase folder (a common layout: a
notebook-style script next to ``main_DM.py``) is itself a module inside that
folder; the patch used to forget it on exit, so pickling one of its classes
failed. Run as a subprocess so ``__main__`` is a real script.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

DC = Path(__file__).parent / "fixtures" / "codebases" / "datasetcondensation"

DRIVER = '''
import pickle
import sys

import networks  # the codebase's own module, imported by the caller before patching
import ddaudit.hooks


class Marker:
    pass


main_before, networks_before = sys.modules["__main__"], sys.modules["networks"]
with ddaudit.hooks.patch("datasetcondensation", "main_DM.py", mode="none"):
    pass
assert sys.modules["__main__"] is main_before, "the caller's __main__ was removed"
assert sys.modules["networks"] is networks_before, "a module the caller imported was replaced"
assert pickle.loads(pickle.dumps(Marker())).__class__ is Marker
print("ok")
'''


def test_a_driver_inside_the_codebase_keeps_its_modules(tmp_path):
    codebase = tmp_path / "DatasetCondensation"
    shutil.copytree(DC, codebase)
    (codebase / "driver.py").write_text(DRIVER)
    proc = subprocess.run([sys.executable, "driver.py"], cwd=codebase, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"

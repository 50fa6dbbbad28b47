"""The HTML report in a real browser: headless Chromium renders the page written by the CLI.

Asserts on what is shown: the verdict and every section in the rendered DOM, the
verdict banner's colour and the pictures' pixels in a screenshot, and no console
message (a script error or a blocked network load would print one: a tampered
page proves the capture sees them). Outside CI a machine without Chromium skips
with the reason shown; with CI=true a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddaudit.data import load_real

DDAUDIT = str(Path(sys.executable).parent / "ddaudit")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0"]
FAIL_RED = (0xB3, 0x26, 0x1E)  # --fail in the page's CSS


@pytest.fixture(scope="module")
def browser() -> str:
    found = os.environ.get("DDAUDIT_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no Chromium is installed: .ci/run installs it with apt-get (package chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium); CI installs it and runs this test")
    return found


def render(browser: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """One fresh headless browser on *page* with a throw-away profile."""
    command = [browser, *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def probe_page(tmp_path_factory) -> Path:
    """The page `ddaudit probe --html` writes for a set collapsed onto each class's majority colour."""
    folder = tmp_path_factory.mktemp("page")
    real = load_real("cmnist-fg", n_train=2000, n_test=60)
    rows = torch.cat([torch.nonzero((real.train.y == c) & (real.train.a == c)).flatten()[:10] for c in range(10)])
    synthetic = folder / "res_collapsed.pt"
    torch.save({"data": [[real.train.x[rows], real.train.y[rows]]]}, synthetic)
    page = folder / "report.html"
    proc = subprocess.run(
        [DDAUDIT, "probe", str(synthetic), "--real", "cmnist-fg", "--real-option", "n_train=2000",
         "--real-option", "n_test=60", "--no-cache", "--device", "cpu", "--max-majority-share", "0.5",
         "--html", str(page), "--plots", str(folder / "plots")],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 1, proc.stderr  # the gate fails: every class is one colour
    plots = sorted(p.name for p in (folder / "plots").iterdir())
    assert plots == ["composition.png", "distilled_vs_reference.png", "synthetic_by_group.png"]
    return page


def test_browser_shows_verdict_and_every_section(browser, probe_page, tmp_path):
    proc = render(browser, probe_page, tmp_path / "profile", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    for section in ("verdict", "gates", "composition", "pictures", "settings"):
        assert f'id="{section}"' in dom, section
    assert 'data-status="fail"' in dom and ">FAIL<" in dom
    assert "--max-majority-share" in dom
    assert dom.count("data:image/png;base64,") == 3  # grid by group, composition heat map, references
    assert console_lines(proc.stderr) == []


def test_screenshot_shows_the_verdict_banner_and_the_pictures(browser, probe_page, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    proc = render(browser, probe_page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,2600",
                  "--hide-scrollbars")
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    top = pixels[:300]
    assert (np.abs(top - FAIL_RED).sum(axis=2) < 12).sum() > 5000  # the red FAIL banner is on screen
    # the composition grid frames class 0's images in pure red and class 1's in pure green
    assert (np.abs(pixels - (255, 0, 0)).sum(axis=2) < 30).sum() > 2000
    assert (np.abs(pixels - (0, 255, 0)).sum(axis=2) < 30).sum() > 2000
    assert console_lines(proc.stderr) == []


def test_console_capture_sees_a_script_and_a_network_load(browser, probe_page, tmp_path):
    tampered = tmp_path / "tampered.html"
    page = probe_page.read_text()
    tampered.write_text(page.replace("</body>", '<script>console.error("x")</script>'
                                                '<img src="https://example.invalid/x.png"></body>'))
    proc = render(browser, tampered, tmp_path / "profile", "--dump-dom")
    lines = console_lines(proc.stderr)
    assert any("Content Security Policy" in line and "script" in line for line in lines), proc.stderr[-2000:]
    assert any("example.invalid" in line for line in lines)


def test_missing_browser_fails_under_ci(tmp_path):
    """The CI path never skips the browser test: without Chromium it fails, saying why."""
    env = {key: value for key, value in os.environ.items() if key != "DDAUDIT_CHROMIUM"}
    env.update(CI="true", PATH=str(tmp_path))  # no browser on this PATH
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::test_browser_shows_verdict_and_every_section"],
        capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parent.parent,
    )
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "no Chromium is installed" in proc.stdout


@pytest.fixture(scope="module")
def check_page(tmp_path_factory) -> Path:
    """The page `ddaudit check --html` writes (evaluators, references, probe) for a collapsed set."""
    folder = tmp_path_factory.mktemp("check-page")
    real = load_real("cmnist-fg", n_train=2000, n_test=60)
    rows = torch.cat([torch.nonzero((real.train.y == c) & (real.train.a == c)).flatten()[:10] for c in range(10)])
    synthetic = folder / "res_collapsed.pt"
    torch.save({"data": [[real.train.x[rows], real.train.y[rows]]]}, synthetic)
    page = folder / "report.html"
    proc = subprocess.run(
        [DDAUDIT, "check", str(synthetic), "--real", "cmnist-fg", "--real-option", "n_train=2000",
         "--real-option", "n_test=60", "--protocol", "quick", "--model", "ConvNetW32", "--epochs", "10",
         "--num-eval", "2", "--n-boot", "50", "--device", "cpu", "--cache-dir", str(folder / "cache"),
         "--max-majority-share", "0.5", "--html", str(page)],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 1, proc.stderr
    return page


def test_browser_shows_the_check_page(browser, check_page, tmp_path):
    proc = render(browser, check_page, tmp_path / "profile", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    for section in ("verdict", "gates", "metrics", "composition", "cells", "pictures", "settings"):
        assert f'id="{section}"' in dom, section
    assert ">FAIL<" in dom and "DEO_M" in dom and "95% CI" in dom and "ref: random subset" in dom
    assert dom.count("data:image/png;base64,") == 4  # grid by group, composition, accuracy per cell, references
    assert console_lines(proc.stderr) == []

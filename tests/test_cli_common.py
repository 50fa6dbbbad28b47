"""Shared CLI behaviour: plain progress under CI, one-line errors with exact text."""

from __future__ import annotations

import io

import pytest
import typer
from rich.console import Console

from ddaudit.cli import _common
from ddaudit.errors import EXIT_INTERNAL, EXIT_USAGE, ConfigError


def test_plain_progress_prints_quarters_with_time_left(monkeypatch):
    monkeypatch.setenv("CI", "1")
    buffer = io.StringIO()
    console = Console(file=buffer, width=200)
    with _common.phase_progress(console) as progress:
        for done in range(0, 101):
            progress("training evaluators on the distilled set", done, 100)
    lines = buffer.getvalue().strip().splitlines()
    assert lines[0] == "training evaluators on the distilled set ..."
    assert [line.split(":")[1].split(",")[0].strip() for line in lines[1:4]] == ["25/100 steps", "50/100 steps", "75/100 steps"]
    assert "left" in lines[1] and lines[-1].strip().startswith("training evaluators on the distilled set: done (100 steps")
    assert len(lines) == 5


def test_user_errors_keep_brackets_and_exit_2(capsys):
    @_common.handle_errors
    def command():
        raise ConfigError("unknown key in [tool.ddaudit]: 'max_deo'")

    with pytest.raises(typer.Exit) as exit_info:
        command()
    assert exit_info.value.exit_code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "[tool.ddaudit]" in err and err.count("\n") == 1


def test_bugs_exit_101_without_traceback(capsys, monkeypatch):
    monkeypatch.delenv("DDAUDIT_DEBUG", raising=False)

    @_common.handle_errors
    def command():
        raise ZeroDivisionError("boom")

    with pytest.raises(typer.Exit) as exit_info:
        command()
    assert exit_info.value.exit_code == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: boom" in err and "Traceback" not in err


def test_key_values_are_typed():
    assert _common.parse_key_values(["n_test=20", "bias-ratio=0.95", "flag=true", "name=x"], "--real-option") == {
        "n_test": 20, "bias_ratio": 0.95, "flag": True, "name": "x",
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        _common.parse_key_values(["oops"], "--real-option")

"""ruff (check and format) and mypy, as configured in pyproject.toml, must be clean."""

from __future__ import annotations

import subprocess

from tests.conftest import ROOT, VENV_BIN


def test_ruff_is_clean() -> None:
    out = subprocess.run(
        [str(VENV_BIN / "ruff"), "check", "app", "ui", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format_is_clean() -> None:
    out = subprocess.run(
        [str(VENV_BIN / "ruff"), "format", "--check", "app", "ui", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_is_clean() -> None:
    out = subprocess.run([str(VENV_BIN / "mypy")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr

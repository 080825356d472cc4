"""Shared test set-up."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Qt tests run offscreen unless a test asks for a real (Xvfb) display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def livesmith_cmd() -> list[str]:
    """Argument list that runs the `livesmith` command of this checkout."""
    return [sys.executable, "-m", "app"]


@pytest.fixture(scope="session")
def package_cache() -> Path:
    """The package cache of real builds in tests, shared across runs like a user's cache,
    so warm reruns don't download again."""
    base = Path(os.environ.get("LIVESMITH_TEST_CACHE", Path.home() / ".cache/livesmith-tests"))
    path = base / "package-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_root() -> bool:
    return os.geteuid() == 0


needs_root = pytest.mark.skipif(not is_root(), reason="needs root (loop devices, mounts)")

"""Helpers for the packaging tests: the scripts in packaging/ loaded as modules."""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

from app.cli import build_parser
from tests.conftest import ROOT

PACKAGING = ROOT / "packaging"
DEBIAN_PYTHON = "/usr/bin/python3"  # Debian's interpreter with Debian's python3-* libraries


def load_script(name: str) -> ModuleType:
    """packaging/<name> (an executable script without .py) imported as a module."""
    path = PACKAGING / name
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def command_names(parser: argparse.ArgumentParser | None = None) -> list[str]:
    """The subcommands the CLI discovers in this checkout (the set grows as commands land)."""
    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


def make_iso(tmp: Path, label: str = "LIVESMITH_TEST") -> Path:
    """A small real ISO 9660 image (Rock Ridge + Joliet) made with xorriso."""
    tree = tmp / "iso-tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "boot" / "hello.txt").write_text("hello from the test ISO\n")
    iso = tmp / "test.iso"
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-quiet", "-V", label, "-R", "-J", "-o", str(iso), str(tree)],
        check=True,
        capture_output=True,
    )
    return iso

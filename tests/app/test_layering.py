"""`app/` is the Qt-free core: nothing in it may import PySide6 or the `ui` package. And no
module of app/ or ui/ deserialises objects (pickle and kin): what crosses a process boundary
is JSON (app.frames)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

APP = ROOT / "app"
# Modules that rebuild arbitrary objects from bytes.
OBJECT_SERIALISERS = ("pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle")


def test_importing_every_app_module_loads_no_qt_and_no_ui() -> None:
    # A fresh interpreter, so modules loaded by other tests cannot hide an indirect import.
    script = (
        "import importlib, json, pkgutil, sys, app\n"
        "names = [m.name for m in pkgutil.walk_packages(app.__path__, 'app.')]\n"
        "names = [n for n in names if n != 'app.__main__']\n"
        "for n in names: importlib.import_module(n)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'ui'))\n"
        "print(json.dumps({'modules': names, 'bad': bad}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    assert "app.cli" in result["modules"]  # the walk really found the package
    assert result["bad"] == []


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in a parsed file."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def offending_imports(folders: list[Path], banned: tuple[str, ...]) -> list[str]:
    offenders = []
    for folder in folders:
        for path in folder.rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for line, name in imported_modules(tree):
                if name.split(".")[0] in banned:
                    offenders.append(f"{path.relative_to(folder.parent)}:{line}: {name}")
    return offenders


def test_no_app_source_file_imports_qt_or_ui() -> None:
    banned = ("PySide6", "shiboken6", "PyQt5", "PyQt6", "ui")
    assert offending_imports([APP], banned) == []


def test_nothing_in_app_or_ui_imports_pickle_or_kin() -> None:
    assert offending_imports([APP, ROOT / "ui"], OBJECT_SERIALISERS) == []


def test_the_serialiser_guard_detects_a_pickle_import(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import json, pickle as p\nfrom marshal import loads\n")
    assert [
        line.split(":", 1)[1] for line in offending_imports([tmp_path], OBJECT_SERIALISERS)
    ] == ["1: pickle", "2: marshal"]


def test_the_guard_detects_a_qt_import(tmp_path: Path) -> None:
    # The AST check must be able to fail: feed it a file that imports PySide6.
    bad = tmp_path / "bad.py"
    bad.write_text("from PySide6.QtCore import QObject\n")
    tree = ast.parse(bad.read_text())
    modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert modules == ["PySide6.QtCore"]


def _is_main_guard(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
        and any(
            isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators
        )
    )


def _exits(tree: ast.AST) -> list[int]:
    """Lines that leave the interpreter: sys.exit/os._exit/exit()/quit() or raise SystemExit."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and (func.value.id, func.attr) in {("sys", "exit"), ("os", "_exit")}
            ) or (isinstance(func, ast.Name) and func.id in {"exit", "quit"}):
                lines.append(node.lineno)
        elif isinstance(node, ast.Raise) and node.exc is not None:
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(raised, ast.Name) and raised.id == "SystemExit":
                lines.append(node.lineno)
    return lines


def test_app_leaves_the_interpreter_only_from_entry_points() -> None:
    # The core raises LivesmithError; only `python -m ...` entry blocks turn a result into an
    # exit status.
    offenders = []
    for path in APP.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        allowed: set[int] = set()
        if path.name == "__main__.py":
            allowed = set(_exits(tree))
        for node in ast.walk(tree):
            if _is_main_guard(node):
                allowed |= set(_exits(node))
        offenders += [
            f"{path.relative_to(ROOT)}:{line}" for line in _exits(tree) if line not in allowed
        ]
    assert offenders == []
    # The scan does see exits: the entry blocks have them.
    assert _exits(ast.parse((APP / "__main__.py").read_text()))


def test_the_exit_scan_finds_a_stray_exit() -> None:
    stray = ast.parse("import sys\ndef f():\n    sys.exit(1)\nraise SystemExit\n")
    assert sorted(_exits(stray)) == [3, 4]

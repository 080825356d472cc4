"""The Flatpak manifest (not buildable here: flatpak-builder and the runtimes cannot be fetched).

Checked instead: structure, permissions, that every Python dependency is a pinned module at a
version pyproject.toml accepts, and that every file the app module installs exists.
"""

from __future__ import annotations

import json
import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from app.resources import APP_ID
from tests.conftest import ROOT
from tests.packaging.conftest import PACKAGING

MANIFEST = PACKAGING / "flatpak" / f"{APP_ID}.json"
PROVIDED_BY_BASE_APP = {"pyside6-essentials"}  # io.qt.PySide.BaseApp ships PySide6


def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def modules_by_name() -> dict[str, dict]:
    return {m["name"]: m for m in manifest()["modules"]}


def test_manifest_identity_and_runtime() -> None:
    m = manifest()
    assert m["id"] == APP_ID
    assert m["command"] == "livesmith"
    assert m["runtime"] == "org.kde.Platform" and m["sdk"] == "org.kde.Sdk"
    assert m["base"] == "io.qt.PySide.BaseApp"
    assert m["base-version"] == m["runtime-version"]  # the base app is built per KDE runtime
    assert "/app/cleanup-BaseApp.sh" in m["cleanup-commands"]


def test_permissions_are_those_a_usb_writer_needs() -> None:
    args = manifest()["finish-args"]
    for needed in (
        "--system-talk-name=org.freedesktop.UDisks2",
        "--device=all",
        "--socket=wayland",
        "--socket=fallback-x11",
        "--share=ipc",
    ):
        assert needed in args
    # No blanket access: home/host stay behind the file chooser portal; no session bus holes.
    assert not any(
        a.startswith(
            (
                "--filesystem=home",
                "--filesystem=host",
                "--talk-name=org.freedesktop.Flatpak",
                "--socket=session-bus",
                "--socket=system-bus",
            )
        )
        for a in args
    )
    assert len(args) == len(set(args))


def test_every_python_dependency_is_a_pinned_module() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    modules = modules_by_name()
    for spec in pyproject["project"]["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if name in PROVIDED_BY_BASE_APP:
            continue
        module = modules.get(f"python3-{name}")
        assert module is not None, f"no Flatpak module for {spec}"
        (source,) = module["sources"]
        assert source["type"] == "file"
        assert source["url"].startswith("https://files.pythonhosted.org/packages/")
        assert re.fullmatch(r"[0-9a-f]{64}", source["sha256"])
        filename = source["url"].rsplit("/", 1)[1]
        match = re.match(r"([A-Za-z0-9_.]+?)-(\d[^-]*?)(?:-py3-none-any\.whl|\.tar\.gz)$", filename)
        assert match, filename
        assert canonicalize_name(match.group(1)) == name
        assert Version(match.group(2)) in req.specifier, f"{filename} does not satisfy {spec}"
        (command,) = module["build-commands"]
        assert "--no-index" in command and "--prefix=${FLATPAK_DEST}" in command
        assert canonicalize_name(command.split()[-1]) == name  # installs this very package


def test_the_app_module_installs_files_that_exist() -> None:
    app_module = modules_by_name()["livesmith"]
    (source,) = app_module["sources"]
    assert source["type"] == "dir" and (MANIFEST.parent / source["path"]).resolve() == ROOT
    commands = " ".join(app_module["build-commands"])
    for relative in re.findall(r"(?:packaging|resources)/[\w./-]+", commands):
        assert (ROOT / relative).is_file(), relative
    for package in ("app", "ui", "resources"):
        assert f" {package} " in f" {commands} " and (ROOT / package / "__init__.py").is_file()
    assert f"/share/icons/hicolor/scalable/apps/{APP_ID}.svg" in commands
    assert "/share/applications" in commands and "/share/metainfo" in commands
    assert "${FLATPAK_DEST}/bin/livesmith" in commands

"""`livesmith packages SOURCE [--json] [--resolve NAME ...]`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.cli import EXIT_INPUT, EXIT_OK, main
from tests.app.packages.fixtures import (
    busybox_package,
    make_arch_folder,
    make_glaucus_repo,
    text_package,
)
from tests.conftest import ROOT

PKGS = [
    busybox_package(depends=("musl",), conflicts=("toybox",)),
    text_package("musl"),
    text_package("app", depends=("busybox", "libgone")),
    text_package("toybox", description="Another small userland"),
]


def test_lists_name_version_size_description_dependencies(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    folder = make_arch_folder(tmp_path, PKGS)
    assert main(["packages", str(folder)]) == EXIT_OK
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("Arch-style packages") and str(folder) in lines[0]
    assert lines[1].split() == ["NAME", "VERSION", "SIZE", "DEPENDS", "DESCRIPTION"]
    busybox = next(line for line in lines if line.startswith("busybox "))
    assert "1.35.0-1" in busybox and "MiB" in busybox and "musl" in busybox
    assert "Tiny utilities in one static binary" in busybox
    assert "Another small userland" in out and "4 package(s)" in out


def test_resolve_shows_why_missing_and_conflicts(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    folder = make_arch_folder(tmp_path, PKGS)
    status = main(["packages", str(folder), "--resolve", "app", "toybox", "nope"])
    out = capsys.readouterr().out
    assert status == EXIT_INPUT
    assert "required by busybox" in out and "required by app" in out
    assert "missing: libgone (required by app)" in out
    assert "unknown: nope (no such package)" in out
    assert "conflict: busybox conflicts with toybox" in out


def test_resolve_ok_exits_zero(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    repo = make_glaucus_repo(tmp_path, PKGS)
    assert main(["packages", str(repo), "--resolve", "busybox"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "musl" in out and "2 package(s)" in out


def test_json_output_as_a_subprocess(tmp_path: Path) -> None:
    repo = make_glaucus_repo(tmp_path, PKGS)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "packages",
            str(repo),
            "--json",
            "--resolve",
            "busybox",
            "--no-deps",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    assert data["source"] == {"kind": "glaucus", "location": str(repo)}
    assert [p["name"] for p in data["packages"]] == ["busybox"]
    assert data["packages"][0]["checksum"].startswith("xxh128:")
    assert data["resolution"]["packages"][0]["reason"] == "selected"
    assert data["resolution"]["ok"] is True

    listing = subprocess.run(
        [sys.executable, "-m", "app", "packages", str(repo), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    names = [p["name"] for p in json.loads(listing.stdout)["packages"]]
    assert names == ["app", "busybox", "musl", "toybox"]


def test_bad_source_is_an_input_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "packages", str(tmp_path / "nope")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == EXIT_INPUT
    assert "does not exist" in out.stderr and str(tmp_path / "nope") in out.stderr


def test_apt_source_resolves_the_kernel(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["packages", "apt", "--resolve", "linux-image-amd64", "--no-deps"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "linux-image-amd64 → linux-image-" in out

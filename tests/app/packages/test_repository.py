"""Carried packages are a repository their own package manager reads: apt, pacman, and our
own readers for the glaucus tree (rad is not packaged for Debian)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import xxhash

from app.packages.arch import ArchSource
from app.packages.deb import DebFolderSource
from app.packages.glaucus import GlaucusSource
from app.packages.model import SourceKind, SourceSpec
from app.packages.repository import ARCH_REPO, write_repository
from app.packages.tarballs import TarballSource
from app.reporter import RecordingReporter
from tests.app.packages.fixtures import (
    FixturePackage,
    make_arch_folder,
    make_deb_folder,
    make_glaucus_repo,
    make_tarball_folder,
    text_package,
)

EPOCH = 1_700_000_000


def packages() -> list[FixturePackage]:
    return [
        text_package(
            "hello", "2.10", description="Says hello\n second line", depends=("libgreet",)
        ),
        text_package("libgreet", "1.0", description="Greeting library"),
    ]


def carry(kind: SourceKind, source_folder: Path, dest: Path) -> Path:
    source = {
        SourceKind.DEB: DebFolderSource,
        SourceKind.ARCH: ArchSource,
        SourceKind.GLAUCUS: GlaucusSource,
        SourceKind.TARBALLS: TarballSource,
    }[kind](SourceSpec(kind, str(source_folder)))
    archives = [(pkg, pkg.file) for pkg in source.packages()]
    assert len(archives) == 2 and all(path is not None for _, path in archives)
    write_repository(kind, archives, dest, RecordingReporter(), epoch=EPOCH)  # type: ignore[arg-type]
    return dest


def assert_generic_index(dest: Path) -> None:
    index = json.loads((dest / "index.json").read_text())
    assert {e["name"] for e in index} == {"hello", "libgreet"}
    for entry in index:
        assert hashlib.sha256((dest / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
    assert len((dest / "SHA256SUMS").read_text().splitlines()) == 2


def apt(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    options = [
        f"-oDir::Etc::SourceList={root / 'sources.list'}",
        "-oDir::Etc::SourceParts=/nonexistent",
        f"-oDir::State={root / 'state'}",
        f"-oDir::State::status={root / 'state' / 'status'}",
        f"-oDir::Cache={root / 'cache'}",
        "-oAPT::Architecture=amd64",
        "-oDebug::NoLocking=1",
    ]
    return subprocess.run([args[0], *options, *args[1:]], capture_output=True, text=True, cwd=root)


def test_apt_resolves_and_fetches_from_a_carried_debian_repository(tmp_path: Path) -> None:
    dest = carry(SourceKind.DEB, make_deb_folder(tmp_path, packages()), tmp_path / "carried")
    assert_generic_index(dest)
    assert {"Packages", "Packages.gz", "Release"} <= {p.name for p in dest.iterdir()}
    root = tmp_path / "apt"
    for folder in ("state/lists/partial", "cache/archives/partial", "download"):
        (root / folder).mkdir(parents=True)
    (root / "state" / "status").write_text("")
    # copy: (not file:) makes apt place fetched files in its archive cache, as from a mirror.
    (root / "sources.list").write_text(f"deb [trusted=yes] copy:{dest} ./\n")
    update = apt("apt-get", "update", root=root)
    assert update.returncode == 0, update.stderr
    show = apt("apt-cache", "show", "hello", root=root)
    assert show.returncode == 0, show.stderr
    assert "Version: 2.10" in show.stdout and "Depends: libgreet" in show.stdout
    assert "Says hello\n second line" in show.stdout  # continuation lines survive
    # apt resolves the dependency from the carried index and fetches both, checksums checked.
    fetched = apt("apt-get", "install", "--download-only", "-y", "hello", root=root)
    assert fetched.returncode == 0, fetched.stderr + fetched.stdout
    debs = sorted(p.name for p in (root / "cache" / "archives").glob("*.deb"))
    assert debs == sorted(p.name for p in dest.glob("*.deb"))


def test_our_debian_reader_uses_the_carried_index(tmp_path: Path) -> None:
    dest = carry(SourceKind.DEB, make_deb_folder(tmp_path, packages()), tmp_path / "carried")
    read = {p.name: p for p in DebFolderSource(SourceSpec(SourceKind.DEB, str(dest))).packages()}
    assert read["hello"].version == "2.10" and read["hello"].depends == ("libgreet",)
    assert read["hello"].checksum is not None and read["hello"].checksum.startswith("sha256:")


def test_pacman_installs_from_a_carried_arch_repository_into_a_custom_root(tmp_path: Path) -> None:
    dest = carry(SourceKind.ARCH, make_arch_folder(tmp_path, packages()), tmp_path / "carried")
    assert_generic_index(dest)
    assert (dest / f"{ARCH_REPO}.db").resolve() == dest / f"{ARCH_REPO}.db.tar.gz"
    target = tmp_path / "root"
    (target / "var/lib/pacman").mkdir(parents=True)
    conf = tmp_path / "pacman.conf"
    conf.write_text(
        f"[options]\nArchitecture = x86_64\nSigLevel = Never\n"
        f"DBPath = {target}/var/lib/pacman/\nCacheDir = {tmp_path}/pkgcache/\n"
        f"LogFile = {tmp_path}/pacman.log\nGPGDir = {tmp_path}/gnupg/\n"
        f"HookDir = {tmp_path}/hooks/\n\n"
        f"[{ARCH_REPO}]\nServer = file://{dest}\n"
    )
    base = [
        "pacman",
        "--config",
        str(conf),
        "--root",
        str(target),
        "--noconfirm",
        "--disable-sandbox",
    ]
    out = subprocess.run([*base, "-Sy", "hello"], capture_output=True, text=True)
    if "unrecognized option '--disable-sandbox'" in out.stderr:  # pacman < 7 has none
        base.remove("--disable-sandbox")
        out = subprocess.run([*base, "-Sy", "hello"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr + out.stdout
    assert (target / "usr/share/hello/README").read_text() == "hello 2.10\n"
    assert (target / "usr/share/libgreet/README").read_text() == "libgreet 1.0\n"  # dependency
    query = subprocess.run([*base, "-Q"], capture_output=True, text=True, check=True).stdout
    assert query.split("\n")[:2] == ["hello 2.10-1", "libgreet 1.0-1"]


def test_our_arch_reader_uses_the_carried_database(tmp_path: Path) -> None:
    dest = carry(SourceKind.ARCH, make_arch_folder(tmp_path, packages()), tmp_path / "carried")
    read = {p.name: p for p in ArchSource(SourceSpec(SourceKind.ARCH, str(dest))).packages()}
    assert read["hello"].version == "2.10-1" and read["hello"].depends == ("libgreet",)
    assert (
        read["hello"].checksum
        == f"sha256:{hashlib.sha256(read['hello'].file.read_bytes()).hexdigest()}"
    )  # type: ignore[union-attr]


def test_a_carried_glaucus_tree_reads_back_with_verified_sums(tmp_path: Path) -> None:
    dest = carry(SourceKind.GLAUCUS, make_glaucus_repo(tmp_path, packages()), tmp_path / "carried")
    assert_generic_index(dest)
    assert (dest / "hello" / "info").read_text() == (
        tmp_path / "glaucus" / "hello" / "info"
    ).read_text()
    read = {p.name: p for p in GlaucusSource(SourceSpec(SourceKind.GLAUCUS, str(dest))).packages()}
    assert read["hello"].version == "2.10" and read["hello"].depends == ("libgreet",)
    for pkg in read.values():
        assert pkg.file is not None
        assert pkg.checksum == f"xxh128:{xxhash.xxh3_128_hexdigest(pkg.file.read_bytes())}"


def test_a_tarball_folder_is_carried_as_files_with_the_generic_index(tmp_path: Path) -> None:
    dest = carry(
        SourceKind.TARBALLS, make_tarball_folder(tmp_path, packages()), tmp_path / "carried"
    )
    assert_generic_index(dest)
    assert sorted(p.name for p in dest.glob("*.tar.zst")) == [
        "hello-2.10.tar.zst",
        "libgreet-1.0.tar.zst",
    ]


def test_the_indexes_are_reproducible(tmp_path: Path) -> None:
    debs = make_deb_folder(tmp_path, packages())
    first = carry(SourceKind.DEB, debs, tmp_path / "one")
    second = carry(SourceKind.DEB, debs, tmp_path / "two")
    for name in ("Packages", "Packages.gz", "Release", "index.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()

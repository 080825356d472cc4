"""Each source format read from real package files, and folder autodetection."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import xxhash

from app.errors import InputError
from app.packages.arch import ArchSource
from app.packages.deb import DebFolderSource, parse_control, parse_relations, read_package
from app.packages.glaucus import parse_info, parse_sum
from app.packages.model import (
    SourceKind,
    SourceSpec,
    compare_versions,
    split_name_version,
    strip_constraint,
)
from app.packages.sources import detect_source, open_source
from tests.app.packages.fixtures import (
    FixturePackage,
    busybox_package,
    make_arch_folder,
    make_deb_folder,
    make_glaucus_repo,
    make_tarball_folder,
    real_deb_folder,
    text_package,
)
from tests.support.debian import debian_package

PKGS = [
    busybox_package(depends=("musl",), provides=("sh",), conflicts=("toybox",)),
    text_package("musl", "1.2.4"),
]


# -- small parsers -------------------------------------------------------------------------
def test_constraints_are_stripped_to_names() -> None:
    assert strip_constraint("glibc>=2.3") == "glibc"
    assert strip_constraint("libc6 (>= 2.34)") == "libc6"
    assert strip_constraint("perl:any") == "perl"
    assert strip_constraint("sh") == "sh"
    assert strip_constraint("libfoo.so=1-64") == "libfoo.so"
    assert parse_relations("initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, kmod") == (
        "initramfs-tools | linux-initramfs-tool",
        "kmod",
    )
    assert parse_relations("a (<< 2), b", keep_versioned=False) == ("b",)


def test_versions_order_like_dpkg() -> None:
    assert compare_versions("1.0~rc1", "1.0") == -1
    assert compare_versions("1:0.1", "9.9") == 1
    assert compare_versions("2.36-9", "2.36-10") == -1
    assert compare_versions("1.35.0-4+deb12u1+b1", "1.35.0-4+deb12u1") == 1
    assert compare_versions("1.0", "1.0") == 0
    real = subprocess.run(["dpkg", "--compare-versions", "1.2.3a-1", "gt", "1.2.3-1"])
    assert (real.returncode == 0) == (compare_versions("1.2.3a-1", "1.2.3-1") > 0)


def test_names_and_versions_from_file_names() -> None:
    assert split_name_version("busybox-1.36.1") == ("busybox", "1.36.1")
    assert split_name_version("linux-firmware-20240101") == ("linux-firmware", "20240101")
    assert split_name_version("python3-foo-2.0-r1") == ("python3-foo", "2.0-r1")
    assert split_name_version("skeleton") == ("skeleton", "")


def test_glaucus_info_files_as_rad_writes_them() -> None:
    # the exact shape of glaucus's core/<name>/info (single or double quotes)
    text = (
        "# SPDX-License-Identifier: MPL-2.0\n\nver='34.2'\n"
        "url='https://cdn.kernel.org/pub/linux/utils/kernel/kmod/kmod-34.2.tar.gz'\n"
        "sum='1b453b17953d134d1c1ba1d115fd9c38'\nbld='libressl muon xz zlib-ng zstd'\n"
        "run='musl zstd'\nopt='empty no-check'\n"
    )
    info = parse_info(text, "info")
    assert info["ver"] == "34.2" and info["run"] == "musl zstd"
    assert parse_info('ver="1.0"\nver="1.1"\n', "info")["ver"] == "1.1"  # rad's own reading
    with pytest.raises(InputError, match="line 2"):
        parse_info("ver='1'\nrun=musl\n", "x/info")


def test_xxhsum_output_forms_are_understood(tmp_path: Path) -> None:
    digest = "6bba86c7e069f56d5a10b435f1c8e49c"
    assert parse_sum(f"{digest}  a.tar.zst\n", "a.tar.zst") == digest
    assert parse_sum(f"XXH128 (a.tar.zst) = {digest}\n", "a.tar.zst") == digest
    assert parse_sum(f"{digest.upper()}\n", "a.tar.zst") == digest
    assert parse_sum("garbage\n", "a.tar.zst") is None


def test_glaucus_sum_is_real_xxhsum_h2_output(tmp_path: Path) -> None:
    repo = make_glaucus_repo(tmp_path, PKGS)
    archive = repo / "busybox" / "busybox-1.35.0.tar.zst"
    real = subprocess.run(
        ["xxhsum", "-H2", str(archive)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert real == xxhash.xxh3_128_hexdigest(archive.read_bytes())
    assert (repo / "busybox" / "sum").read_text().split()[0] == real
    pkg = open_source(detect_source(str(repo))).get("busybox")
    assert pkg is not None and pkg.checksum == f"xxh128:{real}"


# -- each source ---------------------------------------------------------------------------
def test_glaucus_tree(tmp_path: Path) -> None:
    repo = make_glaucus_repo(tmp_path, PKGS)
    assert detect_source(str(repo)) == SourceSpec(SourceKind.GLAUCUS, str(repo))
    source = open_source(detect_source(str(repo)))
    assert [p.name for p in source.packages()] == ["busybox", "musl"]
    busybox = source.get("busybox")
    assert busybox is not None
    assert (busybox.version, busybox.depends, busybox.kind) == (
        "1.35.0",
        ("musl",),
        SourceKind.GLAUCUS,
    )
    assert busybox.file == repo / "busybox" / "busybox-1.35.0.tar.zst"
    assert busybox.size == busybox.file.stat().st_size


def test_glaucus_package_without_archive_is_listed_but_cannot_be_fetched(tmp_path: Path) -> None:
    repo = make_glaucus_repo(tmp_path, PKGS)
    (repo / "musl" / "musl-1.2.4.tar.zst").unlink()
    source = open_source(detect_source(str(repo)))
    musl = source.get("musl")
    assert musl is not None and musl.file is None
    from app.reporter import NullReporter

    with pytest.raises(InputError, match="file of package musl is missing"):
        source.fetch(musl, tmp_path / "cache", NullReporter())


@pytest.mark.parametrize("with_database", [False, True])
def test_arch_folder(tmp_path: Path, with_database: bool) -> None:
    folder = make_arch_folder(tmp_path, PKGS, with_database=with_database)
    spec = detect_source(str(folder))
    assert spec.kind is SourceKind.ARCH
    source = open_source(spec)
    assert isinstance(source, ArchSource)
    busybox = source.get("busybox")
    assert busybox is not None
    assert busybox.version == "1.35.0-1"
    assert busybox.depends == ("musl",) and busybox.provides == ("sh",)
    assert busybox.conflicts == ("toybox",)
    assert busybox.installed_size == 1_982_256 + 0  # the real busybox binary
    assert busybox.description == "Tiny utilities in one static binary"
    if with_database:
        import hashlib

        assert busybox.checksum == "sha256:" + hashlib.sha256(busybox.file.read_bytes()).hexdigest()  # type: ignore[union-attr]
    else:
        assert busybox.checksum is None


def test_arch_version_constraints_and_newest_version(tmp_path: Path) -> None:
    old = FixturePackage("app", "1.0", depends=("glibc>=2.3", "sh"))
    new = FixturePackage("app", "1.10", depends=("glibc>=2.38",), provides=("libapp.so=1-64",))
    folder = make_arch_folder(tmp_path, [old, new])
    app_pkg = open_source(detect_source(str(folder))).get("app")
    assert app_pkg is not None
    assert app_pkg.version == "1.10-1" and app_pkg.depends == ("glibc",)
    assert app_pkg.provides == ("libapp.so",)


@pytest.mark.parametrize("formats", [["zst", "xz"], ["gz", "zst"]])
def test_tarball_folder(tmp_path: Path, formats: list[str]) -> None:
    folder = make_tarball_folder(tmp_path, PKGS, compression=formats)
    spec = detect_source(str(folder))
    assert spec.kind is SourceKind.TARBALLS
    source = open_source(spec)
    assert [(p.name, p.version) for p in source.packages()] == [
        ("busybox", "1.35.0"),
        ("musl", "1.2.4"),
    ]
    assert all(p.depends == () and p.checksum is None for p in source.packages())


@pytest.mark.parametrize("builder", ["dpkg-deb", "python"])
def test_deb_folder(tmp_path: Path, builder: str) -> None:
    folder = make_deb_folder(tmp_path, PKGS, builder=builder)
    spec = detect_source(str(folder))
    assert spec.kind is SourceKind.DEB
    source = open_source(spec)
    assert isinstance(source, DebFolderSource)
    busybox = source.get("busybox")
    assert busybox is not None
    assert (busybox.version, busybox.depends, busybox.provides, busybox.conflicts) == (
        "1.35.0",
        ("musl",),
        ("sh",),
        ("toybox",),
    )
    # our reading of the control file agrees with dpkg's
    field = subprocess.run(
        ["dpkg-deb", "-f", str(busybox.file), "Depends", "Version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Depends: musl" in field and "Version: 1.35.0" in field


def test_deb_folder_with_packages_index_has_checksums(tmp_path: Path) -> None:
    folder = make_deb_folder(tmp_path, PKGS, with_index=True)
    source = open_source(detect_source(str(folder)))
    assert all(p.checksum and p.checksum.startswith("sha256:") for p in source.packages())
    assert len(source.packages()) == 2


def test_real_busybox_static_deb() -> None:
    pkg = read_package(debian_package("busybox-static"))
    assert pkg.name == "busybox-static" and pkg.version.startswith("1:1.")
    assert pkg.provides == ("busybox",) and pkg.conflicts == ("busybox",)
    assert pkg.installed_size and pkg.installed_size > 1_000_000
    assert pkg.description.startswith("Standalone rescue shell")
    expected = subprocess.run(
        ["dpkg-deb", "-f", str(pkg.file), "Version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert pkg.version == expected


def test_real_deb_folder_is_detected(tmp_path: Path) -> None:
    folder = real_deb_folder(tmp_path, ["busybox-static"])
    source = open_source(detect_source(str(folder)))
    assert [p.name for p in source.packages()] == ["busybox-static"]


def test_control_continuation_lines() -> None:
    fields = parse_control("Package: a\nDescription: short\n long line\n .\n more\n")
    assert fields["Description"].split("\n")[0] == "short"
    assert fields["Package"] == "a"


# -- detection and errors --------------------------------------------------------------------
def test_apt_is_detected_by_name() -> None:
    assert detect_source("apt") == SourceSpec(SourceKind.APT)
    assert detect_source("apt:").kind is SourceKind.APT


def test_bad_locations_are_explained(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        detect_source(str(tmp_path / "nope"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="must be a folder"):
        detect_source(str(tmp_path / "file"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no packages found"):
        detect_source(str(tmp_path / "empty"))
    with pytest.raises(InputError, match="does not exist"):
        open_source(SourceSpec(SourceKind.DEB, str(tmp_path / "gone")))


def test_damaged_packages_are_named_when_listing(tmp_path: Path) -> None:
    folder = make_deb_folder(tmp_path, PKGS, builder="python")
    deb = next(folder.glob("busybox_*.deb"))
    deb.write_bytes(deb.read_bytes()[:100])
    with pytest.raises(InputError) as info:
        open_source(detect_source(str(folder))).packages()
    assert "damaged" in str(info.value) and deb.name in str(info.value)
    arch = make_arch_folder(tmp_path, PKGS)
    pkg = next(arch.glob("busybox-*.pkg.tar.zst"))
    pkg.write_bytes(b"not a package at all")
    with pytest.raises(InputError, match="busybox-1.35.0-1-x86_64.pkg.tar.zst"):
        open_source(detect_source(str(arch))).packages()

"""Metadata (a control file, .PKGINFO, a repo database, a Packages index) is read whole, so
its size is capped: an oversized one is a clear InputError naming the file, found quickly
and in bounded memory, not gigabytes read into memory or decompressed for nothing."""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import zstandard

from app.errors import InputError
from app.packages import arch, deb
from app.packages.arch import ArchSource, read_pkginfo
from app.packages.deb import DebFolderSource, read_package
from app.packages.glaucus import GlaucusSource, parse_info
from app.packages.model import SourceKind, SourceSpec
from tests.app.packages.fixtures import (
    ar_archive,
    make_arch_folder,
    make_deb_folder,
    make_glaucus_repo,
    text_package,
    write_packages_index,
)
from tests.app.packages.isolated import run_isolated

MIB = 1 << 20
CONTROL = b"Package: hello\nVersion: 1.0\nArchitecture: all\nDescription: hi\n"


def zstd_tar(members: Sequence[tuple[str, bytes | int]]) -> bytes:
    """A zstd-compressed tar; an int member is that many zero bytes (streamed, not held)."""
    out = io.BytesIO()
    with (
        zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False) as writer,
        tarfile.open(fileobj=writer, mode="w|", format=tarfile.GNU_FORMAT) as tar,
    ):
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, int):
                info.size = data
                with open("/dev/zero", "rb") as zeros:
                    tar.addfile(info, zeros)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def hostile_deb(folder: Path, control_members: Sequence[tuple[str, bytes | int]]) -> Path:
    path = folder / "hello_1.0_all.deb"
    path.write_bytes(
        ar_archive(
            [
                ("debian-binary", b"2.0\n"),
                ("control.tar.zst", zstd_tar(control_members)),
                ("data.tar.zst", zstd_tar([])),
            ]
        )
    )
    return path


def test_an_oversized_control_file_is_refused(tmp_path: Path) -> None:
    path = hostile_deb(tmp_path, [("./control", CONTROL + bytes(20 * MIB))])
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(InputError, match="control file has 20 MiB") as error:
        read_package(path)
    assert error.value.where == str(path)


def test_a_huge_control_tar_is_refused_without_decompressing_it(tmp_path: Path) -> None:
    path = hostile_deb(tmp_path, [("./junk", 512 * MIB), ("./control", CONTROL)])
    assert path.stat().st_size < 64 * 1024
    result = run_isolated(
        f"""
        from pathlib import Path
        from app.packages.deb import read_package
        read_package(Path({str(path)!r}))
    """,
        memory_limit=1024 * MIB,
        timeout=60,
    )
    assert result["ok"] is False and result["where"] == str(path)
    assert "control.tar is larger than 64 MiB" in result["message"]
    assert result["peak_rss_kib"] < 100 * 1024


def arch_package(folder: Path, members: Sequence[tuple[str, bytes | int]]) -> Path:
    path = folder / "hello-1.0-1-x86_64.pkg.tar.zst"
    path.write_bytes(zstd_tar(members))
    return path


def test_an_oversized_pkginfo_is_refused(tmp_path: Path) -> None:
    path = arch_package(tmp_path, [(".PKGINFO", b"pkgname = hello\n" + bytes(20 * MIB))])
    with pytest.raises(InputError, match=".PKGINFO has 20 MiB") as error:
        read_pkginfo(path)
    assert error.value.where == str(path)


def test_the_pkginfo_search_stops_at_a_huge_member(tmp_path: Path) -> None:
    path = arch_package(
        tmp_path, [("usr/junk", 512 * MIB), (".PKGINFO", b"pkgname = hello\npkgver = 1.0-1\n")]
    )
    result = run_isolated(
        f"""
        from pathlib import Path
        from app.packages.arch import read_pkginfo
        read_pkginfo(Path({str(path)!r}))
    """,
        memory_limit=1024 * MIB,
        timeout=60,
    )
    assert result["ok"] is False and result["where"] == str(path)
    assert "no .PKGINFO at its start" in result["message"]
    assert result["peak_rss_kib"] < 100 * 1024


def test_an_oversized_repo_database_entry_is_refused(tmp_path: Path) -> None:
    folder = make_arch_folder(tmp_path, [text_package("hello")])
    db = folder / "core.db.tar.zst"
    db.write_bytes(zstd_tar([("hello-1.0-1/desc", b"%NAME%\nhello\n\n" + bytes(20 * MIB))]))
    with pytest.raises(InputError, match="'hello-1.0-1/desc' has 20 MiB") as error:
        ArchSource(SourceSpec(SourceKind.ARCH, str(folder))).packages()
    assert error.value.where == str(db)


def test_an_oversized_repo_database_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(arch, "INDEX_LIMIT", 4 * MIB)  # the real limit is 256 MiB
    folder = make_arch_folder(tmp_path, [text_package("hello")])
    db = folder / "core.db.tar.zst"
    db.write_bytes(zstd_tar([(f"pkg{i}-1-1/files", MIB) for i in range(8)]))
    with pytest.raises(InputError, match="repository database is larger than 4 MiB") as error:
        ArchSource(SourceSpec(SourceKind.ARCH, str(folder))).packages()
    assert error.value.where == str(db)


@pytest.mark.parametrize("name", ["Packages", "Packages.gz", "Packages.xz"])
def test_an_oversized_packages_index_is_refused(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deb, "INDEX_LIMIT", 4 * MIB)  # the real limit is 256 MiB
    folder = make_deb_folder(tmp_path, [text_package("hello")], builder="python")
    text = write_packages_index(folder).read_bytes() + b"\n" + b"X-Padding: 1\n" * (MIB // 2)
    (folder / "Packages").unlink()
    compress = {"Packages": bytes, "Packages.gz": gzip.compress, "Packages.xz": lzma.compress}
    (folder / name).write_bytes(compress[name](text))
    with pytest.raises(InputError, match="package index is larger than 4 MiB") as error:
        DebFolderSource(SourceSpec(SourceKind.DEB, str(folder))).packages()
    assert error.value.where == str(folder / name)


@pytest.mark.parametrize("name", ["Packages.gz", "Packages.xz"])
def test_a_damaged_packages_index_is_named(tmp_path: Path, name: str) -> None:
    folder = make_deb_folder(tmp_path, [text_package("hello")], builder="python")
    index = write_packages_index(folder)
    data = (gzip.compress if name.endswith("gz") else lzma.compress)(index.read_bytes())
    index.unlink()
    (folder / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="package index is damaged") as error:
        DebFolderSource(SourceSpec(SourceKind.DEB, str(folder))).packages()
    assert error.value.where == str(folder / name)


@pytest.mark.parametrize("name", ["info", "sum"])
def test_an_oversized_glaucus_info_or_sum_is_refused(tmp_path: Path, name: str) -> None:
    repo = make_glaucus_repo(tmp_path, [text_package("hello", "2.10")])
    path = repo / "hello" / name
    with open(path, "ab") as f:
        f.truncate(17 * MIB)  # a sparse tail of zeros: big, yet cheap to make
    with pytest.raises(InputError, match="larger than 16 MiB") as error:
        GlaucusSource(SourceSpec(SourceKind.GLAUCUS, str(repo))).packages()
    assert error.value.where == str(path)


def test_a_long_bad_info_line_is_shortened_in_the_error() -> None:
    with pytest.raises(InputError, match="line 2 is not key='value'") as error:
        parse_info("ver='1'\n" + "x" * 100_000 + "\n", "busybox/info")
    assert len(str(error.value)) < 200

"""A repository index names package files; it must not name files outside its folder
(a host backup or key would otherwise become a package in the image)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.errors import InputError
from app.packages.arch import ArchSource
from app.packages.deb import DebFolderSource
from app.packages.gather import gather
from app.packages.model import SourceKind, SourceSpec
from app.packages.resolve import resolve
from app.reporter import NullReporter
from tests.app.packages.fixtures import (
    compress,
    directory,
    file,
    make_arch_folder,
    make_deb_folder,
    tar_bytes,
    text_package,
    write_packages_index,
)


def arch_database(folder: Path, filename: str) -> Path:
    desc = f"%FILENAME%\n{filename}\n\n%NAME%\nbusybox\n\n%VERSION%\n1-1\n\n"
    db = folder / "core.db.tar.gz"
    db.write_bytes(
        compress(
            tar_bytes([directory("busybox-1-1"), file("busybox-1-1/desc", desc)], auto_dirs=False),
            "gz",
        )
    )
    return db


@pytest.mark.parametrize("how", ["dotdot", "symlink", "absolute"])
def test_an_arch_database_filename_outside_the_folder_is_refused(tmp_path: Path, how: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "private-backup.tar"
    secret.write_bytes(b"\0" * 1024)
    folder = make_arch_folder(tmp_path, [text_package("hello")], name="repo")
    if how == "symlink":
        (folder / "busybox-1-1-x86_64.pkg.tar").symlink_to(secret)
        filename = "busybox-1-1-x86_64.pkg.tar"
    else:
        filename = "../outside/private-backup.tar" if how == "dotdot" else str(secret)
    db = arch_database(folder, filename)
    with pytest.raises(InputError) as error:
        ArchSource(SourceSpec(SourceKind.ARCH, str(folder))).packages()
    assert error.value.where == str(db)
    assert "outside the package folder" in error.value.message
    assert "busybox" in error.value.message


def test_an_arch_database_filename_inside_the_folder_is_used(tmp_path: Path) -> None:
    folder = make_arch_folder(tmp_path, [text_package("hello")], with_database=True)
    pkg = ArchSource(SourceSpec(SourceKind.ARCH, str(folder))).get("hello")
    assert pkg is not None and pkg.checksum is not None and pkg.file is not None
    assert pkg.file.parent == folder


def test_a_packages_index_filename_outside_the_folder_is_refused(tmp_path: Path) -> None:
    folder = make_deb_folder(tmp_path, [text_package("hello")], builder="python")
    outside = tmp_path / "outside"
    outside.mkdir()
    deb = next(folder.glob("*.deb"))
    index = write_packages_index(folder)
    shutil.move(deb, outside / deb.name)
    index.write_text(index.read_text().replace(f"./{deb.name}", f"../outside/{deb.name}"))
    with pytest.raises(InputError) as error:
        DebFolderSource(SourceSpec(SourceKind.DEB, str(folder))).packages()
    assert error.value.where == str(index)
    assert "outside the package folder" in error.value.message and "hello" in error.value.message


def test_a_checksum_that_is_not_hex_is_refused_before_the_cache_is_touched(tmp_path: Path) -> None:
    folder = make_arch_folder(tmp_path, [text_package("hello")], name="repo")
    pkg_file = next(folder.glob("hello-*.pkg.tar.zst"))
    desc = (
        f"%FILENAME%\n{pkg_file.name}\n\n%NAME%\nhello\n\n%VERSION%\n1.0-1\n\n"
        "%SHA256SUM%\n/../../../victim\n\n"
    )
    (folder / "core.db.tar.gz").write_bytes(
        compress(
            tar_bytes([directory("hello-1.0-1"), file("hello-1.0-1/desc", desc)], auto_dirs=False),
            "gz",
        )
    )
    # A folder outside the cache that the digest, used as a cache entry name, would reach
    # if the entry's first part existed: it looks like a damaged entry and gets replaced.
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    cache = tmp_path / "cache"
    (cache / "by-hash" / "sha256-").mkdir(parents=True)
    source = ArchSource(SourceSpec(SourceKind.ARCH, str(folder)))
    with pytest.raises(InputError, match="is not a sha256 digest") as error:
        gather(source, resolve(source, ["hello"]), cache, NullReporter())
    assert error.value.where == str(pkg_file)
    assert (victim / "precious.txt").read_text() == "keep me"

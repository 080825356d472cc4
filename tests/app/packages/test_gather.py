"""Stage 2: the content-addressed package cache and checksum verification."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import xxhash

from app.errors import Cancelled, InputError
from app.packages.gather import cache_entry, file_digest, gather
from app.packages.model import PackageInfo, PackageSource
from app.packages.resolve import resolve
from app.packages.sources import detect_source, open_source
from app.reporter import Level, NullReporter, RecordingReporter
from tests.app.packages.fixtures import (
    busybox_package,
    make_arch_folder,
    make_glaucus_repo,
    make_tarball_folder,
    text_package,
)

PKGS = [busybox_package(depends=("musl",)), text_package("musl")]


class CountingSource:
    """A real source that counts fetches (to prove cache hits skip them)."""

    def __init__(self, inner: PackageSource) -> None:
        self.inner = inner
        self.spec = inner.spec
        self.fetched: list[str] = []

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)

    def fetch(self, pkg: PackageInfo, cache_dir: Path, reporter) -> Path:  # type: ignore[no-untyped-def]
        self.fetched.append(pkg.name)
        return self.inner.fetch(pkg, cache_dir, reporter)


def test_glaucus_packages_are_cached_by_their_xxh128_sum(tmp_path: Path) -> None:
    repo = make_glaucus_repo(tmp_path, PKGS)
    source = CountingSource(open_source(detect_source(str(repo))))
    res = resolve(source, ["busybox"])  # type: ignore[arg-type]
    cache = tmp_path / "cache"
    reporter = RecordingReporter()
    got = gather(source, res, cache, reporter)  # type: ignore[arg-type]
    assert [p.name for p, _ in got] == ["musl", "busybox"]
    for pkg, path in got:
        digest = xxhash.xxh3_128_hexdigest(pkg.file.read_bytes())  # type: ignore[union-attr]
        assert path == cache_entry(cache, "xxh128", digest) / pkg.file.name  # type: ignore[union-attr]
        assert path.read_bytes() == pkg.file.read_bytes()  # type: ignore[union-attr]
        assert path.stat().st_ino != pkg.file.stat().st_ino  # type: ignore[union-attr]
    assert reporter.steps == ["gather packages"] and reporter.last_progress is not None
    assert source.fetched == ["musl", "busybox"]

    # warm cache: nothing is fetched again, the cached files are verified and used
    source.fetched.clear()
    again = gather(source, res, cache, NullReporter())  # type: ignore[arg-type]
    assert again == got and source.fetched == []


def test_glaucus_checksum_mismatch(tmp_path: Path) -> None:
    repo = make_glaucus_repo(tmp_path, PKGS)
    archive = repo / "busybox" / "busybox-1.35.0.tar.zst"
    data = bytearray(archive.read_bytes())
    data[-100] ^= 0xFF  # one flipped bit in the package after the sum was made
    archive.write_bytes(bytes(data))
    source = open_source(detect_source(str(repo)))
    with pytest.raises(InputError) as info:
        gather(source, resolve(source, ["busybox"]), tmp_path / "cache", NullReporter())
    expected = (repo / "busybox" / "sum").read_text().split()[0]
    got = xxhash.xxh3_128_hexdigest(bytes(data))
    assert str(info.value).startswith(
        f"checksum mismatch: busybox file {archive} expected xxh128:{expected} got xxh128:{got}"
    )
    assert not (tmp_path / "cache" / "by-hash" / f"xxh128-{got}").exists()


def test_arch_database_sha256_is_verified(tmp_path: Path) -> None:
    folder = make_arch_folder(tmp_path, PKGS, with_database=True)
    source = open_source(detect_source(str(folder)))
    good = gather(source, resolve(source, ["busybox"]), tmp_path / "cache", NullReporter())
    for pkg, path in good:
        assert pkg.checksum == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    # the package changes after the database was written
    musl = next(folder.glob("musl-*.pkg.tar.zst"))
    musl.write_bytes(musl.read_bytes() + b"\0" * 512)
    source = open_source(detect_source(str(folder)))
    with pytest.raises(InputError, match=r"checksum mismatch: musl file .* expected sha256:"):
        gather(source, resolve(source, ["musl"]), tmp_path / "cache2", NullReporter())


def test_packages_without_checksum_are_keyed_by_content(tmp_path: Path) -> None:
    folder = make_tarball_folder(tmp_path, PKGS)
    source = open_source(detect_source(str(folder)))
    got = gather(source, resolve(source, ["busybox", "musl"]), tmp_path / "cache", NullReporter())
    for pkg, path in got:
        assert path.parent.name == "xxh128-" + file_digest(pkg.file, "xxh128")  # type: ignore[arg-type]
    # a changed source file gets a new entry, the old one stays intact
    tarball = next(folder.glob("musl-*"))
    old_cached = got[1][1]
    tarball.write_bytes(tarball.read_bytes() + b"\0" * 1024)
    again = gather(source, resolve(source, ["musl"]), tmp_path / "cache", NullReporter())
    assert again[0][1] != old_cached and old_cached.exists()


def test_a_damaged_cache_entry_is_replaced(tmp_path: Path) -> None:
    repo = make_glaucus_repo(tmp_path, PKGS)
    source = CountingSource(open_source(detect_source(str(repo))))
    res = resolve(source, ["musl"])  # type: ignore[arg-type]
    [(pkg, cached)] = gather(source, res, tmp_path / "cache", NullReporter())  # type: ignore[arg-type]
    cached.write_bytes(b"bit rot")
    reporter = RecordingReporter()
    [(_, again)] = gather(source, res, tmp_path / "cache", reporter)  # type: ignore[arg-type]
    assert again.read_bytes() == pkg.file.read_bytes()  # type: ignore[union-attr]
    assert source.fetched == ["musl", "musl"]
    assert any(
        level is Level.WARNING and "damaged cache entry" in msg for level, msg in reporter.logs
    )


def test_gather_can_be_cancelled(tmp_path: Path) -> None:
    repo = make_glaucus_repo(tmp_path, PKGS)
    source = open_source(detect_source(str(repo)))
    reporter = NullReporter()
    reporter.cancel()
    with pytest.raises(Cancelled):
        gather(source, resolve(source, ["busybox"]), tmp_path / "cache", reporter)

"""Stage 2, gather: bring every resolved package file into a cache keyed by content hash.

    <cache_dir>/by-hash/<algorithm>-<hex digest>/<original file name>

A package whose source states a checksum (glaucus `sum`: XXH3-128; apt and Arch/Debian
indexes: SHA-256) is found in the cache by that checksum and is downloaded or copied only
when missing; a file that does not match raises InputError("checksum mismatch: ...").
Other packages are keyed by the XXH3-128 of their file. Cached files are hashed again on
every use, so a damaged cache entry is noticed and replaced, never used. Entries appear
atomically (written under a temporary name, then renamed), so parallel builds can share
one cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import xxhash

from app.errors import InputError
from app.packages.model import PackageInfo, PackageSource
from app.packages.resolve import Resolution
from app.reporter import Level, Reporter, check_cancelled

BLOCK = 1 << 20
DIGEST_LENGTHS = {"xxh128": 32, "sha256": 64}
ALGORITHMS = tuple(DIGEST_LENGTHS)


def _hasher(algorithm: str):
    if algorithm == "xxh128":
        return xxhash.xxh3_128()
    if algorithm == "sha256":
        return hashlib.sha256()
    raise ValueError(f"unknown checksum algorithm {algorithm!r}")


def file_digest(path: Path, algorithm: str, on_read: Callable[[int], None] | None = None) -> str:
    """Hex digest of the file (`xxh128` is XXH3-128 as `xxhsum -H2` prints it)."""
    h = _hasher(algorithm)
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
            if on_read:
                on_read(len(block))
    return h.hexdigest()


def split_checksum(checksum: str, where: str | None = None) -> tuple[str, str]:
    """(algorithm, lower-case hex digest); InputError unless the digest is hex of the
    algorithm's length (it becomes a cache folder name: no '/' or '..' may slip in)."""
    algorithm, _, digest = checksum.partition(":")
    if algorithm not in ALGORITHMS or not digest:
        raise InputError(
            f"unsupported checksum {checksum!r} (expected xxh128:… or sha256:…)", where=where
        )
    digest = digest.lower()
    if not re.fullmatch(f"[0-9a-f]{{{DIGEST_LENGTHS[algorithm]}}}", digest):
        raise InputError(
            f"the checksum {checksum!r} is not a {algorithm} digest "
            f"({DIGEST_LENGTHS[algorithm]} hexadecimal digits)",
            where=where,
        )
    return algorithm, digest


def cache_entry(cache_dir: Path, algorithm: str, digest: str) -> Path:
    return cache_dir / "by-hash" / f"{algorithm}-{digest}"


def _cached_file(entry: Path) -> Path | None:
    if not entry.is_dir():
        return None
    files = [p for p in entry.iterdir() if p.is_file() and not p.name.startswith(".")]
    return files[0] if len(files) == 1 else None


def _store(path: Path, entry: Path, *, move: bool) -> Path:
    """Put `path` into cache entry `entry` atomically; returns the cached path."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=entry.parent))
    try:
        target = staging / path.name
        if move:
            os.replace(path, target)
        else:
            # A copy, not a hard link: the cache must not change when the user's file does.
            shutil.copyfile(path, target)
        os.chmod(target, 0o644)
        if entry.exists():
            shutil.rmtree(entry)
        os.replace(staging, entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry / path.name


class _Progress:
    def __init__(self, reporter: Reporter, total: int) -> None:
        self.reporter = reporter
        self.total = total
        self.done = 0

    def __call__(self, n: int) -> None:
        self.done += n
        self.reporter.progress(min(self.done, self.total), self.total)


def gather(
    source: PackageSource, resolution: Resolution, cache_dir: Path, reporter: Reporter
) -> list[tuple[PackageInfo, Path]]:
    """Every package of `resolution` as (package, file in the cache), in install order."""
    reporter.step("gather packages")
    downloads = cache_dir / "downloads"
    progress = _Progress(reporter, sum(p.size for p in resolution.packages) or 1)
    result = []
    for pkg in resolution.packages:
        check_cancelled(reporter)
        result.append((pkg, _gather_one(source, pkg, cache_dir, downloads, reporter, progress)))
    return result


def _gather_one(
    source: PackageSource,
    pkg: PackageInfo,
    cache_dir: Path,
    downloads: Path,
    reporter: Reporter,
    progress: _Progress,
) -> Path:
    if pkg.checksum:
        algorithm, expected = split_checksum(pkg.checksum, str(pkg.file) if pkg.file else pkg.name)
        entry = cache_entry(cache_dir, algorithm, expected)
        cached = _cached_file(entry)
        if cached is not None:
            if file_digest(cached, algorithm, progress) == expected:
                reporter.log(Level.DEBUG, f"{pkg.name}: cached ({cached})")
                return cached
            reporter.log(Level.WARNING, f"{pkg.name}: damaged cache entry {cached} replaced")
            shutil.rmtree(entry, ignore_errors=True)
    else:
        algorithm, expected = "xxh128", ""
    path = source.fetch(pkg, downloads, reporter)
    downloaded = path.resolve().is_relative_to(downloads.resolve())
    check_cancelled(reporter)
    got = file_digest(path, algorithm, progress)
    if expected and got != expected:
        if downloaded:
            path.unlink(missing_ok=True)
        raise InputError(
            f"checksum mismatch: {pkg.name} file {path} expected "
            f"{algorithm}:{expected} got {algorithm}:{got}",
            hint="the file is damaged or not the one the index describes",
        )
    entry = cache_entry(cache_dir, algorithm, got)
    cached = _cached_file(entry)
    if cached is not None and not downloaded and file_digest(cached, algorithm) == got:
        return cached
    reporter.log(Level.INFO, f"{pkg.name} {pkg.version}: {path.name}")
    return _store(path, entry, move=downloaded)

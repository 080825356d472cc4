"""Stage 2, gather: bring every resolved package file into a cache keyed by content hash.

    <cache_dir>/by-hash/<algorithm>-<hex digest>/<original file name>

A package whose source states a checksum (glaucus `sum`: XXH3-128; apt and Arch/Debian
indexes: SHA-256) is found in the cache by that checksum and is downloaded or copied only
when missing; a file that does not match raises InputError("checksum mismatch: ...").
Other packages are keyed by the XXH3-128 of their file. Cached files are hashed again on
every use, so a damaged cache entry is noticed and replaced, never used.

Builds running at the same time (CLI, GUI windows) share one cache safely:
- every gather downloads into a private folder of its own under <cache_dir>/downloads;
- an entry is written under a private name in by-hash/ and renamed into place whole, so a
  reader never sees part of a file; if another build put the entry there first and it is
  intact, that one is kept;
- only replacing a damaged entry takes a lock (by-hash/.lock): it checks again under the
  lock, so an intact entry that another build has just put there is never removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
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
    try:
        files = [p for p in entry.iterdir() if p.is_file() and not p.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return None
    return files[0] if len(files) == 1 else None


def _intact_file(
    entry: Path, algorithm: str, digest: str, on_read: Callable[[int], None] | None = None
) -> Path | None:
    """The cached file of `entry` if its content has `digest`, else None."""
    cached = _cached_file(entry)
    try:
        if cached is not None and file_digest(cached, algorithm, on_read) == digest:
            return cached
    except FileNotFoundError:  # a damaged entry that another build is replacing
        pass
    return None


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    with open(lock_file, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _store(path: Path, entry: Path, algorithm: str, digest: str, *, move: bool) -> Path:
    """Put `path` (its content has `digest`) into cache entry `entry` atomically; returns
    the cached path, which is another build's if that build stored the same file first."""
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
        return _publish(staging, path.name, entry, algorithm, digest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, name: str, entry: Path, algorithm: str, digest: str) -> Path:
    """Make the folder `staging` (holding the file `name`) the cache entry `entry`, unless
    `entry` is there and intact; the cached file."""
    if _rename_into_place(staging, entry):
        return entry / name
    if kept := _intact_file(entry, algorithm, digest):
        return kept
    with _locked(entry.parent / ".lock"):
        if kept := _intact_file(entry, algorithm, digest):
            return kept  # another build replaced the damaged entry meanwhile
        # Move the damaged entry out of the way in one step (if a build that held the lock
        # before has not), then put ours in its place.
        discard = Path(tempfile.mkdtemp(prefix=".damaged-", dir=entry.parent))
        try:
            with contextlib.suppress(FileNotFoundError):
                os.rename(entry, discard / entry.name)
            if _rename_into_place(staging, entry):
                return entry / name
        finally:
            shutil.rmtree(discard, ignore_errors=True)
    # A build that does not take the lock renamed its entry in first: look at that one.
    return _publish(staging, name, entry, algorithm, digest)


def _rename_into_place(staging: Path, entry: Path) -> bool:
    """Rename the folder `staging` to `entry`; False if `entry` exists and is not an empty
    folder (rename never replaces those, so builds cannot swap entries under each other)."""
    try:
        os.rename(staging, entry)
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            return False
        raise


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
    progress = _Progress(reporter, sum(p.size for p in resolution.packages) or 1)
    downloads = cache_dir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    # Private: builds running at the same time download files of the same names.
    with tempfile.TemporaryDirectory(prefix=".gather-", dir=downloads) as private:
        result = []
        for pkg in resolution.packages:
            check_cancelled(reporter)
            path = _gather_one(source, pkg, cache_dir, Path(private), reporter, progress)
            result.append((pkg, path))
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
        cached = _intact_file(entry, algorithm, expected, progress)
        if cached is not None:
            reporter.log(Level.DEBUG, f"{pkg.name}: cached ({cached})")
            return cached
        if (damaged := _cached_file(entry)) is not None:
            # _store replaces it, after checking under a lock that it is still damaged.
            reporter.log(Level.WARNING, f"{pkg.name}: damaged cache entry {damaged} replaced")
    else:
        algorithm, expected = "xxh128", ""
    path = source.fetch(pkg, downloads, reporter)
    downloaded = path.resolve().is_relative_to(downloads.resolve())
    check_cancelled(reporter)
    got = file_digest(path, algorithm, progress)
    if expected and got != expected:
        raise InputError(
            f"checksum mismatch: {pkg.name} file {path} expected "
            f"{algorithm}:{expected} got {algorithm}:{got}",
            hint="the file is damaged or not the one the index describes",
        )
    entry = cache_entry(cache_dir, algorithm, got)
    if not downloaded and (cached := _intact_file(entry, algorithm, got)) is not None:
        return cached
    reporter.log(Level.INFO, f"{pkg.name} {pkg.version}: {path.name}")
    return _store(path, entry, algorithm, got, move=downloaded)

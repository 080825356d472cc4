"""Big images: thousands of files, and a multi-extent file larger than 4 GiB."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest

from app.errors import Cancelled
from app.iso.extract import extract
from app.iso.inspect import inspect_iso
from app.reporter import NullReporter, RecordingReporter
from tests.app.iso.test_inspect import assert_tree_matches_xorriso, mkisofs, write

FILES_PER_DIR = 100
DIRS = 30
FOUR_GIB = 4 * 1024**3
EXTENT_LIMIT = 0xFFFFF800  # libisofs splits files into extents of 4 GiB - 2 KiB


class CancelAfter(NullReporter):
    """Says "cancelled" from the n-th question on, like a user pressing Cancel mid-way."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.asked = 0
        self.n = n

    def cancelled(self) -> bool:
        self.asked += 1
        return self.asked >= self.n


@pytest.fixture(scope="module")
def many_files_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("many")
    tree = work / "tree"
    for d in range(DIRS):
        for i in range(FILES_PER_DIR):
            write(tree / f"dir{d:02d}" / "sub" / f"file-{i:04d}-with-a-longer-name.txt", "x" * i)
    return mkisofs(tree, work / "many.iso", "-R", "-J")


def test_thousands_of_files_match_xorriso(many_files_iso: Path) -> None:
    reporter = RecordingReporter()
    started = time.monotonic()
    report = inspect_iso(many_files_iso, reporter)
    elapsed = time.monotonic() - started
    assert len(report.files) == 1 + DIRS * 2 + DIRS * FILES_PER_DIR  # 3061 entries
    assert reporter.steps == ["Inspecting many.iso"]
    assert reporter.last_progress == (2560, 0)  # every 512 entries; the total is unknown
    assert_tree_matches_xorriso(report, many_files_iso, rock_ridge=True)
    # Not a benchmark (see tests/benchmarks); a guard against accidental quadratic walks,
    # generous enough for a loaded CI machine (typically ~0.3 s).
    assert elapsed < 20


def test_cancel_in_the_middle_of_a_big_tree(many_files_iso: Path) -> None:
    reporter = CancelAfter(3)  # 1: before opening, 2: first check in the walk, 3: the next
    with pytest.raises(Cancelled):
        inspect_iso(many_files_iso, reporter)
    assert reporter.asked == 3


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.slow
def test_multi_extent_file_over_4_gib(tmp_path: Path) -> None:
    """A sparse 4 GiB + 12 KiB file: xorriso stores it in two extents (ISO level 3)."""
    needed = 2 * FOUR_GIB + 100 * 1024**2  # the image, plus headroom
    free = shutil.disk_usage(tmp_path).free
    if free < needed:
        pytest.skip(f"needs {needed // 1024**2} MiB free in {tmp_path}, only {free // 1024**2} MiB")
    tree = tmp_path / "tree"
    tree.mkdir()
    huge = tree / "huge.bin"
    size = FOUR_GIB + 12345
    with open(huge, "wb") as f:
        f.write(b"head")
        f.seek(EXTENT_LIMIT - 4)  # data across the boundary between the two extents
        f.write(b"straddle")
        f.truncate(size)
        f.seek(size - 4)
        f.write(b"tail")
    write(tree / "small.txt", "small")
    iso = mkisofs(tree, tmp_path / "huge.iso", "-R", "-J", "-iso-level", "3")
    huge_sha = sha256_of(huge)
    huge.unlink()  # keep the disk footprint to one copy

    report = inspect_iso(iso)
    assert_tree_matches_xorriso(report, iso, rock_ridge=True)
    entry = next(f for f in report.files if f.path == "/huge.bin")
    assert entry.size == size

    out = tmp_path / "out"
    out.mkdir()
    extract(iso, "/huge.bin", out)
    extracted = out / "huge.bin"
    assert extracted.stat().st_size == size
    assert extracted.stat().st_blocks * 512 < 16 * 1024**2  # zero runs became holes
    assert sha256_of(extracted) == huge_sha

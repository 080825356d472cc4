from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import zstandard

from app.compose.compress import Compression, _Feeder, level_problem, open_compressed_writer
from app.errors import Cancelled, InputError
from tests.conftest import ROOT

# Real, compressible content: this repository's own sources, repeated.
SAMPLE = b"".join(p.read_bytes() for p in sorted((ROOT / "app").rglob("*.py"))) * 8

DECOMPRESS = {
    Compression.ZSTD: ["zstd", "-d", "-c", "-q"],
    Compression.XZ: ["xz", "-d", "-c"],
    Compression.GZIP: ["gzip", "-d", "-c"],
    Compression.NONE: ["cat"],
}


def write(
    path: Path, compression: Compression, level: int | None = None, data: bytes = SAMPLE
) -> bytes:
    with open_compressed_writer(path, compression, level) as out:
        for start in range(0, len(data), 100_000):
            out.write(data[start : start + 100_000])
    return path.read_bytes()


@pytest.mark.parametrize("compression", list(Compression))
def test_the_standard_tools_decompress_every_method(
    tmp_path: Path, compression: Compression
) -> None:
    target = tmp_path / "out"
    written = write(target, compression)
    out = subprocess.run([*DECOMPRESS[compression], str(target)], capture_output=True, check=True)
    assert out.stdout == SAMPLE
    if compression is not Compression.NONE:
        assert len(written) < len(SAMPLE) // 3


@pytest.mark.parametrize("compression", list(Compression))
def test_output_is_reproducible(tmp_path: Path, compression: Compression) -> None:
    assert write(tmp_path / "a", compression) == write(tmp_path / "b", compression)


def test_zstd_output_does_not_depend_on_the_number_of_cores(tmp_path: Path) -> None:
    # We compress with threads=-1 (all cores); another machine has another core count.
    # zstd's multi-threaded mode promises identical frames for any worker count >= 1.
    ours = write(tmp_path / "ours", Compression.ZSTD, 9)
    for threads in (1, 3):
        target = tmp_path / f"threads-{threads}"
        with open(target, "wb") as raw:
            compressor = zstandard.ZstdCompressor(level=9, threads=threads)
            with compressor.stream_writer(raw, closefd=False) as out:
                for start in range(0, len(SAMPLE), 100_000):
                    out.write(SAMPLE[start : start + 100_000])
        assert target.read_bytes() == ours


def test_xz_uses_crc32_checks_which_the_kernel_can_verify(tmp_path: Path) -> None:
    target = tmp_path / "out.xz"
    write(target, Compression.XZ)
    listing = subprocess.run(
        ["xz", "--robot", "--list", str(target)], capture_output=True, text=True, check=True
    ).stdout
    file_line = next(line for line in listing.splitlines() if line.startswith("file\t"))
    assert file_line.split("\t")[6] == "CRC32"


def test_levels_change_the_output(tmp_path: Path) -> None:
    fast = write(tmp_path / "fast", Compression.ZSTD, 1)
    strong = write(tmp_path / "strong", Compression.ZSTD, 19)
    assert len(strong) < len(fast)


def test_invalid_levels_are_reported(tmp_path: Path) -> None:
    assert level_problem(Compression.ZSTD, 22, "x") is not None  # --ultra: not for the kernel
    assert level_problem(Compression.GZIP, 0, "x") is not None
    assert level_problem(Compression.NONE, 3, "x") is not None
    assert level_problem(Compression.XZ, 0, "x") is None
    assert level_problem(Compression.ZSTD, None, "x") is None
    with pytest.raises(InputError, match="zstd level 30"):
        write(tmp_path / "bad", Compression.ZSTD, 30)
    assert not (tmp_path / "bad").exists()


def test_a_failure_inside_the_block_removes_the_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "partial.zst"
    with pytest.raises(Cancelled), open_compressed_writer(target, Compression.ZSTD) as out:
        out.write(os.urandom(1 << 20))
        raise Cancelled()
    assert not target.exists()


def test_an_error_in_the_compression_thread_reaches_the_caller() -> None:
    # /dev/full: every write fails with ENOSPC, as on a full disk.
    with open("/dev/full", "wb", buffering=0) as full:
        feeder = _Feeder(full)
        feeder.write(bytearray(b"block"))
        with pytest.raises(OSError, match="No space left"):
            feeder.finish()
        with pytest.raises(OSError, match="No space left"):
            feeder.write(b"later blocks fail at once")

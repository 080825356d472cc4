"""A few kilobytes of compressed data can stand for gigabytes: reading them must take
bounded memory and time (each case runs in a child process with an address-space limit)."""

from __future__ import annotations

import bz2
import lzma
from pathlib import Path

import pytest
import zstandard

from tests.app.packages.isolated import run_isolated

MIB = 1 << 20
# (format, MiB of zeros): each first 16 KiB of input stands for 100+ MiB.
BOMBS = [("bz2", 128), ("xz", 128), ("zst", 512)]


def bomb(path: Path, fmt: str, mib: int) -> Path:
    block = bytes(64 * MIB)
    compressor = {
        "bz2": lambda: bz2.BZ2Compressor(9),
        "xz": lambda: lzma.LZMACompressor(preset=1),
        "zst": lambda: zstandard.ZstdCompressor(level=19).compressobj(),
    }[fmt]()
    with open(path, "wb") as f:
        for _ in range(mib // 64):
            f.write(compressor.compress(block))
        f.write(compressor.flush())
    return path


@pytest.mark.parametrize(("fmt", "mib"), BOMBS)
def test_a_decompression_bomb_is_read_in_bounded_memory_and_time(
    tmp_path: Path, fmt: str, mib: int
) -> None:
    path = bomb(tmp_path / f"bomb.{fmt}", fmt, mib)
    assert path.stat().st_size < 64 * 1024
    result = run_isolated(
        f"""
        from app.packages.archive import open_stream
        for threaded in (False, True):
            with open({str(path)!r}, "rb") as raw, open_stream(raw, "bomb",
                                                               threaded=threaded) as stream:
                total = 0
                while block := stream.read(1 << 20):
                    total += len(block)
            assert total == {mib * MIB}, total
    """,
        memory_limit=1024 * MIB,
        timeout=60,
    )
    assert result.get("memory") is None and result["ok"] is True
    # Every decompressed byte passed through, yet the process never held much of it.
    assert result["peak_rss_kib"] < 100 * 1024, result

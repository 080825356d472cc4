"""Streaming decompression notices truncation in every format, on every path."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import subprocess

import pytest
import zstandard

from app.packages.archive import DamagedArchive, open_stream
from tests.support.debian import busybox_static

DATA = busybox_static().read_bytes()  # real, not too compressible


def _compressors() -> dict[str, bytes]:
    return {
        "zst": zstandard.ZstdCompressor(level=3).compress(DATA),
        "xz": lzma.compress(DATA, preset=1),
        "gz": gzip.compress(DATA, compresslevel=1),
        "bz2": bz2.compress(DATA, compresslevel=1),
    }


COMPRESSED = _compressors()


@pytest.mark.parametrize("threaded", [False, True])
@pytest.mark.parametrize("fmt", sorted(COMPRESSED))
def test_whole_streams_decompress(fmt: str, threaded: bool) -> None:
    with open_stream(io.BytesIO(COMPRESSED[fmt]), threaded=threaded) as stream:
        assert stream.read() == DATA


@pytest.mark.parametrize("threaded", [False, True])
@pytest.mark.parametrize("fmt", sorted(COMPRESSED))
def test_truncated_streams_raise(fmt: str, threaded: bool) -> None:
    cut = COMPRESSED[fmt][: len(COMPRESSED[fmt]) * 2 // 3]
    with pytest.raises(DamagedArchive, match="truncated|corrupt"):
        with open_stream(io.BytesIO(cut), "data.tar", threaded=threaded) as stream:
            while stream.read(1 << 16):
                pass


@pytest.mark.parametrize("threaded", [False, True])
def test_corrupt_xz_is_reported(threaded: bool) -> None:
    data = bytearray(COMPRESSED["xz"])
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(DamagedArchive, match="corrupt"):
        with open_stream(io.BytesIO(bytes(data)), threaded=threaded) as stream:
            stream.read()


def test_concatenated_zstd_frames_and_xz_padding() -> None:
    frames = COMPRESSED["zst"] + zstandard.ZstdCompressor().compress(b"tail")
    with open_stream(io.BytesIO(frames)) as stream:
        assert stream.read() == DATA + b"tail"
    with open_stream(io.BytesIO(COMPRESSED["xz"] + b"\0" * 8)) as stream:
        assert stream.read() == DATA


def test_multithreaded_tool_output_is_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # what real packages are made with: multi-block xz (dpkg-deb -T) and zstd -T0 frames
    for program, package in (("xz", "xz-utils"), ("zstd", "zstd")):
        if shutil.which(program) is None:  # packaging/deps/apt-run.txt installs them
            pytest.fail(f"needs the {program} program: apt-get install {package}")
    src = tmp_path / "data"
    src.write_bytes(DATA * 4)
    subprocess.run(["xz", "-T2", "--block-size=1MiB", "-k", "-1", str(src)], check=True)
    subprocess.run(["zstd", "-q", "-T2", "-k", str(src)], check=True)
    for suffix in (".xz", ".zst"):
        for threaded in (False, True):
            with (
                open(str(src) + suffix, "rb") as raw,
                open_stream(raw, threaded=threaded) as stream,
            ):
                assert stream.read() == DATA * 4


def test_uncompressed_data_passes_through() -> None:
    with open_stream(io.BytesIO(b"plain tar bytes")) as stream:
        assert stream.read() == b"plain tar bytes"


def test_a_closed_threaded_stream_leaves_no_process_or_thread() -> None:
    import threading

    before = threading.active_count()
    stream = open_stream(io.BytesIO(COMPRESSED["xz"]), threaded=True)
    stream.read(10)
    stream.close()
    assert threading.active_count() == before
    # no zombie xz left behind
    children = subprocess.run(
        ["ps", "--ppid", str(os.getpid()), "-o", "comm="], capture_output=True, text=True
    ).stdout.split()
    assert "xz" not in children

"""Image sources: plain and compressed images, sizes read from the containers, damage."""

from __future__ import annotations

import gzip
import hashlib
import mmap
import os
import subprocess
from array import array
from pathlib import Path

import pytest

from app.errors import InputError
from app.usb.source import Compression, open_image

MiB = 1 << 20


def make_payload(path: Path, size: int) -> bytes:
    # A little random, the rest numbered 8-byte words: quick to compress, nothing repeats.
    data = os.urandom(256 * 1024) + array("Q", range((size - 256 * 1024) // 8)).tobytes()
    data += b"\xaa" * (size - len(data))
    path.write_bytes(data)
    return data


def read_all(source, block: int = 4 * MiB) -> tuple[bytes, list[int]]:
    out = bytearray()
    consumed = []
    buf = mmap.mmap(-1, block)
    view = memoryview(buf)
    with source.open() as reader:
        while True:
            n = reader.readinto(view)
            out += view[:n]
            consumed.append(reader.consumed)
            if n < block:
                break
    view.release()
    buf.close()
    return bytes(out), consumed


def compress(tool: list[str], src: Path, dst: Path) -> Path:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        subprocess.run(tool, stdin=fin, stdout=fout, check=True)
    return dst


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "image.iso"
    return path, make_payload(path, 9 * MiB + 1234)


def test_plain_image_is_read_as_is(payload) -> None:
    path, data = payload
    source = open_image(path)
    assert source.compression is Compression.NONE
    assert source.size == source.size_at_least == len(data) == source.file_size
    out, consumed = read_all(source)
    assert out == data
    assert consumed[-1] == len(data)


def test_xz_size_comes_from_the_index(payload, tmp_path: Path) -> None:
    path, data = payload
    xz = compress(["xz", "-1", "-T1", "-c"], path, tmp_path / "image.iso.xz")
    source = open_image(xz)
    assert source.compression is Compression.XZ
    assert source.size == len(data)
    out, consumed = read_all(source)
    assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()
    # Progress by compressed bytes moves forward and ends at the file's size.
    assert consumed == sorted(consumed) and consumed[-1] == source.file_size


def test_xz_multi_stream_with_padding_and_multi_block(payload, tmp_path: Path) -> None:
    path, data = payload
    first = compress(["xz", "-0", "-T1", "--block-size=1MiB", "-c"], path, tmp_path / "a.xz")
    second = compress(["xz", "-0", "-c"], path, tmp_path / "b.xz")
    joined = tmp_path / "joined.xz"
    joined.write_bytes(first.read_bytes() + b"\0" * 8 + second.read_bytes() + b"\0" * 4)
    source = open_image(joined)
    assert source.size == 2 * len(data)
    out, _ = read_all(source)
    assert out == data + data


def test_zstd_size_from_frame_headers_even_multi_frame(payload, tmp_path: Path) -> None:
    path, data = payload
    zst = tmp_path / "a.zst"
    subprocess.run(["zstd", "-q", "-1", str(path), "-o", str(zst)], check=True)
    source = open_image(zst)
    assert source.compression is Compression.ZSTD
    assert source.size == len(data)
    assert read_all(source)[0] == data
    double = tmp_path / "double.zst"
    double.write_bytes(zst.read_bytes() * 2)
    source = open_image(double)
    assert source.size == 2 * len(data)
    assert read_all(source)[0] == data + data


def test_zstd_without_content_size_is_unknown(payload, tmp_path: Path) -> None:
    path, data = payload
    # Streamed through a pipe, zstd cannot know the size and does not record it.
    zst = compress(["zstd", "-q", "-1", "-c"], path, tmp_path / "a.zst")
    source = open_image(zst)
    assert source.size is None
    out, consumed = read_all(source)
    assert out == data
    assert consumed[-1] == source.file_size


def test_gzip_isize_is_a_lower_bound_not_a_size(payload, tmp_path: Path) -> None:
    path, data = payload
    gz = compress(["gzip", "-1", "-c"], path, tmp_path / "a.gz")
    source = open_image(gz)
    assert source.compression is Compression.GZIP
    assert source.size is None
    assert source.size_at_least == len(data)
    # Two members: the bound is the last member's size, still not more than the truth.
    double = tmp_path / "double.gz"
    double.write_bytes(gz.read_bytes() * 2)
    source = open_image(double)
    assert source.size_at_least == len(data) <= 2 * len(data)
    assert read_all(source)[0] == data + data


@pytest.mark.parametrize(
    "tool,suffix",
    [(["xz", "-0", "-c"], "xz"), (["zstd", "-q", "-c"], "zst"), (["gzip", "-c"], "gz")],
)
def test_damaged_compressed_image_is_an_input_error(payload, tmp_path: Path, tool, suffix) -> None:
    path, _ = payload
    packed = compress(tool, path, tmp_path / f"a.{suffix}")
    blob = bytearray(packed.read_bytes())
    middle = len(blob) // 2
    blob[middle : middle + 64] = bytes(64)
    damaged = tmp_path / f"damaged.{suffix}"
    damaged.write_bytes(bytes(blob))
    with pytest.raises(InputError) as err:
        read_all(open_image(damaged))
    assert "damaged" in str(err.value) and str(damaged) in str(err.value)


def test_truncated_xz_container_is_refused_up_front(payload, tmp_path: Path) -> None:
    path, _ = payload
    xz = compress(["xz", "-0", "-c"], path, tmp_path / "a.xz")
    cut = tmp_path / "cut.xz"
    cut.write_bytes(xz.read_bytes()[:-100])
    with pytest.raises(InputError, match="container is damaged"):
        open_image(cut)


def test_missing_empty_and_unsupported_images(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        open_image(tmp_path / "nope.iso")
    (tmp_path / "empty.iso").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        open_image(tmp_path / "empty.iso")
    (tmp_path / "x.zip").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(InputError, match="zip images cannot be written"):
        open_image(tmp_path / "x.zip")
    with pytest.raises(InputError, match="directory"):
        open_image(tmp_path)


def test_a_fifo_or_a_device_as_the_image_is_refused_at_once(tmp_path: Path) -> None:
    # Opening a FIFO for reading waits for a writer: without care, forever.
    import threading

    fifo = tmp_path / "image.iso"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def try_open(path: Path) -> None:
        try:
            open_image(path)
        except BaseException as exc:  # the error is the result here
            outcome.append(exc)

    for path in (fifo, Path("/dev/zero")):
        outcome.clear()
        worker = threading.Thread(target=try_open, args=(path,), daemon=True)
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), f"opening {path} hung"
        assert len(outcome) == 1 and isinstance(outcome[0], InputError)
        assert "not a regular file" in str(outcome[0]) and str(path) in str(outcome[0])
    with pytest.raises(InputError, match="is a directory"):
        open_image(tmp_path)


def test_a_raw_image_that_opens_like_gzips_magic_stays_raw(tmp_path: Path) -> None:
    """Two bytes of gzip magic turn up in 1 of 65,536 random images; the method byte
    (8, deflate) must follow before an image counts as gzip."""
    raw = tmp_path / "raw.img"
    raw.write_bytes(b"\x1f\x8b\x00" + bytes(4096 - 3))
    assert open_image(raw).compression is Compression.NONE
    packed = tmp_path / "packed.img.gz"
    packed.write_bytes(gzip.compress(bytes(4096)))
    assert open_image(packed).compression is Compression.GZIP

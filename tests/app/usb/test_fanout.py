"""One read of the image feeding several writers (app.usb.fanout)."""

from __future__ import annotations

import hashlib
import lzma
import os
import threading
from pathlib import Path

import pytest

from app.usb.fanout import FanOut
from app.usb.source import open_image

MiB = 1 << 20


def read_all(fan: FanOut, index: int, chunk: int, stop_after: int | None = None) -> bytes:
    out = bytearray()
    with fan.reader(index) as reader:
        view = memoryview(bytearray(chunk))
        while True:
            n = reader.readinto(view)
            out += view[:n]
            if n < chunk or (stop_after is not None and len(out) >= stop_after):
                return bytes(out)


def run_readers(fan: FanOut, jobs: list) -> list[bytes | BaseException]:
    results: list[bytes | BaseException] = [b""] * len(jobs)

    def run(i: int) -> None:
        try:
            results[i] = jobs[i]()
        except BaseException as exc:
            results[i] = exc
        finally:
            fan.leave(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a reader hung"
    return results


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "image.iso"
    path.write_bytes(os.urandom(9 * MiB + 123))
    return path


def test_every_writer_gets_the_whole_image_from_one_read(image: Path) -> None:
    fan = FanOut(open_image(image), 3, block=1 * MiB)
    chunks = [4 * MiB, 1 * MiB, 777]  # each writer reads in its own sizes
    results = run_readers(fan, [lambda c=c, i=i: read_all(fan, i, c) for i, c in enumerate(chunks)])
    digest = hashlib.sha256(image.read_bytes()).digest()
    for data in results:
        assert isinstance(data, bytes)
        assert hashlib.sha256(data).digest() == digest
    assert fan.reads == 1


def test_a_writer_that_stops_early_holds_nobody_up(image: Path) -> None:
    fan = FanOut(open_image(image), 2, block=1 * MiB)
    results = run_readers(
        fan,
        [lambda: read_all(fan, 0, MiB, stop_after=MiB), lambda: read_all(fan, 1, MiB)],
    )
    assert len(results[0]) == MiB
    assert results[1] == image.read_bytes()


def test_a_writer_that_never_starts_holds_nobody_up(image: Path) -> None:
    fan = FanOut(open_image(image), 2, block=1 * MiB)

    def fails_before_writing() -> bytes:
        raise RuntimeError("the stick was read-only")

    results = run_readers(fan, [fails_before_writing, lambda: read_all(fan, 1, MiB)])
    assert isinstance(results[0], RuntimeError)
    assert results[1] == image.read_bytes()


def test_a_read_error_reaches_every_writer(tmp_path: Path) -> None:
    path = tmp_path / "bad.iso.xz"
    packed = bytearray(lzma.compress(os.urandom(4 * MiB)))
    middle = len(packed) // 2
    packed[middle : middle + 64] = bytes(64)  # a damaged block inside a sound container
    path.write_bytes(bytes(packed))
    fan = FanOut(open_image(path), 2, block=1 * MiB)
    results = run_readers(fan, [lambda i=i: read_all(fan, i, MiB) for i in range(2)])
    assert all(isinstance(r, Exception) for r in results), results

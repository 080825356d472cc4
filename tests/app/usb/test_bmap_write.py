"""Writing with a block map (bmaptool's .bmap): only mapped blocks are written and read back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.usb.writer_support import device_bytes, loop_device, run
from tests.conftest import ROOT, needs_root

pytestmark = [
    needs_root,
    pytest.mark.skipif(shutil.which("bmaptool") is None, reason="needs bmap-tools"),
]
MiB = 1 << 20
STICK = 96 * MiB
OLD = b"\xaa"  # what the stick held before: must stay where the map names nothing


def sparse_bootable_image(path: Path) -> Path:
    """64 MiB: an MBR, 3 MiB of data at 10 MiB and 20 KiB at ~15.6 MiB; zeros (holes) else."""
    with open(path, "wb") as fh:
        fh.truncate(64 * MiB)
        fh.seek(10 * MiB)
        fh.write(os.urandom(3 * MiB))
        fh.seek(4000 * 4096)
        fh.write(os.urandom(5 * 4096))
    run(
        "sfdisk",
        "-q",
        "--no-reread",
        "--no-tell-kernel",
        str(path),
        input="label: dos\nstart=2048, type=c\n",
    )
    return path


@pytest.fixture
def image(tmp_path: Path) -> Path:
    image = sparse_bootable_image(tmp_path / "live.img")
    run("bmaptool", "create", str(image), "-o", str(tmp_path / "live.img.bmap"))
    return image


@pytest.fixture
def stick(tmp_path: Path):
    backing = tmp_path / "stick.img"
    backing.write_bytes(OLD * STICK)
    with loop_device(backing) as node:
        yield node


def livesmith(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def test_only_the_mapped_blocks_are_written_and_verified(image: Path, stick: str) -> None:
    out = livesmith("write", str(image), stick, "--yes")
    assert out.returncode == 0, out.stderr
    assert "Block map: live.img.bmap: 3 mapped ranges" in out.stderr
    assert "the 3.2 MB its block map names" in out.stdout and "written and verified" in out.stdout
    data = image.read_bytes()
    assert device_bytes(stick, 64 * 1024) == data[: 64 * 1024]  # the head: always written
    assert device_bytes(stick, 3 * MiB, 10 * MiB) == data[10 * MiB : 13 * MiB]
    assert device_bytes(stick, 5 * 4096, 4000 * 4096) == data[4000 * 4096 : 4005 * 4096]
    # Holes of the image were not written: the stick's old bytes are still there.
    assert device_bytes(stick, MiB, 20 * MiB) == OLD * MiB
    assert device_bytes(stick, MiB, 5 * MiB) == OLD * MiB


def test_no_bmap_writes_the_whole_image(image: Path, stick: str) -> None:
    out = livesmith("write", str(image), stick, "--yes", "--no-bmap")
    assert out.returncode == 0, out.stderr
    assert "Block map" not in out.stderr
    assert device_bytes(stick, MiB, 20 * MiB) == bytes(MiB)


def test_an_image_that_does_not_match_its_map_is_refused_and_wiped(image: Path, stick: str) -> None:
    with open(image, "r+b") as fh:
        fh.seek(11 * MiB)
        fh.write(b"tampered")
    out = livesmith("write", str(image), stick, "--yes")
    assert out.returncode == 3, out.stderr
    assert "does not match its block map: bytes 10485760-13631487" in out.stderr
    assert "wiped" in out.stderr
    assert device_bytes(stick, 512)[510:512] != b"\x55\xaa"  # no bootable-looking MBR left


def test_a_map_of_another_image_is_refused_before_writing(
    tmp_path: Path, image: Path, stick: str
) -> None:
    other = sparse_bootable_image(tmp_path / "other.img")
    with open(other, "r+b") as fh:
        fh.truncate(65 * MiB)
    out = livesmith("write", str(other), stick, "--yes", "--bmap", str(image) + ".bmap")
    assert out.returncode == 3
    assert "the block map is for an image of 67108864 bytes, but the image has 68157440" in (
        out.stderr
    )
    assert device_bytes(stick, MiB) == OLD * MiB  # nothing was written


def test_several_sticks_with_a_block_map(tmp_path: Path, image: Path, stick: str) -> None:
    second = tmp_path / "second.img"
    second.write_bytes(OLD * STICK)
    with loop_device(second) as other:
        out = livesmith("write", str(image), stick, other, "--yes")
        assert out.returncode == 0, out.stderr
        assert "2 of 2 sticks written" in out.stdout
        for node in (stick, other):
            assert device_bytes(node, 3 * MiB, 10 * MiB) == image.read_bytes()[10 * MiB : 13 * MiB]
            assert device_bytes(node, MiB, 20 * MiB) == OLD * MiB


def test_verify_compares_only_what_the_map_names(image: Path, stick: str) -> None:
    assert livesmith("write", str(image), stick, "--yes").returncode == 0
    out = livesmith("verify", str(image), stick)
    assert out.returncode == 0, out.stderr
    assert "where its block map names data (3.2 MB)" in out.stdout
    # Without the map, the holes the writer left alone differ from the image's zeros.
    out = livesmith("verify", str(image), stick, "--no-bmap")
    assert out.returncode == 1 and "byte 65536 differs" in out.stderr
    # A mapped byte changed on the stick is caught.
    with open(stick, "r+b") as fh:
        fh.seek(12 * MiB + 3)
        fh.write(b"X")
    out = livesmith("verify", str(image), stick)
    assert out.returncode == 1 and f"byte {12 * MiB + 3} differs" in out.stderr

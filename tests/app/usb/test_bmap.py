"""Block maps: parsing bmaptool's own files, checking them, and checking an image against one."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from app.errors import InputError
from app.usb.bmap import RangeChecker, bmap_beside, read_bmap

MiB = 1 << 20


def sparse_image(path: Path) -> Path:
    """64 MiB with data at 10-13 MiB and in five 4 KiB blocks at 4000-4004: a sparse file."""
    with open(path, "wb") as fh:
        fh.truncate(64 * MiB)
        fh.seek(10 * MiB)
        fh.write(os.urandom(3 * MiB))
        fh.seek(4000 * 4096)
        fh.write(os.urandom(5 * 4096))
    return path


@pytest.fixture
def mapped(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("bmaptool") is None:
        pytest.skip("needs bmaptool (package bmap-tools)")
    image = sparse_image(tmp_path / "live.img")
    bmap = tmp_path / "live.img.bmap"
    subprocess.run(["bmaptool", "create", str(image), "-o", str(bmap)], check=True)
    return image, bmap


def test_a_map_made_by_bmaptool_is_read(mapped: tuple[Path, Path]) -> None:
    image, path = mapped
    bmap = read_bmap(path)
    assert bmap.image_size == 64 * MiB and bmap.block_size == 4096
    assert bmap.checksum_type == "sha256"
    assert [(r.start, r.end) for r in bmap.ranges] == [
        (10 * MiB, 13 * MiB),
        (4000 * 4096, 4005 * 4096),
    ]
    assert bmap.mapped_bytes == 3 * MiB + 5 * 4096
    assert "2 mapped ranges" in bmap.describe()
    assert bmap_beside(image) == path


def test_pieces_are_the_mapped_parts_of_a_block(mapped: tuple[Path, Path]) -> None:
    bmap = read_bmap(mapped[1])
    assert list(bmap.pieces(0, 4 * MiB)) == []
    assert list(bmap.pieces(8 * MiB, 4 * MiB)) == [(10 * MiB, 12 * MiB)]
    assert list(bmap.pieces(12 * MiB, 8 * MiB)) == [
        (12 * MiB, 13 * MiB),
        (4000 * 4096, 4005 * 4096),
    ]


def feed_all(checker: RangeChecker, data: bytes, block: int = 4 * MiB) -> None:
    for offset in range(0, len(data), block):
        checker.feed(offset, memoryview(data)[offset : offset + block])
    checker.finish(len(data))


def test_the_image_is_checked_against_the_range_checksums(mapped: tuple[Path, Path]) -> None:
    image, path = mapped
    data = bytearray(image.read_bytes())
    feed_all(RangeChecker(read_bmap(path)), bytes(data), block=3 * MiB + 5)  # odd blocks
    data[4002 * 4096 + 7] ^= 0xFF
    with pytest.raises(InputError, match=r"bytes 16384000-16404479 \(blocks 4000-4004\)"):
        feed_all(RangeChecker(read_bmap(path)), bytes(data))


def test_an_image_shorter_than_its_map_is_refused(mapped: tuple[Path, Path]) -> None:
    image, path = mapped
    with pytest.raises(InputError, match="belongs to another image"):
        feed_all(RangeChecker(read_bmap(path)), image.read_bytes()[: 12 * MiB])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("2560-3327", "2560-3328"), "own checksum does not match"),
        (lambda t: t.replace('version="2.0"', 'version="3.0"'), "version '3.0' is not supported"),
        (lambda t: t.replace("<bmap", "<bmp").replace("</bmap>", "</bmp>"), "not a block map"),
        (lambda t: t.replace("</BlockMap>", ""), "not valid XML"),
    ],
)
def test_damaged_maps_are_refused(mapped: tuple[Path, Path], change, message: str) -> None:
    path = mapped[1]
    path.write_text(change(path.read_text()))
    with pytest.raises(InputError, match=message) as info:
        read_bmap(path)
    assert info.value.where == str(path)


def unchecked_map(tmp_path: Path, ranges: str) -> Path:
    path = tmp_path / "hand.bmap"
    path.write_text(
        '<?xml version="1.0" ?><bmap version="2.0"><ImageSize> 1048576 </ImageSize>'
        "<BlockSize> 4096 </BlockSize><BlocksCount> 256 </BlocksCount>"
        "<MappedBlocksCount> 2 </MappedBlocksCount><ChecksumType> sha256 </ChecksumType>"
        f"<BlockMap>{ranges}</BlockMap></bmap>"
    )
    return path


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ("<Range> 5-9 </Range><Range> 8-12 </Range>", "overlaps or precedes"),
        ("<Range> 300-301 </Range>", "outside the 1048576-byte image"),
        ("<Range> nine </Range>", "not 'first-last'"),
        ('<Range chksum="xyz"> 1-2 </Range>', "checksum malformed"),
    ],
)
def test_impossible_ranges_are_refused(tmp_path: Path, ranges: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_bmap(unchecked_map(tmp_path, ranges))


def test_a_compressed_image_finds_the_map_of_the_uncompressed_one(tmp_path: Path) -> None:
    (tmp_path / "live.img.xz").write_bytes(b"")
    assert bmap_beside(tmp_path / "live.img.xz") is None
    (tmp_path / "live.img.bmap").write_text("x")
    assert bmap_beside(tmp_path / "live.img.xz") == tmp_path / "live.img.bmap"

"""Block maps (bmaptool's .bmap files): write and verify only the blocks an image uses.

A .bmap file next to an image lists the ranges of blocks that hold data; the rest of the
image is zeros (unused file-system space) that need not be written. Format (bmap-tools,
versions 1.x and 2.x):

    <bmap version="2.0">
      <ImageSize> bytes </ImageSize> <BlockSize> bytes </BlockSize>
      <BlocksCount> n </BlocksCount> <MappedBlocksCount> m </MappedBlocksCount>
      <ChecksumType> sha256 </ChecksumType>          (2.x; 1.x ranges carry sha1)
      <BmapFileChecksum> hex </BmapFileChecksum>     (the file's own checksum, 1.3 and later)
      <BlockMap> <Range chksum="hex"> first-last </Range> … </BlockMap>
    </bmap>

A block map is checked before it is used: its own checksum, ranges sorted, apart and
inside the image. While the image streams through the writer, each range's checksum is
checked too, so an image that does not match its map is caught (as bmaptool does).
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.errors import InputError

MAX_BMAP_BYTES = 64 << 20  # a map of a 1 TB image with 4 KiB blocks fits many times over
CHECKSUMS = {"sha256": 64, "sha1": 40, "md5": 32}
COMPRESSION_SUFFIXES = (".xz", ".zst", ".gz", ".bz2", ".lzo", ".lz4")


@dataclass(frozen=True)
class MappedRange:
    start: int  # byte offsets in the image, [start, end)
    end: int
    checksum: str | None  # hex digest of the range's bytes, ChecksumType of the map


@dataclass(frozen=True)
class Bmap:
    path: Path
    image_size: int
    block_size: int
    checksum_type: str
    ranges: tuple[MappedRange, ...]

    @property
    def mapped_bytes(self) -> int:
        return sum(r.end - r.start for r in self.ranges)

    def describe(self) -> str:
        share = self.mapped_bytes * 100 / self.image_size if self.image_size else 0
        return (
            f"{self.path.name}: {len(self.ranges)} mapped ranges, {self.mapped_bytes} of "
            f"{self.image_size} bytes ({share:.1f}%)"
        )

    def pieces(self, offset: int, length: int) -> Iterator[tuple[int, int]]:
        """The mapped parts of [offset, offset + length), as (start, end) image offsets."""
        end = offset + length
        for mapped in self._ranges_from(offset):
            if mapped.start >= end:
                return
            yield max(mapped.start, offset), min(mapped.end, end)

    def _ranges_from(self, offset: int) -> Iterator[MappedRange]:
        # Binary search for the first range ending after `offset`.
        low, high = 0, len(self.ranges)
        while low < high:
            middle = (low + high) // 2
            if self.ranges[middle].end <= offset:
                low = middle + 1
            else:
                high = middle
        yield from self.ranges[low:]


def bmap_beside(image: Path) -> Path | None:
    """The .bmap file bmaptool would use for `image`: IMAGE.bmap, with a compression
    suffix dropped (live.img.xz -> live.img.bmap), else None."""
    candidates = [image.with_name(image.name + ".bmap")]
    if image.suffix in COMPRESSION_SUFFIXES:
        candidates.append(image.with_name(image.stem + ".bmap"))
    return next((c for c in candidates if c.is_file()), None)


def _text(root: ET.Element, tag: str, where: str, *, required: bool = True) -> str | None:
    node = root.find(tag)
    if node is None or node.text is None:
        if required:
            raise InputError(f"the block map has no <{tag}>", where=where)
        return None
    return node.text.strip()


def _number(root: ET.Element, tag: str, where: str) -> int:
    text = _text(root, tag, where)
    assert text is not None
    if not text.isdigit():
        raise InputError(f"<{tag}> is not a number: {text[:40]!r}", where=where)
    return int(text)


def read_bmap(path: Path) -> Bmap:
    """Parse and check a .bmap file; InputError saying what is wrong and where."""
    where = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BMAP_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read the block map: {exc.strerror}", where=where) from exc
    if len(data) > MAX_BMAP_BYTES:
        raise InputError(f"the block map is larger than {MAX_BMAP_BYTES} bytes", where=where)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise InputError(f"the block map is not valid XML ({exc})", where=where) from exc
    if root.tag != "bmap":
        raise InputError(f"not a block map: the root element is <{root.tag}>", where=where)
    version = root.get("version", "")
    major = version.split(".")[0]
    if major not in ("1", "2"):
        raise InputError(f"block map version {version!r} is not supported (1.x, 2.x)", where=where)
    checksum_type = (_text(root, "ChecksumType", where, required=False) or "sha1").lower()
    if checksum_type not in CHECKSUMS:
        raise InputError(f"unknown checksum type {checksum_type!r}", where=where)
    own = _text(root, "BmapFileChecksum", where, required=False)
    if own is not None:
        zeroed = data.replace(own.encode(), b"0" * len(own), 1)
        actual = hashlib.new(checksum_type, zeroed).hexdigest()
        if actual != own.lower():
            raise InputError(
                "the block map's own checksum does not match: the file is damaged",
                where=where,
                hint="download the .bmap file again",
            )
    image_size = _number(root, "ImageSize", where)
    block_size = _number(root, "BlockSize", where)
    if block_size == 0 or block_size % 512:
        raise InputError(f"block size {block_size} is not a multiple of 512", where=where)
    block_map = root.find("BlockMap")
    if block_map is None:
        raise InputError("the block map has no <BlockMap>", where=where)
    ranges: list[MappedRange] = []
    digits = CHECKSUMS[checksum_type]
    for node in block_map.findall("Range"):
        text = (node.text or "").strip()
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
        if match is None:
            raise InputError(f"a <Range> is not 'first-last': {text[:40]!r}", where=where)
        first = int(match.group(1))
        last = int(match.group(2) or first)
        start, end = first * block_size, min((last + 1) * block_size, image_size)
        if last < first or start >= image_size:
            raise InputError(f"range {text} lies outside the {image_size}-byte image", where=where)
        if ranges and start < ranges[-1].end:
            raise InputError(f"range {text} overlaps or precedes the one before", where=where)
        checksum = node.get("chksum")
        if checksum is not None and not re.fullmatch(f"[0-9a-fA-F]{{{digits}}}", checksum):
            raise InputError(f"range {text}: {checksum_type} checksum malformed", where=where)
        ranges.append(MappedRange(start, end, checksum.lower() if checksum else None))
    return Bmap(path, image_size, block_size, checksum_type, tuple(ranges))


class RangeChecker:
    """Checks the image's mapped ranges against their checksums as the image streams by."""

    def __init__(self, bmap: Bmap) -> None:
        self.bmap = bmap
        self._index = 0
        self._hash = hashlib.new(bmap.checksum_type)

    def feed(self, offset: int, data: memoryview) -> None:
        """`data` is the image at `offset`; called in order over the whole image."""
        end = offset + len(data)
        ranges = self.bmap.ranges
        while self._index < len(ranges) and ranges[self._index].start < end:
            mapped = ranges[self._index]
            lo, hi = max(mapped.start, offset), min(mapped.end, end)
            if lo < hi:
                self._hash.update(data[lo - offset : hi - offset])
            if mapped.end > end:
                return  # the range goes on in the next block
            self._finish(mapped)
            self._index += 1

    def _finish(self, mapped: MappedRange) -> None:
        digest = self._hash.hexdigest()
        self._hash = hashlib.new(self.bmap.checksum_type)
        if mapped.checksum is not None and digest != mapped.checksum:
            block = self.bmap.block_size
            raise InputError(
                f"the image does not match its block map: bytes {mapped.start}-{mapped.end - 1} "
                f"(blocks {mapped.start // block}-{(mapped.end - 1) // block}) have another "
                f"{self.bmap.checksum_type}",
                where=str(self.bmap.path),
                hint="the image or the .bmap file is damaged or belongs to another image",
            )

    def finish(self, image_end: int) -> None:
        """The image ended at `image_end`: every range must have been seen whole."""
        if self._index < len(self.bmap.ranges):
            mapped = self.bmap.ranges[self._index]
            raise InputError(
                f"the image ends at byte {image_end}, inside or before the mapped range "
                f"{mapped.start}-{mapped.end - 1}",
                where=str(self.bmap.path),
                hint="the .bmap file belongs to another image",
            )

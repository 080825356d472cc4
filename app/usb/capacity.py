"""Does a stick really hold what it claims? A fake-capacity check, quick or full.

Fake sticks report a large size but store far less. Their controller either ignores the
high address bits, so writes past the real size wrap around and overwrite earlier data,
or it accepts writes there and loses them. Either way an image larger than the real size
is written "successfully" and does not boot; a plain read-back of the image (which is what
verification does) can even pass when the image wraps onto itself unnoticed.

Quick check (non-destructive): markers go to blocks spread over the claimed capacity (the
first block, every power of two, the last block, blocks at even spacing and random ones),
each naming its own offset and a nonce of this run. They are read back past the page cache
(O_DIRECT), and after 32 MiB elsewhere were rewritten with their own data, past the
controller's cache too. Blocks that read back the same marker share one physical place: the stick wraps
around, and the higher of them are aliases. A block holding anything else lost its write.
The real size of a wrapping stick divides every distance between blocks sharing a place;
the smallest divisor whose block lands on block 0 is it. For lost writes the real size is
narrowed by bisection between the highest good block below the first bad one and that bad
block. Every round reads what its blocks held first and writes it back afterwards (in
reverse order, so that blocks sharing one physical place end up as they were), also when
cancelled or failing.

Full check (destructive): every block is written with its offset and the nonce, then all
are read back. It finds every kind of fake, at the cost of a whole write and read.

Wrap-around by a power of two (the common fake: high address bits ignored) always shows,
since the powers of two land on block 0. By another size it shows when two probes land on
one physical block, which the even spacing makes likely but not certain; the full check
catches every case.
"""

from __future__ import annotations

import math
import os
import secrets
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from app.errors import LivesmithError
from app.reporter import Level, NullReporter, Reporter, check_cancelled
from app.units import binary_size
from app.usb.blockio import (
    aligned_buffer,
    device_size,
    failing_offset,
    io_error,
    is_block_fd,
    logical_sector_size,
    pread_full,
    pwrite_all,
)
from app.usb.engine import open_target
from app.usb.errors import DeviceNotAllowed, DeviceTooSmall
from app.usb.identity import NOTHING_WRITTEN, check_descriptor
from app.usb.source import ImageSource
from app.usb.target import Target, TargetKind, human_size, resolve_target

MAGIC = b"LIVESMITH-CAPACITY-CHECK"
HEADER = struct.Struct(f"<{len(MAGIC)}s16sQ")  # magic, nonce, the block's own offset
MIN_BLOCK = 4096
EVEN_PROBES = 64
RANDOM_PROBES = 64
FULL_CHUNK = 4 << 20
# Bytes rewritten in place between writing test blocks and reading them back, to empty a
# controller's cache: more for the first round over the whole stick, less for each
# narrowing round.
FIRST_EVICT = 32 << 20
NARROW_EVICT = 8 << 20
SPEED_SAMPLE = 16 << 20


class CheckMode(Enum):
    QUICK = "quick"
    FULL = "full"


class Failure(Enum):
    WRAPS = "wraps around"
    LOSES_WRITES = "loses writes"


@dataclass(frozen=True)
class CapacityResult:
    device: str
    mode: CheckMode
    claimed: int  # bytes the device reports
    usable: int  # bytes from the start that really hold data (== claimed when genuine)
    failure: Failure | None
    probes: int  # blocks written and read back
    seconds: float

    @property
    def genuine(self) -> bool:
        return self.failure is None

    def to_json(self) -> dict[str, object]:
        return {
            "device": self.device,
            "mode": self.mode.value,
            "genuine": self.genuine,
            "claimed": self.claimed,
            "usable": self.usable,
            "failure": self.failure.name.lower() if self.failure else None,
            "probes": self.probes,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        if self.genuine:
            return (
                f"{self.device}: genuine: all {self.probes} test blocks over the claimed "
                f"{binary_size(self.claimed)} ({self.claimed} bytes) held their data"
            )
        assert self.failure is not None
        return (
            f"{self.device}: FAKE: it claims {binary_size(self.claimed)} ({self.claimed} bytes) "
            f"but {self.failure.value} past {binary_size(self.usable)} ({self.usable} bytes); "
            f"only the first {binary_size(self.usable)} can be used"
        )


class CapacityCheckError(LivesmithError):
    """The check itself could not run (a device that refuses the reads or writes it needs)."""


# --- the probe rounds ----------------------------------------------------------------------


@dataclass
class _Probe:
    """A whole-device context: descriptor, block size, this run's nonce."""

    fd: int
    where: str
    block: int
    size: int
    nonce: bytes
    tested: int = 0  # blocks written with a marker and read back

    def marker(self, offset: int) -> bytes:
        head = HEADER.pack(MAGIC, self.nonce, offset)
        # The rest is random so that no compressing or de-duplicating controller is fooled.
        return head + secrets.token_bytes(self.block - len(head))

    def owner(self, data: bytes) -> int | None:
        """The offset named by one of this run's markers in `data`, else None."""
        magic, nonce, offset = HEADER.unpack_from(data)
        if magic != MAGIC or nonce != self.nonce:
            return None
        return int(offset)

    def read(self, offset: int, buf: memoryview, doing: str) -> None:
        try:
            got = pread_full(self.fd, buf, offset)
        except OSError as exc:
            raise self._error(exc, doing, offset) from exc
        if got < len(buf):
            buf[got:] = bytes(len(buf) - got)

    def write(
        self, offset: int, data: bytes | bytearray | memoryview, buf: memoryview, doing: str
    ) -> None:
        buf[: len(data)] = data
        try:
            pwrite_all(self.fd, buf[: len(data)], offset)
        except OSError as exc:
            raise self._error(exc, doing, failing_offset(exc, offset)) from exc

    def sync(self, doing: str) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise self._error(exc, doing, 0) from exc

    def _error(self, exc: OSError, doing: str, offset: int) -> LivesmithError:
        return io_error(
            exc, doing=doing, offset=offset, where=self.where, is_block=is_block_fd(self.fd)
        )


@dataclass
class _Findings:
    """What one round's read-back shows."""

    bad: set[int]  # blocks that do not hold their own data
    # Block offsets that share one physical place (wrap-around), each list sorted: their
    # differences are multiples of the real size.
    shared: list[list[int]]


def _classify(probe: _Probe, offsets: Sequence[int], readback: dict[int, bytes]) -> _Findings:
    """Blocks that read back the same marker share one physical place: the lowest of them
    is real, the others are aliases past the real size. A block that reads back anything
    else lost its write.
    """
    findings = _Findings(set(), [])
    places: dict[int, list[int]] = {}
    for offset in offsets:
        owner = probe.owner(readback[offset])
        if owner is None or owner not in readback:
            findings.bad.add(offset)
            continue
        places.setdefault(owner, []).append(offset)
    for owner, readers in places.items():
        sharing = sorted({owner, *readers})
        if len(sharing) > 1:
            findings.bad.update(sharing[1:])
            findings.shared.append(sharing)
    return findings


def _evict(probe: _Probe, length: int) -> None:
    """Push the test blocks out of any cache in the stick's controller, harmlessly.

    A controller may answer reads of blocks it just took from its own RAM; rewriting
    `length` bytes elsewhere with the data they already hold makes it go to the flash.
    """
    start = probe.size // 3 // probe.block * probe.block
    length = min(length, probe.size - start) // probe.block * probe.block
    buf = memoryview(aligned_buffer(min(FULL_CHUNK, length)))
    for offset in range(start, start + length, len(buf)):
        view = buf[: min(len(buf), start + length - offset)]
        probe.read(offset, view, "reading data to rewrite")
        probe.write(offset, view, view, "rewriting data in place")
    probe.sync("rewriting data in place")


def _round(
    probe: _Probe, offsets: Iterable[int], reporter: Reporter, *, evict: int = NARROW_EVICT
) -> _Findings:
    """Write a marker to each offset, read all back, put the old data back."""
    ordered = sorted(set(offsets))
    buf = memoryview(aligned_buffer(probe.block))
    saved: list[tuple[int, bytes]] = []
    readback: dict[int, bytes] = {}
    try:
        for offset in ordered:
            probe.read(offset, buf, "reading what the stick holds")
            saved.append((offset, bytes(buf)))
        markers = {offset: probe.marker(offset) for offset in ordered}
        probe.tested += len(ordered)
        for offset in ordered:
            check_cancelled(reporter)
            probe.write(offset, markers[offset], buf, "writing test blocks")
        probe.sync("writing test blocks")
        _evict(probe, evict)
        for offset in ordered:
            probe.read(offset, buf, "reading test blocks back")
            readback[offset] = bytes(buf)
    finally:
        # Reverse order: of blocks sharing one physical place, the first (real) one's old
        # data is written last and stays.
        for offset, data in reversed(saved):
            probe.write(offset, data, buf, "putting the stick's data back")
        if saved:
            probe.sync("putting the stick's data back")
    return _classify(probe, ordered, readback)


def _spread_offsets(size: int, block: int) -> list[int]:
    """Where the quick check looks: first, powers of two, last, even spacing, random."""
    last = (size // block - 1) * block
    offsets = {0, last}
    power = block
    while power <= last:
        offsets.add(power)
        power *= 2
    blocks = size // block
    for i in range(1, EVEN_PROBES):
        offsets.add(blocks * i // EVEN_PROBES * block)
    for _ in range(RANDOM_PROBES):
        offsets.add(secrets.randbelow(blocks) * block)
    return sorted(offsets)


def _wrap_partners(offset: int, block: int) -> set[int]:
    """The blocks `offset` lands on if the device ignores address bits above some power."""
    partners = {0}
    power = block
    while power <= offset:
        partners.add(offset % power // block * block)
        power *= 2
    partners.discard(offset)
    return partners


def _bisect(probe: _Probe, good: int, bad: int, reporter: Reporter) -> int:
    """The highest good block offset, knowing `good` works and `bad` does not (lost writes,
    or wrap-around by a power of two: each step also writes the blocks it could alias)."""
    block = probe.block
    while bad - good > block:
        check_cancelled(reporter)
        middle = (good + bad) // 2 // block * block
        if middle in _round(probe, [middle, *_wrap_partners(middle, block)], reporter).bad:
            bad = middle
        else:
            good = middle
        reporter.log(Level.DEBUG, f"real size between {good + block} and {bad} bytes")
    return good


def _divisors(number: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(number) + 1) if number % d == 0]
    return sorted({*small, *(number // d for d in small)})


def _wrap_period(probe: _Probe, shared: list[list[int]], bad: int, reporter: Reporter) -> int:
    """The real size of a stick that wraps around: the smallest offset that lands on block 0.

    Blocks sharing a physical place lie a multiple of the real size apart, so the real size
    divides the greatest common divisor of their distances, and it is at most the first bad
    block `bad`. One round writes block 0 and every such divisor: the smallest divisor that
    then shares block 0's place is the real size. (Blocks that read back their own marker
    prove nothing here: past the real size, a block whose place no other test block shares
    looks good too.)
    """
    distance = 0
    for sharing in shared:
        for offset in sharing[1:]:
            distance = math.gcd(distance, offset - sharing[0])
    block = probe.block
    candidates = [d * block for d in _divisors(distance // block) if 0 < d * block <= bad]
    findings = _round(probe, [0, *candidates], reporter)
    for sharing in findings.shared:
        if sharing[0] == 0:
            reporter.log(Level.DEBUG, f"block at {sharing[1]} lands on block 0")
            return sharing[1]
    # No candidate explains what the first round saw: count only the first block.
    reporter.log(Level.WARNING, f"no wrap-around period found up to byte {bad}")
    return block


def quick_check(probe: _Probe, reporter: Reporter) -> tuple[int, Failure | None, int]:
    """(usable bytes, failure, probes) for the non-destructive check."""
    offsets = _spread_offsets(probe.size, probe.block)
    reporter.step("check")
    reporter.log(Level.INFO, f"testing {len(offsets)} blocks spread over {probe.size} bytes")
    findings = _round(probe, offsets, reporter, evict=FIRST_EVICT)
    if not findings.bad:
        return probe.size, None, probe.tested
    first_bad = min(findings.bad)
    good = [offset for offset in offsets if offset not in findings.bad and offset < first_bad]
    if not good:
        raise CapacityCheckError(
            "even the first block does not keep what is written to it",
            where=probe.where,
            hint="the stick is broken or a fake with no usable space; do not use it",
        )
    reporter.step("narrow")
    if findings.shared:
        period = _wrap_period(probe, findings.shared, first_bad, reporter)
        return period, Failure.WRAPS, probe.tested
    last_good = _bisect(probe, max(good), first_bad, reporter)
    return last_good + probe.block, Failure.LOSES_WRITES, probe.tested


# --- the full check --------------------------------------------------------------------------


def _pattern(probe: _Probe, offset: int, length: int, filler: bytes) -> bytearray:
    chunk = bytearray(filler[:length])
    for at in range(0, length, probe.block):
        HEADER.pack_into(chunk, at, MAGIC, probe.nonce, offset + at)
    return chunk


def full_check(probe: _Probe, reporter: Reporter) -> tuple[int, Failure | None, int]:
    """(usable bytes, failure, blocks) after writing and reading every block (destructive).

    Where blocks wrap around, each reads back the marker of the last block written to its
    physical place, a multiple of the real size above it: the greatest common divisor of
    those distances is the real size.
    """
    size = probe.size // probe.block * probe.block
    filler = secrets.token_bytes(FULL_CHUNK)
    buf = memoryview(aligned_buffer(FULL_CHUNK))
    reporter.step("fill")
    for offset in range(0, size, FULL_CHUNK):
        check_cancelled(reporter)
        length = min(FULL_CHUNK, size - offset)
        probe.write(offset, _pattern(probe, offset, length, filler), buf, "writing test data")
        reporter.progress(offset + length, size)
    probe.sync("writing test data")
    reporter.step("compare")
    first_lost: int | None = None
    period = 0
    for offset in range(0, size, FULL_CHUNK):
        check_cancelled(reporter)
        length = min(FULL_CHUNK, size - offset)
        view = buf[:length]
        probe.read(offset, view, "reading test data back")
        expected = _pattern(probe, offset, length, filler)
        if view != expected:
            for at in range(0, length, probe.block):
                if view[at : at + probe.block] == expected[at : at + probe.block]:
                    continue
                owner = probe.owner(bytes(view[at : at + HEADER.size]))
                if owner is not None and owner != offset + at:
                    period = math.gcd(period, abs(owner - offset - at))
                elif first_lost is None:
                    first_lost = offset + at
        reporter.progress(offset + length, size)
    blocks = size // probe.block
    if period:
        return min(period, first_lost or period), Failure.WRAPS, blocks
    if first_lost is not None:
        return first_lost, Failure.LOSES_WRITES, blocks
    return probe.size, None, blocks


def write_speed(fd: int, size: int, where: str) -> float:
    """Bytes per second for rewriting (with its own data) a sample in the middle: harmless."""
    length = min(SPEED_SAMPLE, size // 2 // MIN_BLOCK * MIN_BLOCK)
    if length <= 0:
        return 0.0
    offset = size // 2 // MIN_BLOCK * MIN_BLOCK
    buf = memoryview(aligned_buffer(length))
    probe = _Probe(fd, where, MIN_BLOCK, size, b"\0" * 16)
    probe.read(offset, buf, "reading a sample")
    started = time.monotonic()
    probe.write(offset, buf, buf, "timing a write")
    probe.sync("timing a write")
    return length / max(time.monotonic() - started, 1e-6)


def full_check_seconds(fd: int, where: str) -> float:
    """An estimate of the full check's time: the whole device written and read."""
    size = device_size(fd)
    speed = write_speed(fd, size, where)
    # Reading is at least as fast as writing on flash; count it the same to stay honest.
    return 2 * size / speed if speed > 0 else float("inf")


def check_capacity(
    fd: int,
    where: str,
    *,
    mode: CheckMode = CheckMode.QUICK,
    reporter: Reporter | None = None,
) -> CapacityResult:
    """Check the open device (read-write, O_DIRECT where possible) for fake capacity."""
    reporter = reporter or NullReporter()
    size = device_size(fd)
    block = max(MIN_BLOCK, logical_sector_size(fd))
    if size < 2 * block:
        raise CapacityCheckError(f"is too small to check ({size} bytes)", where=where)
    probe = _Probe(fd, where, block, size, secrets.token_bytes(16))
    started = time.monotonic()
    check = quick_check if mode is CheckMode.QUICK else full_check
    usable, failure, probes = check(probe, reporter)
    result = CapacityResult(where, mode, size, usable, failure, probes, time.monotonic() - started)
    reporter.log(Level.INFO if result.genuine else Level.WARNING, result.summary())
    return result


PHASE_TITLES = {
    "check": "Testing blocks across the stick",
    "narrow": "Finding the real size",
    "fill": "Writing test data to every block",
    "compare": "Reading every block back",
}


def resolve_stick(path: str) -> Target:
    """The stick to check: the same safety gate as for writing, and a whole disk only."""
    target = resolve_target(path)
    if target.kind is not TargetKind.BLOCK:
        raise DeviceNotAllowed(
            "is not a block device; name a whole disk (/dev/sdX, /dev/mmcblkN)",
            where=str(target.path),
        )
    return target


def check_stick(
    target: Target, *, mode: CheckMode = CheckMode.QUICK, reporter: Reporter | None = None
) -> CapacityResult:
    """Open the stick (checking it is still the disk `target` describes) and check it."""
    fd = open_target(target, True)
    try:
        if target.identity is not None:
            check_descriptor(fd, target.identity, str(target.path), consequence=NOTHING_WRITTEN)
        return check_capacity(fd, str(target.path), mode=mode, reporter=reporter)
    finally:
        os.close(fd)


def estimate_full_check(target: Target) -> float:
    """Seconds the full check of `target` would take (from a harmless timed rewrite)."""
    fd = open_target(target, True)
    try:
        return full_check_seconds(fd, str(target.path))
    finally:
        os.close(fd)


def refuse_if_fake(source: ImageSource, result: CapacityResult) -> None:
    """An image larger than what a fake stick really holds is refused, its real size named."""
    if result.genuine:
        return
    need = source.size if source.size is not None else source.size_at_least
    if need > result.usable:
        raise DeviceTooSmall(
            f"the image ({human_size(need)}, {need} bytes) is larger than what this fake "
            f"stick really holds ({human_size(result.usable)}, {result.usable} bytes, of "
            f"the {human_size(result.claimed)} it claims); nothing was written",
            where=result.device,
            image_size=need,
            device_size=result.usable,
            hint="use a genuine stick",
        )

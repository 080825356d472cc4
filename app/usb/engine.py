"""Writing an image to a stick (or a file) and verifying it without trusting the page cache.

Write: one plain sequential pass in 4 MiB page-aligned blocks with O_DIRECT. A reader
thread reads (and decompresses) the next block and hashes it (XXH3-128) while the current
block is being written, so reading, hashing and writing overlap. The first 64 KiB are zeroed
before anything else and written last, so an interrupted write never leaves a partition
table or an ISO descriptor behind; an fsync every 32 MiB keeps a cancel quick.

Verify: the device is read back with O_DIRECT (or, where O_DIRECT is refused, after
BLKFLSBUF + POSIX_FADV_DONTNEED) and hashed; on a mismatch the device is compared with the
source block by block to name the first byte that differs. Nothing is reported as success
unless it was verified.

Cancel and failure: the writer stops within one block, zeroes the first and last MiB (see
`wipe.py`), and says so.
"""

from __future__ import annotations

import errno
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import xxhash

from app.errors import Cancelled, InputError, LivesmithError, VerificationError
from app.reporter import Level, NullReporter, Reporter, check_cancelled
from app.usb.blockio import (
    aligned_buffer,
    device_size,
    drop_cache,
    failing_offset,
    has_direct_io,
    io_error,
    is_read_only,
    logical_sector_size,
    pread_full,
    pwrite_all,
    reread_partitions,
    round_up,
)
from app.usb.bmap import Bmap, RangeChecker
from app.usb.errors import (
    DeviceBusy,
    DeviceNotFound,
    DevicePermissionDenied,
    DeviceReadOnly,
    DeviceTooSmall,
    DeviceUnplugged,
)
from app.usb.identity import (
    LEFT_ALONE,
    NOTHING_WRITTEN,
    BlockIdentity,
    check_descriptor,
    check_identity,
    check_path,
    gone_error,
)
from app.usb.persistence import (
    ByteRange,
    Persistence,
    PersistenceError,
    PersistencePlan,
    add_persistence,
    changed_ranges,
    find_on_device,
    plan_persistence,
    read_head,
)
from app.usb.source import ImageSource
from app.usb.sysfs import disk_identity_at, disk_size, sys_path_of_devno
from app.usb.target import Target, TargetKind, describe_disk, human_size
from app.usb.target import logical_sector_size as target_sector_size
from app.usb.wipe import WIPED_MESSAGE, wipe_signatures

BLOCK = 4 << 20
VERIFY_BLOCK = 8 << 20
HEAD = 64 << 10  # written last
FSYNC_EVERY = 32 << 20
PIPELINE_DEPTH = 3
LARGE_DEVICE = 64 * 1000**3

# Step names; the helper protocol sends them as `PHASE <name>`.
PHASE_WRITE = "write"
PHASE_VERIFY = "verify"
PHASE_LOCATE = "locate"
PHASE_WIPE = "wipe"
PHASE_PERSISTENCE = "persistence"
PHASE_TITLES = {
    PHASE_PERSISTENCE: "Adding the persistence partition",
    PHASE_WRITE: "Writing",
    PHASE_VERIFY: "Verifying (reading the device back, bypassing the cache)",
    PHASE_LOCATE: "Finding the first difference",
    PHASE_WIPE: "Wiping partition-table signatures",
}


class NotHybridImage(InputError):
    """The image has no partition table, so a PC will not boot it from a USB stick."""


def target_for_reading(path: str | os.PathLike[str]) -> Target:
    """Describe an existing target to read back (`livesmith verify`).

    Unlike `resolve_target` (the gate for writing), reading is harmless: a read-only stick,
    one whose partitions the desktop has mounted again, or a partition may be verified.
    """
    given = Path(path)
    try:
        st = os.stat(given)
    except FileNotFoundError as exc:
        raise DeviceNotFound("no such device or file", where=str(given)) from exc
    if stat.S_ISREG(st.st_mode):
        return Target(
            Path(os.path.abspath(given)), TargetKind.FILE, st.st_size, 512, True, "file", None
        )
    if not stat.S_ISBLK(st.st_mode):
        raise DeviceNotFound("is neither a block device nor a regular file", where=str(given))
    devno = (os.major(st.st_rdev), os.minor(st.st_rdev))
    sys_path = sys_path_of_devno(devno)
    if sys_path is None:
        raise DeviceNotFound(
            "the kernel does not know this block device (unplugged?)", where=str(given)
        )
    size = disk_size(sys_path)
    return Target(
        Path(os.path.realpath(given)),
        TargetKind.BLOCK,
        size,
        target_sector_size(sys_path),
        True,
        describe_disk(disk_identity_at(sys_path), size),
        devno,
    )


def is_block_target(target: Target) -> bool:
    return target.kind is TargetKind.BLOCK


class ImageStream(Protocol):
    """What a write reads the image from: `ImageReader`, or a share of a fan-out."""

    @property
    def consumed(self) -> int:
        """Bytes of the image file read so far (compressed bytes for compressed images)."""

    def readinto(self, view: memoryview, /) -> int: ...

    def __enter__(self) -> ImageStream: ...

    def __exit__(self, *exc: object) -> None: ...


# Opens the target; `write` False means for reading back. Returns a file descriptor.
Opener = Callable[[Target, bool], int]


@dataclass(frozen=True)
class WriteResult:
    image: str
    target: str
    image_size: int  # image bytes written (and verified, if `verified`)
    verified: bool
    digest: str  # XXH3-128 of the image bytes
    write_seconds: float
    verify_seconds: float = 0.0
    warnings: tuple[str, ...] = field(default_factory=tuple)
    mapped: int | None = None  # with a block map: the bytes written (and read back)
    persistence: str = ""  # what was added after the image, if anything
    skipped: tuple[str, ...] = field(default_factory=tuple)  # image bytes persistence changed

    def summary(self) -> str:
        size = f"{human_size(self.image_size)} ({self.image_size} bytes)"
        if self.mapped is not None:
            size += f", the {human_size(self.mapped)} its block map names"
        if self.verified:
            text = (
                f"written and verified: {size} to {self.target}, read back bypassing the "
                "page cache and identical to the image"
            )
        else:
            text = f"written, not verified: {size} to {self.target}"
        if self.persistence:
            text += f"\n{self.persistence}"
        return text + _skipped_text(self.skipped, self.verified)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        data["skipped"] = list(self.skipped)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WriteResult:
        return cls(
            **{
                **data,
                "warnings": tuple(data.get("warnings", ())),
                "skipped": tuple(data.get("skipped", ())),
            }
        )


def _skipped_text(skipped: tuple[str, ...], verified: bool) -> str:
    if not skipped or not verified:
        return ""
    return "\nnot compared (partition-table bytes the persistence partition changed): " + "; ".join(
        skipped
    )


@dataclass(frozen=True)
class VerifyResult:
    image: str
    target: str
    image_size: int
    seconds: float
    skipped: tuple[str, ...] = field(default_factory=tuple)
    persistence: str = ""
    mapped: int | None = None  # with a block map: the bytes it names (compared with the image)

    def summary(self) -> str:
        text = (
            f"verified: the first {human_size(self.image_size)} ({self.image_size} bytes) "
            f"of {self.target} are identical to the image (read bypassing the page cache)"
        )
        if self.mapped is not None:
            text += f" where its block map names data ({human_size(self.mapped)})"
        if self.skipped:
            text += ", except the partition-table bytes the persistence partition changed"
        if self.persistence:
            text += f"\n{self.persistence}"
        return text + _skipped_text(self.skipped, True)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = list(self.skipped)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerifyResult:
        return cls(**{**data, "skipped": tuple(data.get("skipped", ()))})


# --- opening ---------------------------------------------------------------------------------


def open_target(target: Target, write: bool) -> int:
    """Open the target directly (root or group `disk`); O_DIRECT where the target allows it.

    Without permission, a block device is opened through UDisks2 (polkit asks the user),
    when that module is available.
    """
    where = str(target.path)
    block = is_block_target(target)
    if block:
        flags = (os.O_RDWR | os.O_EXCL) if write else os.O_RDONLY
    else:
        flags = (os.O_WRONLY | os.O_CREAT) if write else os.O_RDONLY
    flags |= os.O_CLOEXEC
    try:
        try:
            return os.open(target.path, flags | os.O_DIRECT, 0o644)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            return os.open(target.path, flags, 0o644)  # no O_DIRECT on this file system
    except FileNotFoundError as exc:
        raise DeviceNotFound("no such device or file (unplugged?)", where=where) from exc
    except PermissionError as exc:
        if block and os.geteuid() != 0:
            return _open_through_udisks(target, write, exc)
        raise DevicePermissionDenied(
            "permission denied", where=where, hint="run as root, or join the group 'disk'"
        ) from exc
    except OSError as exc:
        if exc.errno == errno.EROFS:
            raise DeviceReadOnly("is read-only", where=where) from exc
        if exc.errno == errno.EBUSY:
            raise DeviceBusy(
                "is in use: mounted, or opened exclusively by another program",
                where=where,
                hint="unmount its partitions and try again",
            ) from exc
        if exc.errno == errno.ENOMEDIUM:
            raise DeviceNotFound("has no medium", where=where) from exc
        raise io_error(
            exc, doing="opening", offset=0, where=where, is_block=block, devno=target.devno
        ) from exc


def _open_through_udisks(target: Target, write: bool, cause: OSError) -> int:
    """Ask UDisks2 (and polkit) for the descriptor; partitions are unmounted first."""
    from app.usb import udisks

    where = str(target.path)
    try:
        if write:
            if target.devno is not None:
                udisks.unmount_all(target.devno)
            return udisks.open_for_write(target.path)
        return udisks.open_for_read(target.path)
    except udisks.UDisksUnavailable as exc:
        raise DevicePermissionDenied(
            f"permission denied, and UDisks2 cannot open it either ({exc.message})",
            where=where,
            hint="run as root, or join the group 'disk'",
        ) from cause


# --- the reader pipeline ---------------------------------------------------------------------

_END = object()


class _Pipeline:
    """Runs `produce(buffer) -> bytes filled` in a thread over a ring of aligned buffers.

    The consumer iterates (view, n) in order and must finish with a view before taking the
    next one (the buffer is refilled then). A short fill ends the stream.
    """

    def __init__(
        self, produce: Callable[[memoryview], int], block: int, depth: int = PIPELINE_DEPTH
    ) -> None:
        self._produce = produce
        self._block = block
        self._free: queue.Queue[Any] = queue.Queue()
        self._full: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        for _ in range(depth):
            self._free.put(aligned_buffer(block))
        self._thread = threading.Thread(target=self._run, name="livesmith-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                buf = self._free.get()
                if buf is None or self._stop.is_set():
                    return
                n = self._produce(memoryview(buf))
                self._full.put((buf, n))
                if n < self._block:
                    self._full.put(_END)
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            self._full.put(exc)

    def __iter__(self) -> Iterator[tuple[memoryview, int]]:
        while True:
            item = self._full.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            buf, n = item
            yield memoryview(buf), n
            self._free.put(buf)

    def close(self) -> None:
        self._stop.set()
        self._free.put(None)
        self._thread.join(timeout=10)

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- checks before writing -------------------------------------------------------------------


def read_image_head(source: ImageSource, length: int = HEAD) -> bytes:
    # Buffers are left to the garbage collector: an exception's traceback may still hold a
    # slice of them, and closing an mmap with live slices raises BufferError.
    view = memoryview(aligned_buffer(length))
    with source.open() as reader:
        n = reader.readinto(view)
    return bytes(view[:n])


def layout_warnings(source: ImageSource, *, force: bool) -> list[str]:
    """Refuse (unless `force`) an image a PC cannot boot from a stick: no MBR/partition table."""
    head = read_image_head(source)
    if head[510:512] == b"\x55\xaa":
        return []
    what = "an ISO 9660 image for CDs/DVDs" if head[32769:32774] == b"CD001" else "not a disk image"
    message = (
        f"{source.path.name} has no partition table (no MBR boot signature at byte "
        f"510): it is {what}, not a hybrid image, and will not boot from a USB stick"
    )
    if not force:
        raise NotHybridImage(message, where=str(source.path), hint="use --force to write it anyway")
    return [message]


def check_fits(source: ImageSource, capacity: int, where: str) -> None:
    need = source.size if source.size is not None else source.size_at_least
    if need > capacity:
        at_least = "" if source.size is not None else "at least "
        raise DeviceTooSmall(
            f"the image ({at_least}{human_size(need)}, {need} bytes) does not fit on the "
            f"device ({human_size(capacity)}, {capacity} bytes); nothing was written",
            where=where,
            image_size=need,
            device_size=capacity,
        )


# --- write -----------------------------------------------------------------------------------


def _checking_identity(opener: Opener, expect: BlockIdentity, consequence: str) -> Opener:
    """`opener`, refusing a descriptor whose device is not the disk `expect` describes."""

    def open_checked(target: Target, write: bool) -> int:
        fd = opener(target, write)
        try:
            check_descriptor(fd, expect, str(target.path), consequence=consequence)
        except BaseException:
            os.close(fd)
            raise
        return fd

    return open_checked


def write_image(
    source: ImageSource,
    target: Target,
    *,
    reporter: Reporter | None = None,
    verify: bool = True,
    force: bool = False,
    opener: Opener = open_target,
    expect: BlockIdentity | None = None,
    stream: Callable[[], ImageStream] | None = None,
    bmap: Bmap | None = None,
    persistence: Persistence | None = None,
) -> WriteResult:
    """Write `source` to `target`, then (unless `verify` is False) verify it.

    With `bmap` (bmaptool's block map of the image), only the mapped ranges are written and
    read back (the first 64 KiB are always written); the image is still read whole, and each
    range is checked against the map's checksum as it goes by.

    `stream` opens what the write reads the image from (default `source.open()`): a
    share of one read feeding several sticks (`app.usb.fanout`).

    With `persistence`, a partition with an ext4 file system labelled LIVESMITH-RW is
    added after the image (see `app.usb.persistence`); the read-back then skips the few
    partition-table bytes that changed, and names them.

    Raises DeviceTooSmall / DeviceReadOnly before writing anything; DeviceIOError (with the
    offset), DeviceUnplugged, VerificationError (with the offset) or Cancelled afterwards —
    in those cases the target was wiped (a file we created is removed) and the error says so.

    `expect` is the disk the user confirmed: every descriptor opened on the target (to
    write, read back, or wipe) must be that disk, else DeviceChanged and it is left alone.
    """
    reporter = reporter or NullReporter()
    where = str(target.path)
    block = is_block_target(target)
    warnings = layout_warnings(source, force=force)
    if bmap is not None:
        check_bmap_fits(bmap, source)
    existed = target.path.exists()
    first_opener = opener
    if expect is not None:
        if not block:
            raise gone_error(where, "not a block device now")
        # The path first, so that UDisks unmounts nothing of another disk: as it was read
        # when the target was resolved (the helper resolves it right before writing). Then
        # each descriptor, which closes the gap between that read and the open.
        if target.identity is not None:
            check_identity(target.identity, expect, where)
        else:  # a target made without resolving it
            check_path(target.path, expect)
        first_opener = _checking_identity(opener, expect, NOTHING_WRITTEN)
        opener = _checking_identity(opener, expect, LEFT_ALONE)
    fd = first_opener(target, True)
    written_ok = False
    skipped: list[ByteRange] = []
    try:
        capacity: int | None = None
        if block:
            if is_read_only(fd):
                raise DeviceReadOnly(
                    "is read-only; nothing was written",
                    where=where,
                    hint="check the write-protect switch of the card or stick",
                )
            capacity = device_size(fd)
            check_fits(source, capacity, where)
            if capacity > LARGE_DEVICE:
                warnings.append(
                    f"{where} is larger than {human_size(LARGE_DEVICE)} "
                    f"({human_size(capacity)}): make sure it is the right drive"
                )
            sector = logical_sector_size(fd)
        else:
            sector = max(512, target.logical_sector)
        original_size = device_size(fd) if not block else 0
        plan: PersistencePlan | None = None
        image_head = b""
        if persistence is not None:
            image_head = read_image_head(source)
            plan = _plan(
                source, image_head, capacity if block else original_size, persistence, where
            )
        for warning in warnings:
            reporter.log(Level.WARNING, warning)
        reporter.step(PHASE_WRITE)
        started = time.monotonic()
        try:
            written, digest = _copy(
                source,
                fd,
                capacity=capacity,
                sector=sector,
                reporter=reporter,
                target=target,
                stream=stream or source.open,
                bmap=bmap,
            )
            if not block and (written > original_size or not existed):
                os.ftruncate(fd, max(written, original_size))
                os.fsync(fd)
            reporter.log(
                Level.DEBUG,
                f"wrote {written} bytes, direct I/O {'on' if has_direct_io(fd) else 'off'}",
            )
            if plan is not None:
                reporter.step(PHASE_PERSISTENCE)
                skipped = add_persistence(fd, image_head, plan, reporter, where=where)
        except (LivesmithError, OSError, KeyboardInterrupt) as exc:
            raise _clean_up_after(exc, fd, target, existed=existed, reporter=reporter) from exc
        write_seconds = time.monotonic() - started
        reread_partitions(fd)
        written_ok = True
    finally:
        os.close(fd)
        if not written_ok and not existed and not block:
            _remove_quietly(target.path)  # a file we created and did not finish
    result = WriteResult(
        image=str(source.path),
        target=where,
        image_size=written,
        verified=False,
        digest=digest,
        write_seconds=write_seconds,
        warnings=tuple(warnings),
        mapped=bmap.mapped_bytes if bmap is not None else None,
        persistence=plan.describe() if plan is not None else "",
        skipped=tuple(str(r) for r in skipped),
    )
    if not verify:
        return result
    reporter.step(PHASE_VERIFY)
    started = time.monotonic()
    try:
        _verify_after_write(
            source,
            target,
            written,
            digest,
            sector=sector,
            reporter=reporter,
            opener=opener,
            bmap=bmap,
            skip=skipped,
            patches=[(r.start, image_head[r.start : r.end]) for r in skipped],
        )
    except Cancelled as exc:
        raise Cancelled(
            "verification cancelled: the image was written but NOT verified "
            "(run `livesmith verify` to check it)",
            where=where,
        ) from exc
    except VerificationError as exc:
        raise _clean_up_after_verify(exc, target, opener, reporter) from exc
    return WriteResult(
        **{
            **asdict(result),
            "verified": True,
            "verify_seconds": time.monotonic() - started,
            "warnings": tuple(warnings),
            "skipped": result.skipped,
        }
    )


def plan_for(
    source: ImageSource, capacity: int | None, persistence: Persistence, where: str
) -> PersistencePlan:
    """Where the persistence partition would go; PersistenceError if it cannot."""
    return _plan(source, read_image_head(source), capacity, persistence, where)


def _plan(
    source: ImageSource, head: bytes, capacity: int | None, persistence: Persistence, where: str
) -> PersistencePlan:
    if source.size is None:
        raise PersistenceError(
            f"the size of the {source.compression.value} image is not recorded in the file, "
            "and persistence needs it",
            where=str(source.path),
            hint="decompress the image first",
        )
    if not capacity:
        raise PersistenceError(
            "persistence on a file needs an existing disk image file larger than the image "
            "(say, made with truncate -s 2G)",
            where=where,
        )
    return plan_persistence(head, source.size, capacity, persistence.size, where=where)


def _copy(
    source: ImageSource,
    fd: int,
    *,
    capacity: int | None,
    sector: int,
    reporter: Reporter,
    target: Target,
    stream: Callable[[], ImageStream],
    bmap: Bmap | None = None,
) -> tuple[int, str]:
    where = str(target.path)
    block = is_block_target(target)
    hasher = xxhash.xxh3_128()
    checker = RangeChecker(bmap) if bmap is not None else None
    # Zeros now; the image's first 64 KiB at the end.
    head_view = memoryview(aligned_buffer(HEAD))
    offset = 0

    def fail(exc: OSError, doing: str, at: int) -> LivesmithError:
        return io_error(
            exc,
            doing=doing,
            offset=failing_offset(exc, at),
            where=where,
            is_block=block,
            devno=target.devno,
        )

    # Zero the head first: while we write, the old partition table must not be there either.
    head_len = HEAD if capacity is None else min(HEAD, capacity)
    try:
        pwrite_all(fd, head_view[:head_len], 0)
        os.fsync(fd)
    except OSError as exc:
        raise fail(exc, "writing", 0) from exc

    with stream() as reader:
        known = source.size is not None
        total = source.size if source.size is not None else source.file_size
        if not known:
            reporter.log(
                Level.INFO,
                f"the {source.compression.value} file does not record "
                "the image's size: progress counts compressed bytes read",
            )
        consumed = 0
        produced = 0

        def produce(view: memoryview) -> int:
            nonlocal consumed, produced
            n = reader.readinto(view)
            if bmap is None:
                hasher.update(view[:n])
            else:  # the digest covers what is written and read back: the mapped bytes
                for a, b in bmap.pieces(produced, n):
                    hasher.update(view[a - produced : b - produced])
            produced += n
            consumed = reader.consumed
            return n

        since_sync = 0
        first = True
        with _Pipeline(produce, BLOCK) as pipe:
            for view, n in pipe:
                check_cancelled(reporter)
                if n == 0:
                    break
                if capacity is not None and offset + n > capacity:
                    raise DeviceTooSmall(
                        f"the image is larger than the device ({human_size(capacity)}, "
                        f"{capacity} bytes): it goes on past the device's end",
                        where=where,
                        image_size=offset + n,
                        device_size=capacity,
                    )
                padded = round_up(n, sector)
                if padded != n:
                    view[n:padded] = bytes(padded - n)  # zero padding beyond the image
                start = 0
                if first:
                    head_len = min(padded, HEAD)
                    head_view[:head_len] = view[:head_len]
                    start = head_len
                    first = False
                if checker is not None:
                    checker.feed(offset, view[:n])
                for a, b in _to_write(bmap, offset + start, offset + n):
                    a_end = min(round_up(b, sector), offset + padded)
                    try:
                        pwrite_all(fd, view[a - offset : a_end - offset], a)
                    except OSError as exc:
                        raise fail(exc, "writing", a) from exc
                offset += n
                since_sync += padded
                if since_sync >= FSYNC_EVERY:
                    _fsync(fd, fail, offset)
                    since_sync = 0
                reporter.progress(offset if known else consumed, total)
    if offset == 0:
        raise InputError("the image is empty", where=str(source.path))
    if checker is not None:
        checker.finish(offset)
    check_cancelled(reporter)
    _fsync(fd, fail, offset)
    try:
        pwrite_all(fd, head_view[:head_len], 0)
    except OSError as exc:
        raise fail(exc, "writing", 0) from exc
    _fsync(fd, fail, offset)
    if not known:
        reporter.progress(total, total)
    return offset, hasher.hexdigest()


def _unmapped(bmap: Bmap) -> list[ByteRange]:
    """What a write with `bmap` left alone: the image's bytes past the first 64 KiB that
    the map does not name."""
    gaps: list[ByteRange] = []
    at = HEAD
    for mapped in bmap.ranges:
        if mapped.start > at:
            gaps.append(ByteRange(at, mapped.start, "not in the block map"))
        at = max(at, mapped.end)
    if at < bmap.image_size:
        gaps.append(ByteRange(at, bmap.image_size, "not in the block map"))
    return gaps


def _to_write(bmap: Bmap | None, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The parts of image bytes [start, end) to write: all of them, or the mapped ones."""
    if bmap is None:
        if end > start:
            yield start, end
        return
    yield from bmap.pieces(start, end - start)


def check_bmap_fits(bmap: Bmap, source: ImageSource) -> None:
    """The block map must describe an image of this size (when the size is known)."""
    if source.size is not None and source.size != bmap.image_size:
        raise InputError(
            f"the block map is for an image of {bmap.image_size} bytes, but the image has "
            f"{source.size}",
            where=str(bmap.path),
            hint="the .bmap file belongs to another image; pass --no-bmap to write it whole",
        )


def _fsync(fd: int, fail: Callable[[OSError, str, int], LivesmithError], offset: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        # The kernel does not say which block failed; the last flushed range ends here.
        raise fail(exc, "flushing the data written before it", offset) from exc


def _clean_up_after(
    exc: BaseException, fd: int, target: Target, *, existed: bool, reporter: Reporter
) -> BaseException:
    """Wipe (or remove) a half-written target; return the error to raise, saying so."""
    where = str(target.path)
    if isinstance(exc, KeyboardInterrupt):
        exc = Cancelled()
    if isinstance(exc, OSError):
        exc = io_error(
            exc,
            doing="writing",
            offset=failing_offset(exc, 0),
            where=where,
            is_block=is_block_target(target),
            devno=target.devno,
        )
    if isinstance(exc, DeviceUnplugged):
        return exc  # nothing left to wipe
    if not is_block_target(target) and not existed:
        note = "the partly written file was removed"
    else:
        reporter.step(PHASE_WIPE)
        try:
            ranges = wipe_signatures(fd, size=device_size(fd) if is_block_target(target) else None)
            reporter.log(Level.INFO, "zeroed " + ", ".join(f"bytes {a}-{b - 1}" for a, b in ranges))
            note = WIPED_MESSAGE
        except OSError as wipe_exc:
            note = (
                f"wiping its partition-table signatures failed too ({wipe_exc.strerror}): "
                "it may look half-bootable"
            )
    if isinstance(exc, Cancelled):
        return Cancelled(f"cancelled; {note}", where=where)
    if isinstance(exc, LivesmithError):
        exc.hint = f"{exc.hint}; {note}" if exc.hint else note
    return exc


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


# --- verify ----------------------------------------------------------------------------------


def _open_for_reading(target: Target, opener: Opener) -> int:
    fd = opener(target, False)
    if not has_direct_io(fd):
        drop_cache(fd)  # no O_DIRECT here: at least make the kernel forget what it cached
    return fd


def hash_device(
    fd: int,
    length: int,
    *,
    sector: int,
    reporter: Reporter,
    where: str,
    is_block: bool,
    devno: tuple[int, int] | None = None,
    ranges: list[tuple[int, int]] | None = None,
    patches: Sequence[tuple[int, bytes]] = (),
) -> str:
    """XXH3-128 of the first `length` bytes of `fd`, read in large O_DIRECT blocks; with
    `ranges`, of those byte ranges only (sorted, apart), read the same way."""
    if ranges is not None:
        return _hash_ranges(
            fd,
            ranges,
            length,
            sector=sector,
            reporter=reporter,
            where=where,
            is_block=is_block,
            devno=devno,
            patches=patches,
        )
    hasher = xxhash.xxh3_128()
    offset = 0
    to_read = round_up(length, sector)

    def produce(view: memoryview) -> int:
        nonlocal offset
        want = min(len(view), to_read - offset)
        if want <= 0:
            return 0
        n = _read_back(fd, view[:want], offset, where, is_block, devno)
        _patch(view[:n], offset, patches)
        offset += n
        return n  # short of the block: the stream ends

    hashed = 0
    with _Pipeline(produce, VERIFY_BLOCK) as pipe:
        for view, n in pipe:
            check_cancelled(reporter)
            take = min(n, length - hashed)
            if take > 0:
                hasher.update(view[:take])
                hashed += take
            reporter.progress(hashed, length)
            if hashed >= length:
                break
    if hashed < length:
        raise VerificationError(
            f"the device ended after {hashed} bytes, before the image's {length}",
            where=where,
            offset=hashed,
        )
    return hasher.hexdigest()


def _patch(view: memoryview, at: int, patches: Sequence[tuple[int, bytes]]) -> None:
    """Put each (offset, bytes) of `patches` into `view`, which holds the device from `at`."""
    for offset, data in patches:
        a, b = max(offset, at), min(offset + len(data), at + len(view))
        if a < b:
            view[a - at : b - at] = data[a - offset : b - offset]


def _read_back(
    fd: int,
    view: memoryview,
    offset: int,
    where: str,
    is_block: bool,
    devno: tuple[int, int] | None,
) -> int:
    """`pread_full` for verification: an OSError becomes the typed error naming the byte."""
    try:
        return pread_full(fd, view, offset)
    except OSError as exc:
        raise io_error(
            exc,
            doing="reading back",
            offset=failing_offset(exc, offset),
            where=where,
            is_block=is_block,
            devno=devno,
        ) from exc


def _hash_ranges(
    fd: int,
    ranges: list[tuple[int, int]],
    length: int,
    *,
    sector: int,
    reporter: Reporter,
    where: str,
    is_block: bool,
    devno: tuple[int, int] | None,
    patches: Sequence[tuple[int, bytes]] = (),
) -> str:
    hasher = xxhash.xxh3_128()
    buf = memoryview(aligned_buffer(VERIFY_BLOCK))
    total = sum(b - a for a, b in ranges)
    done = 0
    for a, b in ranges:
        at = a // sector * sector  # O_DIRECT reads start on a sector
        while at < b:
            check_cancelled(reporter)
            want = min(VERIFY_BLOCK, round_up(b, sector) - at)
            got = _read_back(fd, buf[:want], at, where, is_block, devno)
            _patch(buf[:got], at, patches)
            lo, hi = max(a, at), min(b, at + got)
            if hi <= lo:
                raise VerificationError(
                    f"the device ended after {at + got} bytes, before the image's {length}",
                    where=where,
                    offset=at + got,
                )
            hasher.update(buf[lo - at : hi - at])
            done += hi - lo
            reporter.progress(done, total)
            at = hi
    return hasher.hexdigest()


def _verify_after_write(
    source: ImageSource,
    target: Target,
    length: int,
    digest: str,
    *,
    sector: int,
    reporter: Reporter,
    opener: Opener,
    bmap: Bmap | None = None,
    skip: Sequence[ByteRange] = (),
    patches: Sequence[tuple[int, bytes]] = (),
) -> None:
    """Hash the device (with a block map: its mapped ranges) and compare with the digest
    taken while writing. Bytes persistence changed (`skip`) are hashed as the image's own
    bytes (`patches`), so they are not compared; on a mismatch the image is read again to
    name the first differing byte, outside `skip`."""
    where = str(target.path)
    fd = _open_for_reading(target, opener)
    try:
        actual = hash_device(
            fd,
            length,
            sector=sector,
            reporter=reporter,
            where=where,
            is_block=is_block_target(target),
            devno=target.devno,
            ranges=list(bmap.pieces(0, length)) if bmap is not None else None,
            patches=patches,
        )
        if actual == digest:
            return
        reporter.step(PHASE_LOCATE)
        offset, _ = first_difference(
            source,
            fd,
            sector=sector,
            reporter=reporter,
            where=where,
            is_block=is_block_target(target),
            devno=target.devno,
            skip=skip,
        )
    finally:
        os.close(fd)
    if offset is None:
        raise VerificationError(
            "the device returned different data on two read-backs: it is unreliable", where=where
        )
    raise _mismatch(offset, where)


def _mismatch(offset: int, where: str) -> VerificationError:
    return VerificationError(
        f"verification failed: byte {offset} differs from the image",
        where=where,
        offset=offset,
        hint="the stick may be failing or fake; try another one",
    )


def _first_differing_byte(a: memoryview, b: memoryview) -> int:
    """Index of the first byte where `a` and `b` differ (they are known to differ)."""
    step = 4096
    for start in range(0, len(a), step):
        if a[start : start + step].tobytes() != b[start : start + step].tobytes():
            x = a[start : start + step].tobytes()
            y = b[start : start + step].tobytes()
            return start + next(i for i in range(len(x)) if i >= len(y) or x[i] != y[i])
    return len(a)


def first_difference(
    source: ImageSource,
    fd: int,
    *,
    sector: int,
    reporter: Reporter,
    where: str,
    is_block: bool,
    devno: tuple[int, int] | None = None,
    skip: Sequence[ByteRange] = (),
) -> tuple[int | None, int]:
    """Compare the device with the source block by block; bytes in `skip` are not compared.

    Returns (the first differing offset or None, image bytes compared). A device that ends
    before the image does differs at the offset of its end.
    """
    device_view = memoryview(aligned_buffer(BLOCK))
    total = source.size if source.size is not None else source.file_size
    offset = 0
    with source.open() as reader:
        with _Pipeline(reader.readinto, BLOCK) as pipe:
            for view, n in pipe:
                check_cancelled(reporter)
                if n == 0:
                    break
                want = round_up(n, sector)
                got = _read_back(fd, device_view[:want], offset, where, is_block, devno)
                same = min(got, n)
                for masked in skip:
                    a, b = max(masked.start - offset, 0), min(masked.end - offset, same)
                    if a < b:
                        view[a:b] = device_view[a:b]
                if xxhash.xxh3_128_digest(view[:same]) != xxhash.xxh3_128_digest(
                    device_view[:same]
                ):
                    at = offset + _first_differing_byte(view[:same], device_view[:same])
                    return at, at
                if got < n:
                    return offset + got, offset + got
                offset += n
                reporter.progress(offset if source.size is not None else reader.consumed, total)
    return None, offset


def _clean_up_after_verify(
    exc: VerificationError, target: Target, opener: Opener, reporter: Reporter
) -> VerificationError:
    """A stick that fails verification is wiped, so nobody boots a corrupt system from it."""
    if not is_block_target(target):
        return exc
    reporter.step(PHASE_WIPE)
    try:
        fd = opener(target, True)
        try:
            wipe_signatures(fd)
        finally:
            os.close(fd)
        note = WIPED_MESSAGE
    except (OSError, LivesmithError) as wipe_exc:
        note = f"wiping its partition-table signatures failed ({wipe_exc})"
    exc.hint = f"{exc.hint}; {note}" if exc.hint else note
    return exc


def verify_written(
    source: ImageSource,
    target: Target,
    *,
    reporter: Reporter | None = None,
    opener: Opener = open_target,
    bmap: Bmap | None = None,
) -> VerifyResult:
    """Check an already written target against the image (`livesmith verify`).

    Reads the image and the device side by side (the device with O_DIRECT) and raises
    VerificationError naming the first differing byte. With `bmap`, only the first 64 KiB
    and the mapped ranges are compared: the writer left the rest of the stick alone.
    """
    reporter = reporter or NullReporter()
    where = str(target.path)
    fd = _open_for_reading(target, opener)
    started = time.monotonic()
    try:
        block = is_block_target(target)
        sector = logical_sector_size(fd) if block else 512
        capacity = device_size(fd)
        if source.size is not None and source.size > capacity:
            raise VerificationError(
                f"the device ({capacity} bytes) is smaller than the image ({source.size} "
                "bytes): it cannot hold it",
                where=where,
                offset=capacity,
            )
        skip: list[ByteRange] = []
        plan = None
        if source.size is not None:
            image_head = read_image_head(source)
            plan = find_on_device(image_head, source.size, read_head(fd), capacity)
            if plan is not None:
                skip = changed_ranges(image_head, plan)
                reporter.log(Level.INFO, f"found {plan.describe()}")
        unmapped = _unmapped(bmap) if bmap is not None else []
        reporter.step(PHASE_VERIFY)
        offset, length = first_difference(
            source,
            fd,
            sector=sector,
            reporter=reporter,
            where=where,
            is_block=block,
            devno=target.devno,
            skip=sorted(skip + unmapped, key=lambda r: r.start),
        )
    finally:
        os.close(fd)
    if offset is not None:
        raise _mismatch(offset, where)
    return VerifyResult(
        image=str(source.path),
        target=where,
        image_size=length,
        seconds=time.monotonic() - started,
        skipped=tuple(str(r) for r in skip),
        persistence=plan.describe() if plan is not None else "",
        mapped=bmap.mapped_bytes if bmap is not None else None,
    )

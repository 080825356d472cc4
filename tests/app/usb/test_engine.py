"""The write + verify engine on real loop devices and files."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from app.errors import Cancelled, VerificationError
from app.reporter import RecordingReporter
from app.usb.blockio import has_direct_io, io_error, pwrite_all
from app.usb.engine import (
    NotHybridImage,
    Target,
    open_target,
    verify_written,
    write_image,
)
from app.usb.errors import (
    DeviceIOError,
    DeviceReadOnly,
    DeviceTooSmall,
    DeviceUnplugged,
)
from app.usb.source import open_image
from app.usb.target import TargetKind, resolve_target
from tests.app.usb.writer_support import (
    CancelAt,
    MiB,
    ProgressByStep,
    cmp_prefix,
    compress,
    device_bytes,
    loop_device,
    make_image,
    raw_block_target,
    run,
    sha256_of_device,
    sparse_file,
    tmpfs,
)
from tests.conftest import needs_root

pytestmark = [needs_root, pytest.mark.root]


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "live.iso"
    make_image(path, 24 * MiB + 1536)  # a tail that is not a whole 4 KiB page
    return path


def test_write_and_verify_gives_an_identical_device(tmp_path: Path, image: Path) -> None:
    backing = sparse_file(tmp_path / "stick.img", 32 * MiB)
    with loop_device(backing) as node:
        reporter = RecordingReporter()
        result = write_image(open_image(image), resolve_target(node), reporter=reporter)
        assert result.verified and result.image_size == image.stat().st_size
        assert reporter.steps == ["write", "verify"]
        assert reporter.last_progress == (result.image_size, result.image_size)
        assert "written and verified" in result.summary()
        cmp_prefix(image, node, result.image_size)
        # The padding of the last sector is zeros, and nothing after it was touched.
        end = device_bytes(node, 1024, result.image_size)
        assert end == bytes(1024)


@pytest.mark.parametrize("kind", ["xz", "zst", "gz"])
def test_compressed_image_is_written_decompressed(tmp_path: Path, kind: str) -> None:
    image = tmp_path / "live.iso"
    make_image(image, 24 * MiB + 1536, compressible=True)
    packed = compress(image, kind)
    backing = sparse_file(tmp_path / "stick.img", 32 * MiB)
    with loop_device(backing) as node:
        reporter = ProgressByStep()
        result = write_image(open_image(packed), resolve_target(node), reporter=reporter)
        assert result.verified and result.image_size == image.stat().st_size
        cmp_prefix(image, node, result.image_size)
        # .gz does not record the size: progress is in compressed bytes, and says so.
        done, total = reporter.by_step["write"]
        assert done == total == (packed.stat().st_size if kind == "gz" else result.image_size)
        counts_compressed = any("counts compressed bytes" in m for _, m in reporter.logs)
        assert counts_compressed == (kind == "gz")
        assert reporter.by_step["verify"] == (result.image_size, result.image_size)


def test_read_only_device_is_refused_before_writing(tmp_path: Path, image: Path) -> None:
    backing = sparse_file(tmp_path / "stick.img", 32 * MiB)
    with loop_device(backing, read_only=True) as node:
        before = sha256_of_device(node)
        with pytest.raises(DeviceReadOnly):
            resolve_target(node)  # the gate says so ...
        with pytest.raises(DeviceReadOnly, match="nothing was written"):
            # ... and so does the engine itself, from BLKROGET on the opened device.
            write_image(open_image(image), raw_block_target(node))
        assert sha256_of_device(node) == before


def test_image_larger_than_the_device_is_refused_untouched(tmp_path: Path, image: Path) -> None:
    backing = tmp_path / "small.img"
    backing.write_bytes(os.urandom(16 * MiB))
    with loop_device(backing) as node:
        before = sha256_of_device(node)
        with pytest.raises(DeviceTooSmall) as err:
            write_image(open_image(image), resolve_target(node))
        assert err.value.image_size == image.stat().st_size
        assert err.value.device_size == 16 * MiB
        assert "does not fit" in str(err.value) and "nothing was written" in str(err.value)
        assert sha256_of_device(node) == before


def test_gzip_larger_than_the_device_stops_at_its_end_and_wipes(tmp_path: Path) -> None:
    # .gz records the size only mod 2^32; two members make the lower bound (one member's
    # size) fit while the real image does not.
    image = tmp_path / "live.iso"
    make_image(image, 24 * MiB + 1536, compressible=True)
    packed = compress(image, "gz")
    double = tmp_path / "double.iso.gz"
    double.write_bytes(packed.read_bytes() * 2)
    backing = sparse_file(tmp_path / "stick.img", 32 * MiB)
    with loop_device(backing) as node:
        with pytest.raises(DeviceTooSmall) as err:
            write_image(open_image(double), resolve_target(node))
        assert "wiped" in str(err.value)
        assert device_bytes(node, 64 * 1024) == bytes(64 * 1024)


def test_dying_stick_gives_an_io_error_with_offset(tmp_path: Path, image: Path) -> None:
    # A 32 MiB loop device over a sparse file on an 8 MiB tmpfs: writes beyond ~8 MiB fail,
    # like a counterfeit stick that claims more than it holds.
    with tmpfs(tmp_path / "small-fs", "8M") as fs:
        backing = sparse_file(fs / "stick.img", 32 * MiB)
        with loop_device(backing, direct_io=False) as node:
            reporter = RecordingReporter()
            with pytest.raises(DeviceIOError) as err:
                write_image(open_image(image), resolve_target(node), reporter=reporter)
            offset = err.value.offset
            assert offset is not None and 4 * MiB <= offset <= 9 * MiB
            assert f"byte {offset}" in str(err.value)
            assert "verify" not in reporter.steps  # never got near "success"


def test_cancel_stops_mid_write_and_leaves_no_partition_table(tmp_path: Path) -> None:
    image = tmp_path / "big.iso"
    make_image(image, 64 * MiB)  # random bytes: anything written shows on the zeroed stick
    backing = sparse_file(tmp_path / "stick.img", 96 * MiB)
    with loop_device(backing) as node:
        # The stick had a GPT before (primary at the start, backup at the end).
        run("sfdisk", "-q", "--no-reread", "--no-tell-kernel", node, input="label: gpt\n,,L\n")
        assert "label: gpt" in run("sfdisk", "-d", node)
        reporter = CancelAt(8 * MiB)
        with pytest.raises(Cancelled) as err:
            write_image(open_image(image), resolve_target(node), reporter=reporter)
        stopped = time.monotonic()
        assert reporter.cancelled_at is not None
        assert stopped - reporter.cancelled_at < 30  # a guard against a hang, not a goal
        assert "the stick was wiped so it does not look half-bootable" in str(err.value)
        assert "wipe" in reporter.steps
        # It stopped within a block or two of the cancel: the rest of the image never came.
        assert 8 * MiB <= reporter.written < 16 * MiB
        assert device_bytes(node, 48 * MiB, 16 * MiB) == bytes(48 * MiB)
        head = device_bytes(node, 64 * 1024)
        assert head == bytes(64 * 1024) and head[510:512] == b"\0\0"
        assert device_bytes(node, MiB, 95 * MiB) == bytes(MiB)  # backup GPT gone too
        assert subprocess.run(["sfdisk", "-d", node], capture_output=True).returncode != 0
        blkid = subprocess.run(["blkid", "-p", node], capture_output=True)
        assert blkid.returncode == 2, blkid.stdout  # 2: nothing found


def test_corrupt_read_back_is_caught_with_its_offset_and_wiped(tmp_path: Path, image: Path) -> None:
    backing = sparse_file(tmp_path / "stick.img", 32 * MiB)
    bad = 13 * MiB + 777
    original = image.read_bytes()[bad]

    def corrupting_opener(target: Target, write: bool) -> int:
        if not write:  # between the write and the read-back, the medium "loses" a byte
            with open(backing, "r+b") as fh:
                fh.seek(bad)
                fh.write(bytes([original ^ 0xFF]))
        return open_target(target, write)

    with loop_device(backing) as node:
        reporter = RecordingReporter()
        with pytest.raises(VerificationError) as err:
            write_image(
                open_image(image), resolve_target(node), reporter=reporter, opener=corrupting_opener
            )
        assert err.value.offset == bad
        assert f"byte {bad} differs" in str(err.value)
        assert "wiped" in str(err.value)
        assert reporter.steps == ["write", "verify", "locate", "wipe"]
        assert device_bytes(node, 512)[510:512] == b"\0\0"


def test_stale_page_cache_does_not_fool_verify(tmp_path: Path, image: Path) -> None:
    # Without direct I/O, the loop device answers from its own page cache while anyone holds
    # it open; we hold it, fill the cache, then corrupt the medium (the backing file) below.
    backing = sparse_file(tmp_path / "stick.img", 32 * MiB)
    data = image.read_bytes()
    bad = 9 * MiB + 4097
    with loop_device(backing, direct_io=False) as node:
        target = resolve_target(node)
        write_image(open_image(image), target)
        held = os.open(node, os.O_RDONLY)
        try:
            assert os.pread(held, len(data), 0) == data  # the cache now holds the image
            with open(backing, "r+b") as fh:
                fh.seek(bad)
                fh.write(bytes([data[bad] ^ 0x5A]))
                fh.flush()
                os.fsync(fh.fileno())
            assert backing.read_bytes()[bad] != data[bad]  # the medium is corrupt ...
            assert os.pread(held, 1, bad) == data[bad : bad + 1]  # ... the cache is stale:
            with open(node, "rb") as again:  # even a new buffered reader
                again.seek(bad)  # sees the old, good byte
                assert again.read(1) == data[bad : bad + 1]
            with pytest.raises(VerificationError) as err:
                verify_written(open_image(image), target)
            assert err.value.offset == bad
            assert f"byte {bad} differs" in str(err.value)
        finally:
            os.close(held)


def test_verify_only_passes_on_a_good_stick(tmp_path: Path) -> None:
    image = tmp_path / "live.iso"
    make_image(image, 24 * MiB + 1536, compressible=True)
    packed = compress(image, "zst")
    backing = sparse_file(tmp_path / "stick.img", 32 * MiB)
    with loop_device(backing) as node:
        write_image(open_image(image), resolve_target(node), verify=False)
        result = verify_written(open_image(packed), resolve_target(node))
        assert result.image_size == image.stat().st_size
        assert "verified" in result.summary()


def test_no_verify_says_written_not_verified(tmp_path: Path, image: Path) -> None:
    backing = sparse_file(tmp_path / "stick.img", 32 * MiB)
    with loop_device(backing) as node:
        reporter = RecordingReporter()
        result = write_image(
            open_image(image), resolve_target(node), reporter=reporter, verify=False
        )
        assert not result.verified and reporter.steps == ["write"]
        assert result.summary().startswith("written, not verified")
        cmp_prefix(image, node, result.image_size)


def test_large_device_warning(tmp_path: Path, image: Path) -> None:
    backing = sparse_file(tmp_path / "huge.img", 70 * 1000**3)  # sparse: costs nothing
    with loop_device(backing) as node:
        reporter = RecordingReporter()
        result = write_image(open_image(image), resolve_target(node), reporter=reporter)
        assert result.verified
        assert any("larger than 64.0 GB" in w for w in result.warnings)
        assert any("larger than 64.0 GB" in message for _, message in reporter.logs)


# --- file targets ----------------------------------------------------------------------------


def test_file_target_new_and_existing(tmp_path: Path, image: Path) -> None:
    vm = tmp_path / "vm-disk.raw"
    result = write_image(open_image(image), resolve_target(vm, image=image))
    assert result.verified
    assert vm.read_bytes() == image.read_bytes()
    # An existing, larger VM disk keeps its size (like dd conv=notrunc).
    disk = sparse_file(tmp_path / "disk.raw", 40 * MiB)
    write_image(open_image(image), resolve_target(disk, image=image))
    assert disk.stat().st_size == 40 * MiB
    assert disk.read_bytes()[: image.stat().st_size] == image.read_bytes()


def test_file_target_on_tmpfs_without_space(tmp_path: Path, image: Path) -> None:
    with tmpfs(tmp_path / "fs", "8M") as fs:
        out = fs / "vm.raw"
        with pytest.raises(DeviceIOError) as err:
            write_image(open_image(image), resolve_target(out, image=image))
        assert "no space left on the file system" in str(err.value)
        assert err.value.offset is not None and err.value.offset <= 8 * MiB
        assert not out.exists()  # the partial file we created is gone
        assert "removed" in str(err.value)


def test_non_hybrid_iso_is_refused_unless_forced(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "hello.txt").write_text("hello\n")
    iso = tmp_path / "cd-only.iso"
    run("xorriso", "-as", "mkisofs", "-quiet", "-V", "CDONLY", "-o", str(iso), str(tree))
    out = tmp_path / "out.raw"
    with pytest.raises(NotHybridImage) as err:
        write_image(open_image(iso), Target(out, TargetKind.FILE, 0, 512, False, "file", None))
    assert "ISO 9660 image for CDs/DVDs" in str(err.value) and "--force" in str(err.value)
    assert not out.exists()
    result = write_image(
        open_image(iso), Target(out, TargetKind.FILE, 0, 512, False, "file", None), force=True
    )
    assert result.verified and any("will not boot from a USB stick" in w for w in result.warnings)


# --- error words -----------------------------------------------------------------------------


def test_vanished_device_is_reported_as_unplugged() -> None:
    gone = io_error(
        OSError(errno.ENODEV, "No such device"),
        doing="writing",
        offset=4096,
        where="/dev/sdz",
        is_block=True,
    )
    assert isinstance(gone, DeviceUnplugged) and "unplugged" in str(gone)
    # EIO while the sysfs node has disappeared: the stick was pulled, not broken.
    pulled = io_error(
        OSError(errno.EIO, "I/O error"),
        doing="writing",
        offset=4096,
        where="/dev/sdz",
        is_block=True,
        devno=(259, 999999),
    )
    assert isinstance(pulled, DeviceUnplugged)
    broken = io_error(
        OSError(errno.EIO, "I/O error"),
        doing="writing",
        offset=123456789,
        where="/dev/sdz",
        is_block=True,
        devno=None,
    )
    assert isinstance(broken, DeviceIOError) and broken.offset == 123456789
    assert "I/O error at byte 123456789 while writing" in str(broken)


def test_file_system_without_direct_io_falls_back(tmp_path: Path, image: Path) -> None:
    # ramfs refuses O_DIRECT (EINVAL at open): the writer goes on with buffered I/O.
    where = tmp_path / "ramfs"
    where.mkdir()
    run("mount", "-t", "ramfs", "ramfs", str(where))
    try:
        with pytest.raises(OSError) as refused:
            os.close(os.open(where / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT))
        assert refused.value.errno == errno.EINVAL  # the premise of this test
        out = where / "vm.raw"
        result = write_image(open_image(image), resolve_target(out, image=image))
        assert result.verified and out.read_bytes() == image.read_bytes()
    finally:
        run("umount", str(where))


def test_unaligned_direct_write_falls_back_to_buffered(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT)
    try:
        data = memoryview(bytearray(b"x" * 1000))[1:]  # neither aligned nor a sector long
        pwrite_all(fd, data, 3)
        assert not has_direct_io(fd)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"\0" * 3 + b"x" * 999

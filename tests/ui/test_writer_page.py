"""The "Write to USB" page, driven like a user (pytest-qt, offscreen).

Real images, real loop devices (`losetup --direct-io=on`, always detached), the real writer
helper process, the real hotplug monitor (kernel uevents: a loop device appearing, and a
`remove` event written to its sysfs `uevent` file, which is how the kernel announces an
unplugged disk).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import QMimeData, QPoint, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QTextDocumentFragment
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QLabel,
    QMessageBox,
    QPushButton,
    QWidget,
)

from app.usb.drives import Drive, list_drives
from tests.app.usb.test_target import mounted
from tests.app.usb.test_target import partitioned_loop as target_partitioned_loop
from tests.app.usb.writer_support import (
    MiB,
    cmp_prefix,
    compress,
    device_bytes,
    loop_device,
    make_image,
    replugging_loop,
)
from tests.conftest import needs_root
from ui.drive_model import DriveListModel
from ui.tasks import Job
from ui.writer_page import SETUP, WriterPage, drive_lines
from ui.writer_texts import OutcomeKind, drive_words

WRITE_TIMEOUT = 120_000  # ms; the writes here take a second or two


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def page(qtbot: Any) -> Iterator[WriterPage]:
    model = DriveListModel(include_excluded=True, debounce=0.1)
    widget = WriterPage(model=model)
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    widget.show()
    yield widget
    widget.shutdown()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "live.iso"
    make_image(path, 16 * MiB + 512)  # an MBR (hybrid), an odd tail
    return path


def big_sparse_image(path: Path, size: int = 512 * MiB) -> Path:
    """A large hybrid image that costs little to make: random ends, zeros between."""
    make_image(path, 2 * MiB)
    with open(path, "r+b") as fh:
        fh.truncate(size)
        fh.seek(size - MiB)
        fh.write(os.urandom(MiB))
    return path


def sparse_backing(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


@contextlib.contextmanager
def partitioned_loop(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A loop device with a DOS partition table and an ext4 first partition."""
    with target_partitioned_loop(tmp_path) as (node, p1, _p2):
        yield node, p1


def choose_image(qtbot: Any, page: WriterPage, path: Path) -> None:
    """Type the path into the image field and press Enter; wait for facts and checksum."""
    page.image_edit.clear()
    with qtbot.waitSignal(page.imageChecked, timeout=30_000):
        qtbot.keyClicks(page.image_edit, str(path))
        qtbot.keyClick(page.image_edit, Qt.Key.Key_Return)


def name_target(qtbot: Any, page: WriterPage, path: str | Path) -> None:
    """Type a device or file into the target field and press Enter; wait for the check."""
    page.target_edit.clear()
    qtbot.keyClicks(page.target_edit, str(path))
    qtbot.keyClick(page.target_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.tasks.get(Job.TARGET) is None, timeout=10_000)


def press_write(qtbot: Any, page: WriterPage) -> QMessageBox:
    """Press Write (keyboard) and return the confirmation box once it is open."""
    assert page.write_button.isEnabled(), page.missing()
    qtbot.keyClick(page.write_button, Qt.Key.Key_Space)
    qtbot.waitUntil(
        lambda: page.confirm_box is not None and page.confirm_box.isVisible(), timeout=10_000
    )
    assert page.confirm_box is not None
    return page.confirm_box


def accept(box: QMessageBox, name: str) -> None:
    button = box.findChild(QPushButton, name)
    assert button is not None, f"no button {name} in {box.text()}"
    button.click()


def write_confirmed(qtbot: Any, page: WriterPage) -> str:
    """Press Write, accept the confirmation, wait for the result; returns what was asked."""
    box = press_write(qtbot, page)
    asked = box.text() + "\n" + box.informativeText()
    with qtbot.waitSignal(page.writeFinished, timeout=WRITE_TIMEOUT):
        accept(box, "confirmErase")
    return asked


def plain(label: QLabel) -> str:
    """What a rich-text label shows, as plain text."""
    return QTextDocumentFragment.fromHtml(label.text()).toPlainText()


def error_text(page: WriterPage) -> str:
    box = page.error_box
    assert box is not None, "no error was shown"
    return box.text()


# --- whole writes ----------------------------------------------------------------------------


@needs_root
@pytest.mark.root
def test_write_and_verify_onto_a_loop_device(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path
) -> None:
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{digest}  live.iso\n")
    choose_image(qtbot, page, image)
    assert "16.8 MB" in page.facts_label.text()
    assert "Hybrid image" in page.facts_label.text()
    assert "SHA256SUMS: good" in page.checksum_label.text()
    assert "not signed" in page.checksum_label.text()
    with loop_device(sparse_backing(tmp_path / "stick.img", 32 * MiB)) as node:
        name_target(qtbot, page, node)
        assert page.target_path() == node
        assert node in page.target_label.text()

        confirm = write_confirmed(qtbot, page)
        assert confirm.startswith("Everything on") and node in confirm
        assert "will be erased" in confirm and "live.iso (16.8 MB)" in confirm

        assert page.outcome is not None and page.outcome.kind is OutcomeKind.VERIFIED
        assert page.outcome.title == "Written and verified: 16.8 MB"
        assert "Written and verified" in page.result_title.text()
        details = page.result_details.text()
        assert f"{image.stat().st_size} bytes" in details and "XXH3-128" in details
        assert "SHA256SUMS: good" in details
        assert page.stack.currentIndex() != SETUP and page.again_button.isEnabled()
        cmp_prefix(image, node, image.stat().st_size)
        # Eject is offered for the written stick; a loop device cannot be powered off, and
        # that is said (as a note: the stick was synced), never as a failed write.
        assert page.eject_button.isVisible() and page.eject_button.isEnabled()
        qtbot.mouseClick(page.eject_button, Qt.MouseButton.LeftButton)
        ejected = page.result_view.ejected
        qtbot.waitUntil(lambda: ejected.text() not in ("", "Ejecting…"), timeout=30_000)
        assert ejected.text().startswith("not ejected:"), ejected.text()
        assert "it was synced, so it is safe to unplug" in ejected.text()
        assert page.outcome.kind is OutcomeKind.VERIFIED


@needs_root
@pytest.mark.root
def test_the_gui_thread_keeps_running_through_a_long_write(
    qtbot: Any, page: WriterPage, tmp_path: Path
) -> None:
    # Long enough (512 MiB, a second or more) that a GUI thread waiting for the helper
    # would miss many ticks of a 10 ms heartbeat; the latency goal itself is a benchmark's.
    image = big_sparse_image(tmp_path / "big.iso")
    choose_image(qtbot, page, image)
    with loop_device(sparse_backing(tmp_path / "stick.img", 600 * MiB)) as node:
        name_target(qtbot, page, node)
        qtbot.mouseClick(page.verify_check, Qt.MouseButton.LeftButton)  # the write is enough
        ticks: list[float] = []
        timer = QTimer()
        timer.setTimerType(Qt.TimerType.PreciseTimer)
        timer.timeout.connect(lambda: ticks.append(time.monotonic()))
        span: dict[str, float] = {}
        page.phaseChanged.connect(lambda phase: span.setdefault(phase, time.monotonic()))
        page.writeFinished.connect(lambda _kind: span.setdefault("end", time.monotonic()))
        timer.start(10)
        write_confirmed(qtbot, page)
        timer.stop()
        assert page.outcome is not None and page.outcome.kind is OutcomeKind.NOT_VERIFIED
        size = image.stat().st_size
        with open(image, "rb") as fh:
            fh.seek(size - MiB)
            assert device_bytes(node, MiB, size - MiB) == fh.read()  # written to the end
    during = [t for t in ticks if span["write"] < t < span["end"]]
    assert len(during) >= 10, (
        f"{len(during)} ticks in a write of "
        f"{span['end'] - span['write']:.2f} s: the GUI thread waited"
    )
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    # A guard only: a loaded machine may stall any thread for a while.
    assert max(gaps) < 3.0, f"GUI blocked for {max(gaps):.2f} s"


def test_write_onto_an_image_file_by_keyboard(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path
) -> None:
    out = tmp_path / "vm" / "disk.raw"
    out.parent.mkdir()
    choose_image(qtbot, page, image)
    # No checksum file beside it: said so, never shown as good.
    assert "No checksum file found" in page.checksum_label.text()
    assert "good" not in page.checksum_label.text()
    assert not page.write_button.isEnabled()
    assert page.missing() == "Choose a drive, or name a device or file."
    name_target(qtbot, page, out)
    assert "new image file" in page.target_label.text()

    # Escape on the confirmation writes nothing.
    box = press_write(qtbot, page)
    assert box.defaultButton() is not box.findChild(QPushButton, "confirmErase")
    qtbot.keyClick(box, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: page.confirm_box is None)
    assert not out.exists() and page.stack.currentIndex() == SETUP

    confirm = write_confirmed(qtbot, page)
    assert confirm.splitlines()[0] == f"A new image file {out} will be created."
    assert page.outcome is not None and page.outcome.kind is OutcomeKind.VERIFIED
    assert out.read_bytes() == image.read_bytes()
    assert not page.eject_button.isVisible()  # a file: nothing to eject

    # Back to the form: the image stays, the target must be chosen again.
    qtbot.keyClick(page.again_button, Qt.Key.Key_Space)
    assert page.stack.currentIndex() == SETUP
    assert page.image() == image and page.target_path() is None


@needs_root
@pytest.mark.root
def test_keep_changes_adds_a_persistence_partition(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path
) -> None:
    disk = sparse_backing(tmp_path / "disk.raw", 128 * MiB)
    choose_image(qtbot, page, image)
    name_target(qtbot, page, disk)
    assert page.missing() is None and not page.persist_size.isEnabled()
    qtbot.keyClick(page.persist_check, Qt.Key.Key_Space)
    assert page.persist_check.isChecked() and page.persist_size.isEnabled()
    page.persist_size.setText("2 gigs")
    assert page.missing() == ("Persistence size '2 gigs' is not a size like 512M or 1G, or 'rest'.")
    assert not page.write_button.isEnabled()
    page.persist_size.setText("64M")
    assert page.write_button.isEnabled(), page.missing()
    write_confirmed(qtbot, page)
    assert page.outcome is not None and page.outcome.kind is OutcomeKind.VERIFIED
    assert "MBR partition 2, ext4 labelled LIVESMITH-RW, 64 MiB" in page.outcome.details
    assert "bytes 462-477 (MBR partition entry 2)" in page.outcome.details
    data = disk.read_bytes()
    size = image.stat().st_size
    start = -(-size // MiB) * MiB
    # MBR partition 2: type 0x83, from the first MiB after the image, 64 MiB long.
    assert data[466] == 0x83
    assert struct.unpack_from("<II", data, 470) == (start // 512, 64 * MiB // 512)
    probe = subprocess.run(
        ["blkid", "-p", "-O", str(start), "-o", "export", str(disk)],
        capture_output=True,
        text=True,
    )
    assert "LABEL=LIVESMITH-RW" in probe.stdout and "TYPE=ext4" in probe.stdout
    assert data[:462] == image.read_bytes()[:462] and data[478:size] == image.read_bytes()[478:]


def test_a_non_hybrid_image_needs_the_explicit_override(
    qtbot: Any, page: WriterPage, tmp_path: Path
) -> None:
    iso = tmp_path / "cd-only.iso"
    data = bytearray(os.urandom(4 * MiB))
    data[510:512] = b"\0\0"
    data[32769:32774] = b"CD001"
    iso.write_bytes(bytes(data))
    out = tmp_path / "vm.raw"
    choose_image(qtbot, page, iso)
    name_target(qtbot, page, out)
    assert page.force_check.isVisible()
    assert "will not boot from a USB stick" in page.facts_label.text()
    assert "Hybrid image" not in page.facts_label.text()
    assert not page.write_button.isEnabled()
    assert "Write it anyway" in page.ready_label.text()

    page.force_check.setChecked(True)
    assert page.write_button.isEnabled()
    write_confirmed(qtbot, page)
    assert page.outcome is not None and page.outcome.kind is OutcomeKind.VERIFIED, page.outcome
    assert "no partition table" in page.result_details.text()  # the warning, kept
    assert out.read_bytes() == bytes(data)


def test_a_checksum_mismatch_is_shown_and_blocks_writing(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path
) -> None:
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  live.iso\n")
    choose_image(qtbot, page, image)
    assert "MISMATCH" in page.checksum_label.text()
    assert "does NOT match" in error_text(page)
    name_target(qtbot, page, tmp_path / "out.raw")
    assert page.target_path() is not None
    assert not page.write_button.isEnabled()
    assert "do not write this image" in page.ready_label.text()
    qtbot.keyClick(page.write_button, Qt.Key.Key_Space)
    assert page.confirm_box is None and not (tmp_path / "out.raw").exists()


def test_an_unusable_image_is_reported(qtbot: Any, page: WriterPage, tmp_path: Path) -> None:
    empty = tmp_path / "empty.iso"
    empty.write_bytes(b"")
    choose_image(qtbot, page, empty)
    assert "the image is empty" in error_text(page)
    assert "Cannot use this image" in page.facts_label.text()
    assert page.missing() == "Choose a usable image."


@needs_root
@pytest.mark.root
def test_cancel_mid_write_wipes_the_stick(qtbot: Any, page: WriterPage, tmp_path: Path) -> None:
    image = big_sparse_image(tmp_path / "big.iso")
    choose_image(qtbot, page, image)
    backing = sparse_backing(tmp_path / "stick.img", 600 * MiB)
    with open(backing, "r+b") as fh, open(image, "rb") as old:
        fh.write(old.read(MiB))  # an old partition table that must not survive
    with loop_device(backing) as node:
        name_target(qtbot, page, node)
        asked: list[float] = []

        def cancel_at_write(phase: str) -> None:
            if phase == "write" and not asked:
                page.ask_cancel()
                assert page.cancel_box is not None
                assert "wiped" in page.cancel_box.text()
                asked.append(time.monotonic())
                accept(page.cancel_box, "confirmStop")

        page.phaseChanged.connect(cancel_at_write)
        write_confirmed(qtbot, page)
        ended = time.monotonic()
        assert asked, "the write never started"
        outcome = page.outcome
        assert outcome is not None and outcome.kind is OutcomeKind.CANCELLED, outcome
        assert outcome.title == ("Cancelled; the stick was wiped so it does not look half-bootable")
        assert "wiped" in page.result_title.text()
        assert ended - asked[0] < 30, "cancel hangs"  # a guard, not a goal
        assert device_bytes(node, 64 * 1024) == bytes(64 * 1024)
        # It stopped where it was: the image's random last MiB never reached the stick.
        size = image.stat().st_size
        assert device_bytes(node, MiB, size - MiB) == bytes(MiB)
        blkid = subprocess.run(["blkid", "-p", node], capture_output=True, text=True)
        assert "PTTYPE" not in blkid.stdout


def test_without_verification_the_result_says_not_verified(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path
) -> None:
    choose_image(qtbot, page, image)
    name_target(qtbot, page, tmp_path / "out.raw")
    qtbot.mouseClick(page.verify_check, Qt.MouseButton.LeftButton)
    assert not page.verify_check.isChecked()
    asked = write_confirmed(qtbot, page)
    assert "It will not be verified afterwards." in asked
    assert page.outcome is not None and page.outcome.kind is OutcomeKind.NOT_VERIFIED
    assert page.outcome.title == "Written, not verified: 16.8 MB"
    assert "Verified" not in page.result_title.text()
    assert (tmp_path / "out.raw").read_bytes() == image.read_bytes()


@needs_root
@pytest.mark.root
def test_cancel_during_verification_is_never_a_success(
    qtbot: Any, page: WriterPage, tmp_path: Path
) -> None:
    image = big_sparse_image(tmp_path / "big.iso")
    choose_image(qtbot, page, image)
    with loop_device(sparse_backing(tmp_path / "stick.img", 600 * MiB)) as node:
        name_target(qtbot, page, node)

        def cancel_at_verify(phase: str) -> None:
            if phase == "verify":
                assert "Step 2 of 2" in page.phase_label.text()
                qtbot.keyClick(page.cancel_button, Qt.Key.Key_Escape)  # Escape asks too
                assert page.cancel_box is not None
                assert "will not be verified" in page.cancel_box.text()
                accept(page.cancel_box, "confirmStop")

        page.phaseChanged.connect(cancel_at_verify)
        write_confirmed(qtbot, page)
        outcome = page.outcome
        assert outcome is not None and outcome.kind is OutcomeKind.NOT_VERIFIED, outcome
        assert outcome.title == "Written, not verified (verification cancelled)"
        assert "NOT verified" in page.result_details.text()
        # Written it was: the whole image is on the stick, nothing wiped.
        cmp_prefix(image, node, image.stat().st_size)


@needs_root
@pytest.mark.root
def test_a_read_only_loop_gives_the_read_only_error(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path
) -> None:
    choose_image(qtbot, page, image)
    with loop_device(sparse_backing(tmp_path / "ro.img", 32 * MiB), read_only=True) as node:
        name_target(qtbot, page, node)
        assert "is read-only" in error_text(page)
        assert "Cannot write to" in page.target_label.text()
        assert page.target_path() is None and not page.write_button.isEnabled()


@needs_root
@pytest.mark.root
def test_an_image_larger_than_the_device_is_refused(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path
) -> None:
    choose_image(qtbot, page, image)
    backing = sparse_backing(tmp_path / "small.img", 8 * MiB)
    with loop_device(backing) as node:
        name_target(qtbot, page, node)
        assert "does not fit" in error_text(page)
        assert page.target_path() is None
    assert backing.read_bytes() == bytes(8 * MiB)


@needs_root
@pytest.mark.root
def test_a_stick_turning_read_only_mid_write_is_not_called_untouched(
    qtbot: Any, page: WriterPage, tmp_path: Path
) -> None:
    image = big_sparse_image(tmp_path / "big.iso")
    choose_image(qtbot, page, image)
    backing = sparse_backing(tmp_path / "stick.img", 600 * MiB)
    with open(backing, "r+b") as fh, open(image, "rb") as old:
        fh.write(old.read(MiB))  # an old partition table, which the write zeroes first
    with loop_device(backing) as node:
        name_target(qtbot, page, node)
        locked: list[int] = []

        def lock_once_data_is_on_it(done: int, _total: int) -> None:
            # The write-protect switch flipped mid-write: the kernel refuses with EPERM.
            if done > 0 and not locked and page.machine.sticks[0].phases[-1:] == ["write"]:
                locked.append(done)
                subprocess.run(["blockdev", "--setro", node], check=True)

        page.writeStarted.connect(
            lambda: page.run.task(0).progressChanged.connect(lock_once_data_is_on_it)
        )  # type: ignore[union-attr]
        try:
            write_confirmed(qtbot, page)
        finally:
            subprocess.run(["blockdev", "--setrw", node], check=True)
        assert locked, "the write never reported progress"
        outcome = page.outcome
        assert outcome is not None and outcome.kind is OutcomeKind.FAILED, outcome
        assert "nothing was written" not in outcome.title.lower()
        assert outcome.title == (
            "The drive refused writing (read-only) after writing had "
            "begun: the drive does not hold the image"
        )
        assert "writing had begun" in plain(page.result_title)
        assert "read-only" in error_text(page)
        # What the title says is so: the old partition table is gone, the image's first
        # block is there (the wipe was refused too).
        assert device_bytes(node, 512)[510:512] == b"\0\0"
        assert device_bytes(node, MiB, 64 * 1024) == image.read_bytes()[64 * 1024 : MiB + 64 * 1024]


@needs_root
@pytest.mark.root
def test_an_image_found_too_big_mid_write_is_not_called_untouched(
    qtbot: Any, page: WriterPage, tmp_path: Path
) -> None:
    # .gz records the size only mod 2^32: two members pass the check before writing (the
    # lower bound fits) and the write runs past the device's end.
    image = tmp_path / "live.iso"
    make_image(image, 24 * MiB + 1536, compressible=True)
    packed = compress(image, "gz")
    double = tmp_path / "double.iso.gz"
    double.write_bytes(packed.read_bytes() * 2)
    choose_image(qtbot, page, double)
    with loop_device(sparse_backing(tmp_path / "stick.img", 32 * MiB)) as node:
        name_target(qtbot, page, node)
        write_confirmed(qtbot, page)
        outcome = page.outcome
        assert outcome is not None and outcome.kind is OutcomeKind.FAILED, outcome
        assert "write" in page.machine.sticks[0].phases
        assert outcome.title == (
            "The image did not fit on the drive after writing had "
            "begun: the drive does not hold the image"
        )
        assert "nothing was written" not in outcome.details.lower()
        assert "wiped" in outcome.details
        assert device_bytes(node, 64 * 1024) == bytes(64 * 1024)


@needs_root
@pytest.mark.root
def test_an_unplugged_stick_is_reported_at_once(
    qtbot: Any, page: WriterPage, tmp_path: Path
) -> None:
    image = big_sparse_image(tmp_path / "big.iso")
    choose_image(qtbot, page, image)
    with loop_device(sparse_backing(tmp_path / "stick.img", 600 * MiB)) as node:
        name_target(qtbot, page, node)
        qtbot.waitUntil(lambda: page.model.row_of(node) >= 0, timeout=10_000)
        seen: list[float] = []

        def unplug_at_write(phase: str) -> None:
            if phase == "write" and not seen:
                seen.append(time.monotonic())
                # What the kernel sends when a disk goes away.
                Path(f"/sys/block/{Path(node).name}/uevent").write_text("remove")

        page.phaseChanged.connect(unplug_at_write)
        box = press_write(qtbot, page)
        accept(box, "confirmErase")
        qtbot.waitUntil(lambda: page.outcome is not None, timeout=WRITE_TIMEOUT)
        assert page.outcome is not None and page.outcome.kind is OutcomeKind.UNPLUGGED
        assert page.busy(), "reported only after the helper ended, not at once"
        assert "unplugged" in page.result_title.text()
        assert "unplugged" in error_text(page)
        assert not page.again_button.isEnabled()
        with qtbot.waitSignal(page.writeFinished, timeout=WRITE_TIMEOUT) as finished:
            pass
        assert finished.args == ["unplugged"] and page.again_button.isEnabled()


@needs_root
@pytest.mark.root
def test_mounted_partitions_are_named_and_unmounted_first(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path
) -> None:
    choose_image(qtbot, page, image)
    with partitioned_loop(tmp_path) as (node, p1), mounted(p1, tmp_path / "mnt") as mnt:
        name_target(qtbot, page, node)
        assert page.target_path() == node
        asked = write_confirmed(qtbot, page)
        assert f"Its mounted partitions are unmounted first: {p1} on {mnt}." in asked
        assert page.outcome is not None and page.outcome.kind is OutcomeKind.VERIFIED, page.outcome
        assert not os.path.ismount(mnt)
        cmp_prefix(image, node, image.stat().st_size)


# --- the drive list --------------------------------------------------------------------------


@needs_root
@pytest.mark.root
def test_loop_devices_are_listed_only_with_show_all(
    qtbot: Any, page: WriterPage, tmp_path: Path
) -> None:
    with loop_device(sparse_backing(tmp_path / "listed.img", 32 * MiB)) as node:
        qtbot.waitUntil(lambda: page.model.row_of(node) >= 0, timeout=10_000)
        shown = [
            page.drives.index(r, 0).data(DriveListModel.DevnodeRole)
            for r in range(page.drives.rowCount())
        ]
        assert node not in shown
        qtbot.mouseClick(page.show_all_check, Qt.MouseButton.LeftButton)
        assert page.show_all_check.isChecked()
        rows = {
            page.drives.index(r, 0).data(DriveListModel.DevnodeRole): r
            for r in range(page.drives.rowCount())
        }
        assert node in rows
        index = page.drives.index(rows[node], 0)
        assert not page.drives.flags(index) & Qt.ItemFlag.ItemIsEnabled
        tooltip = index.data(Qt.ItemDataRole.ToolTipRole)
        assert tooltip.startswith("Not offered: loop device (name it explicitly to use it)")
        page.drive_view.setCurrentIndex(index)
        assert page.selected_drive() is None or page.target_path() is None
    qtbot.waitUntil(
        lambda: (
            page.model.row_of(node) < 0 or page.model.drive_at(page.model.row_of(node)).size == 0
        ),
        timeout=10_000,
    )  # type: ignore[union-attr]


@needs_root
@pytest.mark.root
def test_a_drive_chosen_from_the_list_is_named_and_written(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path
) -> None:
    choose_image(qtbot, page, image)
    with loop_device(sparse_backing(tmp_path / "stick.img", 32 * MiB)) as node:
        # Feed the list ourselves (loop devices are never offered by the monitor): the real
        # description of the loop device, offered under a stick's name.
        page.model.stop()
        real = next(d for d in list_drives(include_excluded=True) if d.devnode == node)
        page.model.set_drives(
            [dataclasses.replace(real, vendor="Test", model="Loop Stick", excluded_reason=None)]
        )
        page.drive_view.setFocus()
        qtbot.keyClick(page.drive_view, Qt.Key.Key_Down)
        assert page.selected_drive() is not None and page.target_path() == node
        assert "Selected: Test Loop Stick (33.6 MB, " + node in plain(page.target_label)
        asked = write_confirmed(qtbot, page)
        assert asked.startswith(f"Everything on Test Loop Stick (33.6 MB, {node}) will be erased.")
        assert page.outcome is not None and page.outcome.kind is OutcomeKind.VERIFIED
        cmp_prefix(image, node, image.stat().st_size)
        # The list paints drives on two lines.
        assert page.drive_view.sizeHintForRow(0) > 2 * page.fontMetrics().height()
        assert drive_lines(page.model.drives()[0]) == (
            "Test Loop Stick \u2014 33.6 MB",
            f"{node} \u00b7 {real.bus.upper()}" if real.bus else node,
        )


def fake_drive(name: str, **changes: Any) -> Drive:
    """A drive row as the monitor reports it (list behaviour only; nothing is written)."""
    base = Drive(
        f"/dev/{name}",
        f"/sys/block/{name}",
        (8, 16),
        "Vendor",
        name.upper(),
        "S1",
        16 * 1000**3,
        "usb",
        True,
        False,
    )
    return dataclasses.replace(base, **changes)


def test_a_chosen_drive_that_leaves_is_not_replaced_by_its_neighbour(
    qtbot: Any, page: WriterPage
) -> None:
    page.model.stop()  # this test feeds the list itself
    page.model.set_drives([fake_drive("sdb"), fake_drive("sdc"), fake_drive("sdd")])
    page.drive_view.setCurrentIndex(page.drives.index(1, 0))
    assert page.target_path() == "/dev/sdc"
    page.model.set_drives([fake_drive("sdb"), fake_drive("sdd")])  # sdc unplugged
    assert page.selected_drive() is None and page.target_path() is None
    assert "Vendor SDC (16.0 GB, /dev/sdc) went away" in plain(page.target_label)

    # A re-sorted list (a reset) keeps the same disk chosen; one that becomes excluded
    # is dropped.
    page.drive_view.setCurrentIndex(page.drives.index(1, 0))
    assert page.target_path() == "/dev/sdd"
    page.model.set_drives([fake_drive("sdd"), fake_drive("sdb")])
    assert page.target_path() == "/dev/sdd"
    page.model.set_drives([fake_drive("sdb"), fake_drive("sdd", excluded_reason="read-only")])
    assert page.target_path() is None
    assert "no longer offered" in plain(page.target_label)


@pytest.mark.parametrize("show_all", [False, True])
@pytest.mark.parametrize("chosen", [0, 1])
def test_a_chosen_drive_no_longer_offered_in_place_is_not_replaced_by_its_neighbour(
    qtbot: Any, page: WriterPage, chosen: int, show_all: bool
) -> None:
    page.model.stop()  # this test feeds the list itself
    page.show_all_check.setChecked(show_all)
    drives = [fake_drive("sdb"), fake_drive("sdc")]
    page.model.set_drives(drives)
    page.drive_view.setCurrentIndex(page.drives.index(chosen, 0))
    assert page.target_path() == drives[chosen].devnode
    changes: list[str] = []
    page.model.rowsRemoved.connect(lambda *_: changes.append("removed"))
    page.model.modelReset.connect(lambda: changes.append("reset"))
    # The model updates the row in place (the order stays); only the filter drops it.
    locked = dataclasses.replace(
        drives[chosen], read_only=True, excluded_reason="read-only (check the write-protect switch)"
    )
    page.model.set_drives([locked if row == chosen else d for row, d in enumerate(drives)])
    assert changes == []
    assert page.drives.rowCount() == (2 if show_all else 1)
    assert page.selected_drive() is None and page.target_path() is None
    assert not page.write_button.isEnabled()
    text = plain(page.target_label)
    assert text == (
        f"\u26a0 {drive_words(drives[chosen])} is no longer offered; choose it "
        "again if you mean it."
    )
    assert "Selected" not in text


# --- a chosen drive that goes away while the user is asked ------------------------------------


def filled_backing(path: Path, size: int = 32 * MiB) -> tuple[Path, bytes]:
    """A backing file with random contents, so any write to it shows."""
    data = os.urandom(size)
    path.write_bytes(data)
    return path, data


def offer_as_stick(page: WriterPage, node: str) -> Drive:
    """Offer the real loop device `node` in the list under a stick's name (loop devices are
    never offered by the monitor), and choose it by keyboard."""
    page.model.stop()
    QTest.qWait(200)  # lists the monitor sent before it stopped arrive now, not later
    real = next(d for d in list_drives(include_excluded=True) if d.devnode == node)
    stick = dataclasses.replace(real, vendor="Test", model="Loop Stick", excluded_reason=None)
    page.model.set_drives([stick])
    page.drive_view.setFocus()
    QTest.keyClick(page.drive_view, Qt.Key.Key_Down)
    assert page.selected_drive() == stick and page.target_path() == node
    return stick


def no_write_started(qtbot: Any, page: WriterPage, started: list[bool]) -> None:
    qtbot.wait(300)  # a write would have started by now
    assert not started and not page.busy() and page.run.task(0) is None
    assert page.stack.currentIndex() == SETUP and page.outcome is None


@needs_root
@pytest.mark.root
def test_unplugging_the_named_drive_withdraws_the_question(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path
) -> None:
    choose_image(qtbot, page, image)
    chosen, _ = filled_backing(tmp_path / "chosen.img")
    other, other_data = filled_backing(tmp_path / "other.img")
    started: list[bool] = []
    page.writeStarted.connect(lambda: started.append(True))
    with replugging_loop(chosen) as slot:
        qtbot.waitUntil(lambda: page.model.row_of(slot.node) >= 0, timeout=10_000)
        name_target(qtbot, page, slot.node)
        box = press_write(qtbot, page)
        assert slot.node in box.text()
        # Pulled out, and another disk plugged in that gets its name (the hotplug monitor
        # sees the loop device's size drop to 0, as for a card leaving its reader).
        slot.replug(other)
        qtbot.waitUntil(lambda: page.confirm_box is None, timeout=10_000)
        assert not shiboken6.isValid(box) or not box.isVisible()
        text = plain(page.target_label)
        assert f"{slot.node} was unplugged before you confirmed: nothing was written" in text
        assert page.target_path() is None and not page.write_button.isEnabled()
        no_write_started(qtbot, page, started)
    assert other.read_bytes() == other_data


@needs_root
@pytest.mark.root
def test_a_listed_drive_that_leaves_withdraws_the_question(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path
) -> None:
    choose_image(qtbot, page, image)
    backing, data = filled_backing(tmp_path / "stick.img")
    started: list[bool] = []
    page.writeStarted.connect(lambda: started.append(True))
    with loop_device(backing) as node:
        for leave in ("removed at once", "gone from the list", "no longer offered"):
            stick = offer_as_stick(page, node)
            box = press_write(qtbot, page)
            assert box.text().startswith("Everything on Test Loop Stick")
            if leave == "removed at once":
                page.model.driveRemoved.emit(node)  # what the monitor reports first
            elif leave == "gone from the list":
                page.model.set_drives([])  # the list without it, a moment later
            else:
                page.model.set_drives(
                    [
                        dataclasses.replace(
                            stick, excluded_reason="read-only (check the write-protect switch)"
                        )
                    ]
                )
            assert page.confirm_box is None, leave
            assert page.selected_drive() is None and page.target_path() is None, leave
            text = plain(page.target_label)
            assert "before you confirmed: nothing was written" in text, (leave, text)
            no_write_started(qtbot, page, started)
    assert backing.read_bytes() == data


@needs_root
@pytest.mark.root
def test_a_listed_drive_that_is_now_another_disk_is_not_asked_about(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path
) -> None:
    choose_image(qtbot, page, image)
    chosen, _ = filled_backing(tmp_path / "chosen.img")
    other, other_data = filled_backing(tmp_path / "other.img")
    with replugging_loop(chosen) as slot:
        stick = offer_as_stick(page, slot.node)
        assert stick.diskseq is not None
        # Re-plugged before the list caught up: the row still shows the disk chosen.
        slot.replug(other)
        qtbot.keyClick(page.write_button, Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: page.tasks.get(Job.PREFLIGHT) is None, timeout=10_000)
        assert page.confirm_box is None
        text = plain(page.target_label)
        assert f"{slot.node} is now another drive than Test Loop Stick" in text
        assert "nothing was written" in text
    assert other.read_bytes() == other_data


def test_the_empty_list_says_what_to_do(qtbot: Any, page: WriterPage) -> None:
    page.model.set_drives([])
    assert "No USB stick or SD card found" in page.drive_hint.text()
    assert "name it below" in page.drive_hint.text()


# --- drag and drop, keyboard, accessibility --------------------------------------------------


def test_dropping_a_file_on_the_page_chooses_it(qtbot: Any, page: WriterPage, image: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(image))])
    where = QPoint(20, 20)
    enter = QDragEnterEvent(
        where,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(page, enter)
    assert enter.isAccepted()
    with qtbot.waitSignal(page.imageChecked, timeout=30_000):
        drop = QDropEvent(
            where,
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(page, drop)
    assert page.image() == image and page.image_edit.text() == str(image)

    two = QMimeData()
    two.setUrls([QUrl.fromLocalFile(str(image)), QUrl.fromLocalFile(str(image.parent))])
    refused = QDragEnterEvent(
        where,
        Qt.DropAction.CopyAction,
        two,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    refused.ignore()
    QApplication.sendEvent(page, refused)
    assert not refused.isAccepted()


def test_prefilled_image_and_set_image(qtbot: Any, image: Path) -> None:
    widget = WriterPage(image=image, model=DriveListModel(include_excluded=True))
    qtbot.addWidget(widget)
    qtbot.waitUntil(
        lambda: widget.facts is not None and widget.checksum is not None, timeout=30_000
    )
    assert widget.image() == image and widget.facts is not None
    assert widget.facts.source.size == image.stat().st_size
    assert widget.set_image(None) and widget.image() is None
    assert widget.missing() == "Choose an image."
    widget.shutdown()


def test_every_control_has_an_accessible_name_and_a_keyboard_path(page: WriterPage) -> None:
    controls = [
        w
        for w in page.findChildren(QWidget)
        if w.focusPolicy() & Qt.FocusPolicy.TabFocus and w.isVisibleTo(page)
    ]
    assert controls
    unnamed = [type(w).__name__ + ":" + w.objectName() for w in controls if not w.accessibleName()]
    assert not unnamed
    # The tab chain goes from the image field through the drive list to the Write button.
    chain = [page.image_edit]
    while len(chain) < 40 and chain[-1] is not page.write_button:
        chain.append(chain[-1].nextInFocusChain())
    assert page.write_button in chain
    for widget in (page.drive_view, page.target_edit, page.show_all_check):
        assert widget in chain
    # Every field has a label with a mnemonic pointing at it.
    buddies = {label.buddy() for label in page.findChildren(QLabel) if label.buddy()}
    assert {page.image_edit, page.drive_view, page.target_edit} <= buddies
    # No two shortcuts (Alt+letter) on the form clash.
    page.force_check.setVisible(True)
    texts = [
        w.text()
        for w in page.stack.widget(SETUP).findChildren(QWidget)
        if isinstance(w, QLabel | QAbstractButton)
        and "&" in w.text()
        and not w.text().startswith("<")
    ]
    keys = [t[t.index("&") + 1].lower() for t in texts]
    assert len(keys) >= 9 and len(keys) == len(set(keys)), texts


# --- signatures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signer() -> Iterator[Any]:
    from tests.app.usb.test_checksums import GpgKey, require_gpg

    require_gpg()
    key = GpgKey("Signer")
    yield key
    key.close()


@pytest.mark.parametrize(
    ("case", "shown", "blocked"),
    [
        ("good", "Signature (SHA256SUMS.gpg): good, by Signer <signer@example.org>", False),
        ("unknown", "Signature (SHA256SUMS.gpg): unknown key", False),
        ("bad", "Signature (SHA256SUMS.gpg): BAD", True),
    ],
)
def test_the_signature_verdict_is_shown(
    qtbot: Any,
    page: WriterPage,
    image: Path,
    tmp_path: Path,
    signer: Any,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    shown: str,
    blocked: bool,
) -> None:
    trusted = tmp_path / "gnupg"
    trusted.mkdir()
    if case != "unknown":
        shutil.copy(signer.keyring, trusted / "trustedkeys.gpg")
    monkeypatch.setenv("GNUPGHOME", str(trusted))  # the user's own gpgv keyring
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{hashlib.sha256(image.read_bytes()).hexdigest()}  live.iso\n")
    signer.detach_sign(sums)
    if case == "bad":
        sums.write_text(sums.read_text() + f"{'1' * 64}  evil.iso\n")
    choose_image(qtbot, page, image)
    text = plain(page.checksum_label)
    assert "SHA256SUMS: good (SHA-256 of live.iso matches)" in text
    assert shown in text
    name_target(qtbot, page, tmp_path / "out.raw")
    assert page.write_button.isEnabled() is not blocked
    if blocked:
        assert "BAD signature" in error_text(page)

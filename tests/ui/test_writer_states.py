"""The writer page follows one state machine: every transition, driven like a user.

Real images, real loop devices, the real writer helper, the real hotplug monitor (a
`remove` uevent written to a loop device's sysfs file is what the kernel sends for an
unplugged disk), a real fake-capacity stick (a loop device over a FUSE file that wraps
around) and a real dying stick (a loop device whose backing file sits on a too-small tmpfs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import Qt

from app.usb.drives import Drive, list_drives
from app.usb.writer_state import StickEnd, WriterState
from tests.app.usb.capacity_support import GiB, fake_stick
from tests.app.usb.writer_support import (
    MiB,
    cmp_prefix,
    device_bytes,
    loop_device,
    sparse_file,
    tmpfs,
)
from tests.conftest import needs_root
from tests.ui.test_writer_page import (
    WRITE_TIMEOUT,
    accept,
    big_sparse_image,
    choose_image,
    error_text,
    image,
    name_target,
    page,
    plain,
    press_write,
    write_confirmed,
)
from ui.drive_model import DriveListModel
from ui.question import Question
from ui.writer_page import PROGRESS, RESULT, SETUP, WriterPage
from ui.writer_texts import OutcomeKind

__all__ = ["image", "page"]  # fixtures


@pytest.fixture
def states(page: WriterPage) -> list[str]:
    seen: list[str] = []
    page.stateChanged.connect(lambda state: seen.append(state.value))
    return seen


def test_confirm_declined_then_written_to_a_file(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path, states: list[str]
) -> None:
    out = tmp_path / "disk.raw"
    choose_image(qtbot, page, image)
    name_target(qtbot, page, out)
    assert page.state is WriterState.CHOOSING and states == []
    box = press_write(qtbot, page)
    assert states == ["checking", "confirming"] and isinstance(page.confirm, Question)
    assert page.missing() == "Waiting for your answer…" and not page.write_button.isEnabled()
    qtbot.keyClick(box, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: page.confirm is None)
    assert states[-1] == "choosing" and not out.exists()

    states.clear()
    phases: list[tuple[str, int]] = []
    page.phaseChanged.connect(lambda p: phases.append((p, page.stack.currentIndex())))
    write_confirmed(qtbot, page)
    assert states == ["checking", "confirming", "writing", "verifying", "done"]
    assert phases == [("write", PROGRESS), ("verify", PROGRESS)]
    assert page.outcome is not None and page.outcome.kind is OutcomeKind.VERIFIED
    assert page.stack.currentIndex() == RESULT and not page.busy()
    assert page.machine.sticks[0].end is StickEnd.WRITTEN
    assert out.read_bytes() == image.read_bytes()
    qtbot.keyClick(page.again_button, Qt.Key.Key_Space)
    assert states[-1] == "choosing" and page.stack.currentIndex() == SETUP
    assert page.machine.sticks == [] and page.target_path() is None


def test_a_target_gone_while_checked_goes_back_to_choosing(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path, states: list[str]
) -> None:
    folder = tmp_path / "vm"
    folder.mkdir()
    choose_image(qtbot, page, image)
    name_target(qtbot, page, folder / "disk.raw")
    folder.rmdir()  # its folder went away before Write was pressed
    qtbot.keyClick(page.write_button, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: page.state is WriterState.CHOOSING, timeout=10_000)
    assert states == ["checking", "choosing"]
    assert page.confirm is None and page.error_box is not None
    assert str(folder) in plain(page.target_label) + error_text(page)


def test_the_test_setting_is_remembered(qtbot: Any, page: WriterPage) -> None:
    assert not page.test_check.isChecked()
    page.test_check.setChecked(True)
    again = WriterPage(model=DriveListModel(include_excluded=True))
    qtbot.addWidget(again)
    assert again.test_check.isChecked()
    assert not again.test_button.isEnabled()  # nothing chosen to test
    again.shutdown()


# --- root: loop devices ----------------------------------------------------------------------


@needs_root
@pytest.mark.root
def test_an_unplug_during_confirm_withdraws_the_question(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path, states: list[str]
) -> None:
    choose_image(qtbot, page, image)
    data = os.urandom(32 * MiB)
    backing = tmp_path / "stick.img"
    backing.write_bytes(data)
    started: list[bool] = []
    page.writeStarted.connect(lambda: started.append(True))
    with loop_device(backing) as node:
        qtbot.waitUntil(lambda: page.model.row_of(node) >= 0, timeout=10_000)
        name_target(qtbot, page, node)
        box = press_write(qtbot, page)
        question = page.confirm
        assert question is not None and question.about[0][0].target.path == Path(node)
        # What the kernel sends when the disk goes away, seen by the real monitor.
        Path(f"/sys/block/{Path(node).name}/uevent").write_text("remove")
        qtbot.waitUntil(lambda: page.confirm is None, timeout=10_000)
        assert not question.open and question.box is None
        assert states == ["checking", "confirming", "choosing"]
        assert f"{node} was unplugged before you confirmed: nothing was written" in plain(
            page.target_label
        )
        assert page.target_path() is None and not page.write_button.isEnabled()
        qtbot.wait(300)
        assert not started and page.stack.currentIndex() == SETUP
        assert not shiboken6.isValid(box) or not box.isVisible()
    assert backing.read_bytes() == data


@needs_root
@pytest.mark.root
def test_a_cancel_during_verify_ends_cancelled(
    qtbot: Any, page: WriterPage, tmp_path: Path, states: list[str]
) -> None:
    image = big_sparse_image(tmp_path / "big.iso")
    choose_image(qtbot, page, image)
    with loop_device(sparse_file(tmp_path / "stick.img", 600 * MiB)) as node:
        name_target(qtbot, page, node)
        asked: list[Question] = []

        def cancel_at_verify(phase: str) -> None:
            if phase == "verify" and not asked:
                assert page.state is WriterState.VERIFYING and page.machine.verifying
                page.ask_cancel()
                assert page.stop is not None and page.cancel_box is not None
                asked.append(page.stop)
                assert "will not be verified" in page.cancel_box.text()
                accept(page.cancel_box, "confirmStop")

        page.phaseChanged.connect(cancel_at_verify)
        write_confirmed(qtbot, page)
        assert asked and page.stop is None
        assert states == ["checking", "confirming", "writing", "verifying", "cancelled"]
        assert page.machine.sticks[0].end is StickEnd.CANCELLED
        assert page.outcome is not None and page.outcome.kind is OutcomeKind.NOT_VERIFIED
        assert "Written, not verified (verification cancelled)" in plain(page.result_title)
        cmp_prefix(image, node, image.stat().st_size)  # written it was


def offered(node: str, name: str) -> Drive:
    """The real description of loop device `node`, offered as a stick called `name`."""
    real = next(d for d in list_drives(include_excluded=True) if d.devnode == node)
    return dataclasses.replace(real, vendor="Test", model=name, excluded_reason=None)


@pytest.fixture
def three_sticks(tmp_path: Path) -> Iterator[list[str]]:
    """Two good 32 MiB loop devices, and one whose backing file (32 MiB, sparse) sits on an
    8 MiB tmpfs: writes past about 8 MiB fail, as on a stick that dies part-way."""
    with (
        tmpfs(tmp_path / "small-fs", "8M") as fs,
        loop_device(sparse_file(tmp_path / "a.img", 32 * MiB)) as a,
        loop_device(sparse_file(fs / "b.img", 32 * MiB), direct_io=False) as b,
        loop_device(sparse_file(tmp_path / "c.img", 32 * MiB)) as c,
    ):
        yield [a, b, c]


@needs_root
@pytest.mark.root
def test_one_of_three_sticks_failing_is_named_and_the_others_verify(
    qtbot: Any, page: WriterPage, image: Path, three_sticks: list[str], states: list[str]
) -> None:
    choose_image(qtbot, page, image)
    page.model.stop()  # the test offers the loop devices as sticks itself
    qtbot.wait(200)
    drives = [offered(node, f"Stick {n}") for node, n in zip(three_sticks, "ABC", strict=True)]
    page.model.set_drives(drives)
    page.drive_view.setFocus()
    qtbot.keyClick(page.drive_view, Qt.Key.Key_Down)
    qtbot.keyClick(page.drive_view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert page.model.selected() == drives and page.target_paths() == three_sticks
    assert "Selected 3 drives" in plain(page.target_label)
    dying = drives[1]
    box = press_write(qtbot, page)
    assert box.text().startswith("Everything on these 3 drives will be erased")
    assert all(node in box.text() for node in three_sticks)
    with qtbot.waitSignal(page.writeFinished, timeout=WRITE_TIMEOUT) as finished:
        accept(box, "confirmErase")
        qtbot.waitUntil(lambda: len(page.progress_view.rows) == 3, timeout=10_000)
        rows = page.progress_view.rows
        assert [r.name_label.isVisibleTo(page) for r in rows] == [True] * 3
    assert finished.args == ["failed"]
    assert page.run.many  # one worker, one helper, one read of the image for all three
    sticks = page.machine.sticks
    assert [s.phases[-2:] for s in sticks] == [
        ["write", "verify"],
        ["write", "wipe"],  # never verified: wiped after its failure
        ["write", "verify"],
    ]
    assert states[:3] == ["checking", "confirming", "writing"] and states[-1] == "failed"
    ends = [s.end for s in page.machine.sticks]
    assert ends == [StickEnd.WRITTEN, StickEnd.FAILED, StickEnd.WRITTEN]
    good = [page.machine.sticks[i].result for i in (0, 2)]
    assert all(r is not None and r.verified for r in good)
    for node in (three_sticks[0], three_sticks[2]):
        cmp_prefix(image, node, image.stat().st_size)
    outcome = page.outcome
    assert outcome is not None and outcome.kind is OutcomeKind.FAILED
    assert (
        outcome.title == f"1 of 3 sticks did not succeed: Test Stick B (33.6 MB, {dying.devnode})"
    )
    # Nothing claims success for the dying stick: its part of the details says it failed.
    parts = outcome.details.split("\n\n")  # each stick, then the image's checksum once
    assert (
        len(parts) == 4
        and "No checksum file found" in parts[3]
        and parts[1].startswith(f"Test Stick B (33.6 MB, {dying.devnode}): ✘")
    )
    assert "verified" not in parts[1].lower().replace("not verified", "")
    assert all("Written and verified" in parts[i] for i in (0, 2))
    assert "Input/output error" in plain(rows[1].phase_label)
    assert "Written and verified" in plain(rows[0].phase_label)
    assert error_text(page).startswith(f"{dying.devnode}: the device refused data at byte")


@needs_root
@pytest.mark.root
def test_the_stick_test_and_the_test_before_writing(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path, states: list[str]
) -> None:
    if shutil.which("fusermount") is None:
        pytest.skip("needs fusermount (package fuse)")
    choose_image(qtbot, page, image)  # 16 MiB
    # A genuine stick passes "Test the stick…" with its data unchanged, then is tested and
    # written when the setting asks for it.
    backing = tmp_path / "genuine.img"
    backing.write_bytes(os.urandom(64 * MiB))
    with loop_device(backing) as node:
        name_target(qtbot, page, node)
        before = hashlib.sha256(device_bytes(node, 64 * MiB)).hexdigest()
        assert page.test_button.isEnabled()
        qtbot.mouseClick(page.test_button, Qt.MouseButton.LeftButton)
        assert not page.write_button.isEnabled() and page.missing() == "Testing the stick…"
        qtbot.waitUntil(lambda: page.targets.capacity != [], timeout=60_000)
        assert page.targets.capacity[0].genuine
        assert f"{node} is genuine" in plain(page.target_label)
        assert hashlib.sha256(device_bytes(node, 64 * MiB)).hexdigest() == before
        qtbot.waitUntil(page.write_button.isEnabled, timeout=10_000)
        page.test_check.setChecked(True)
        phases: list[str] = []
        page.phaseChanged.connect(phases.append)
        write_confirmed(qtbot, page)
        assert states == ["checking", "confirming", "testing", "writing", "verifying", "done"]
        assert phases[:2] == ["test", "check"] and "write" in phases
        assert page.outcome is not None and page.outcome.kind is OutcomeKind.VERIFIED
        cmp_prefix(image, node, image.stat().st_size)
    qtbot.keyClick(page.again_button, Qt.Key.Key_Space)

    # A fake stick: claims 1 GiB, keeps 8 MiB (wraps around). The button names its real
    # size; the write is refused before anything is written, its real size named.
    states.clear()
    with fake_stick(tmp_path, claimed=1 * GiB, stored=8 * MiB, mode="wrap") as node:
        name_target(qtbot, page, node)
        qtbot.mouseClick(page.test_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: page.targets.capacity != [], timeout=60_000)
        text = plain(page.target_label)
        assert f"{node} is FAKE" in text and "only 8.4 MB (8,388,608 bytes)" in text
        qtbot.waitUntil(page.write_button.isEnabled, timeout=10_000)
        first = device_bytes(node, MiB)
        write_confirmed(qtbot, page)
        assert states == ["checking", "confirming", "testing", "failed"]
        outcome = page.outcome
        assert outcome is not None and outcome.kind is OutcomeKind.FAILED
        assert outcome.title == "The image does not fit on the drive; nothing was written"
        assert "really holds (8.4 MB, 8388608 bytes" in outcome.details
        assert "really holds" in error_text(page)
        assert device_bytes(node, MiB) == first  # nothing written


@needs_root
@pytest.mark.root
def test_a_fake_stick_among_two_is_refused_by_the_test_and_the_other_written(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path, states: list[str]
) -> None:
    if shutil.which("fusermount") is None:
        pytest.skip("needs fusermount (package fuse)")
    choose_image(qtbot, page, image)  # 16 MiB
    page.test_check.setChecked(True)
    with (
        loop_device(sparse_file(tmp_path / "good.img", 32 * MiB)) as good,
        fake_stick(tmp_path, claimed=1 * GiB, stored=8 * MiB, mode="wrap") as fake,
    ):
        page.model.stop()
        qtbot.wait(200)
        drives = [offered(good, "Genuine"), offered(fake, "Fake")]
        page.model.set_drives(drives)
        page.model.select(drives)
        assert page.target_paths() == [good, fake]
        write_confirmed(qtbot, page)
        assert states[:3] == ["checking", "confirming", "testing"] and states[-1] == "failed"
        sticks = page.machine.sticks
        assert [s.end for s in sticks] == [StickEnd.WRITTEN, StickEnd.FAILED]
        assert sticks[0].phases[:2] == ["test", "check"] and "write" in sticks[0].phases
        assert "write" not in sticks[1].phases  # refused before anything was written
        cmp_prefix(image, good, image.stat().st_size)
        outcome = page.outcome
        assert outcome is not None
        assert outcome.title == f"1 of 2 sticks did not succeed: Test Fake (1.1 GB, {fake})"
        assert "really holds (8.4 MB, 8388608 bytes" in outcome.details


@needs_root
@pytest.mark.root
def test_a_cancel_of_two_sticks_wipes_both(
    qtbot: Any, page: WriterPage, tmp_path: Path, states: list[str]
) -> None:
    image = big_sparse_image(tmp_path / "big.iso")
    choose_image(qtbot, page, image)
    with (
        loop_device(sparse_file(tmp_path / "a.img", 600 * MiB)) as a,
        loop_device(sparse_file(tmp_path / "b.img", 600 * MiB)) as b,
    ):
        page.model.stop()
        qtbot.wait(200)
        drives = [offered(a, "A"), offered(b, "B")]
        page.model.set_drives(drives)
        page.model.select(drives)
        asked: list[bool] = []

        def cancel_at_write(phase: str) -> None:
            if phase == "write" and not asked:
                asked.append(True)
                qtbot.keyClick(page.cancel_button, Qt.Key.Key_Escape)
                assert page.cancel_box is not None and "wiped" in page.cancel_box.text()
                accept(page.cancel_box, "confirmStop")

        page.phaseChanged.connect(cancel_at_write)
        write_confirmed(qtbot, page)
        assert asked and states[-1] == "cancelled"
        assert [s.end for s in page.machine.sticks] == [StickEnd.CANCELLED] * 2
        outcome = page.outcome
        assert outcome is not None and outcome.kind is OutcomeKind.CANCELLED
        assert outcome.title.endswith("\u2014 on all 2 sticks")
        for node in (a, b):
            assert device_bytes(node, 64 * 1024) == bytes(64 * 1024)  # wiped
            size = image.stat().st_size
            assert device_bytes(node, MiB, size - MiB) == bytes(MiB)  # stopped early
        # A new image on the result goes back to choosing.
        assert page.set_image(image) and page.state is WriterState.CHOOSING
        assert page.stack.currentIndex() == SETUP


@needs_root
@pytest.mark.root
def test_two_sticks_one_mounted_is_unmounted_first_and_both_verify(
    qtbot: Any, page: WriterPage, image: Path, tmp_path: Path, states: list[str]
) -> None:
    from tests.app.usb.test_target import mounted, partitioned_loop

    choose_image(qtbot, page, image)
    with (
        partitioned_loop(tmp_path) as (node, p1, _p2),
        mounted(p1, tmp_path / "mnt") as mnt,
        loop_device(sparse_file(tmp_path / "other.img", 32 * MiB)) as other,
    ):
        page.model.stop()
        qtbot.wait(200)
        drives = [offered(node, "Mounted"), offered(other, "Other")]
        page.model.set_drives(drives)
        page.model.select(drives)
        write_confirmed(qtbot, page)
        assert states[-1] == "done", page.outcome
        sticks = page.machine.sticks
        assert sticks[0].phases[0] == "unmount" and "unmount" not in sticks[1].phases
        assert not os.path.ismount(mnt)
        outcome = page.outcome
        assert outcome is not None and outcome.kind is OutcomeKind.VERIFIED
        assert outcome.title == "Written and verified: 16.8 MB \u2014 on all 2 sticks"
        for target in (node, other):
            cmp_prefix(image, target, image.stat().st_size)


@needs_root
@pytest.mark.root
def test_a_stick_unplugged_among_two_ends_at_once_and_the_other_goes_on(
    qtbot: Any, page: WriterPage, tmp_path: Path, states: list[str]
) -> None:
    image = big_sparse_image(tmp_path / "big.iso")
    choose_image(qtbot, page, image)
    with (
        loop_device(sparse_file(tmp_path / "a.img", 600 * MiB)) as a,
        loop_device(sparse_file(tmp_path / "b.img", 600 * MiB)) as b,
    ):
        page.model.stop()
        qtbot.wait(200)
        drives = [offered(a, "A"), offered(b, "B")]
        page.model.set_drives(drives)
        page.model.select(drives)
        seen: list[bool] = []

        def unplug_at_write(phase: str) -> None:
            if phase == "write" and not seen:
                seen.append(True)
                page.model.driveRemoved.emit(b)  # what the monitor reports at once

        page.phaseChanged.connect(unplug_at_write)
        write_confirmed(qtbot, page)
        assert seen and states[-1] == "failed"
        sticks = page.machine.sticks
        assert [s.end for s in sticks] == [StickEnd.WRITTEN, StickEnd.UNPLUGGED]
        assert sticks[0].result is not None and sticks[0].result.verified
        outcome = page.outcome
        assert outcome is not None and outcome.kind is OutcomeKind.UNPLUGGED  # the worst end
        assert outcome.title == f"1 of 2 sticks did not succeed: Test B (629.1 MB, {b})"
        assert "went away while it was being written" in outcome.details
        assert "unplugged" in error_text(page)
        cmp_prefix(image, a, image.stat().st_size)


def test_keep_changes_asks_for_one_stick(qtbot: Any, page: WriterPage, image: Path) -> None:
    from tests.ui.test_writer_page import fake_drive
    from ui.writer_page import KEEP_ON_ONE

    choose_image(qtbot, page, image)
    page.model.stop()
    drives = [fake_drive("sdb"), fake_drive("sdc")]
    page.model.set_drives(drives)
    page.model.select(drives)
    assert page.missing() is None
    page.persist_check.setChecked(True)
    assert page.missing() == KEEP_ON_ONE and not page.write_button.isEnabled()
    page.model.select(drives[:1])
    assert page.missing() is None and page.write_button.isEnabled()

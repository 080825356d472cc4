"""The writer page's "Restore to a normal drive…", driven like a user (pytest-qt, offscreen):
a real hybrid ISO on a real loop device, the real tools, the work on worker threads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QTextDocumentFragment
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox, QPushButton

import ui.restore_dialog
from app.usb.restore import FileSystem, RestoreResult
from tests.app.usb.restore_support import assert_restored, hybrid_stick, make_hybrid_iso
from tests.app.usb.test_target import mounted, partitioned_loop
from tests.app.usb.writer_support import sha256_of_device
from tests.conftest import needs_root
from ui.drive_model import DriveListModel
from ui.restore_dialog import RestoreDialog, restore_outcome
from ui.tasks import Job
from ui.writer_page import RESULT, SETUP, WriterPage
from ui.writer_texts import OutcomeKind

RESTORE_TIMEOUT = 60_000  # ms; a restore takes a second or two


@pytest.fixture
def page(qtbot: Any) -> Iterator[WriterPage]:
    widget = WriterPage(model=DriveListModel(include_excluded=True, debounce=0.1))
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    widget.show()
    yield widget
    widget.shutdown()


@pytest.fixture
def shown_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Every error the dialog shows, recorded on its way through the one error function."""
    seen: list[BaseException] = []
    real = ui.restore_dialog.show_error

    def spy(parent: Any, exc: BaseException) -> QMessageBox:
        seen.append(exc)
        return real(parent, exc)

    monkeypatch.setattr(ui.restore_dialog, "show_error", spy)
    return seen


@pytest.fixture(scope="module")
def hybrid_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hybrid_iso(tmp_path_factory.mktemp("hybrid"))


def name_target(qtbot: Any, page: WriterPage, node: str) -> None:
    page.target_edit.clear()
    qtbot.keyClicks(page.target_edit, node)
    qtbot.keyClick(page.target_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.tasks.get(Job.TARGET) is None, timeout=10_000)
    assert page.target_path() == node


def open_dialog(qtbot: Any, page: WriterPage) -> RestoreDialog:
    assert page.restore_button.isEnabled()
    qtbot.mouseClick(page.restore_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: page.restore_dialog is not None and page.restore_dialog.isVisible(),
        timeout=10_000,
    )
    assert page.restore_dialog is not None
    return page.restore_dialog


def press_restore(qtbot: Any, dialog: RestoreDialog) -> QMessageBox:
    qtbot.mouseClick(dialog.restore_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: dialog.confirm_box is not None and dialog.confirm_box.isVisible(),
        timeout=10_000,
    )
    assert dialog.confirm_box is not None
    return dialog.confirm_box


def plain(label: QLabel) -> str:
    return QTextDocumentFragment.fromHtml(label.text()).toPlainText()


def test_the_button_opens_the_dialog_with_the_chosen_drive(qtbot: Any, page: WriterPage) -> None:
    page.target_edit.setText("/dev/null")  # typed, not used: nothing chosen yet
    dialog = open_dialog(qtbot, page)
    assert dialog.windowTitle() == "Restore to a normal drive"
    assert dialog.target_edit.text() == ""  # nothing chosen on the page
    assert dialog.fs() is FileSystem.EXFAT  # the default
    assert "exFAT labels: at most 11 characters" in plain(dialog.label_note)
    # The label is checked as it is typed, by the chosen file system's rules.
    qtbot.keyClicks(dialog.label_edit, "my stick")
    assert "✘" not in plain(dialog.label_note)
    dialog.fs_combo.setCurrentIndex(list(FileSystem).index(FileSystem.EXT4))
    dialog.label_edit.setText("x" * 17)
    assert plain(dialog.label_note).splitlines() == [
        "✘ This label cannot be used for ext4: it takes 17 bytes in UTF-8, at most 16 fit.",
        "• ext4 labels: at most 16 bytes of UTF-8, no control characters",
    ]
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not dialog.isVisible())
    assert page.stack.currentIndex() == SETUP


def test_a_bad_label_shows_through_the_error_function_and_asks_nothing(
    qtbot: Any, page: WriterPage, shown_errors: list[BaseException]
) -> None:
    dialog = open_dialog(qtbot, page)
    dialog.target_edit.setText("/dev/loop-not-used")
    dialog.fs_combo.setCurrentIndex(list(FileSystem).index(FileSystem.FAT32))
    qtbot.keyClicks(dialog.label_edit, "no:colons")
    qtbot.mouseClick(dialog.restore_button, Qt.MouseButton.LeftButton)
    assert len(shown_errors) == 1 and "cannot be used for FAT32" in str(shown_errors[0])
    assert dialog.error_box is not None and dialog.error_box.objectName() == "errorBox"
    assert "nothing was written" in dialog.error_box.text()
    assert dialog.confirm_box is None and dialog.restore_button.isEnabled()


@needs_root
@pytest.mark.root
def test_restoring_a_loop_device_ends_with_the_result_on_the_page(
    qtbot: Any, page: WriterPage, hybrid_iso: Path, tmp_path: Path
) -> None:
    with hybrid_stick(hybrid_iso, tmp_path / "stick.img") as node:
        name_target(qtbot, page, node)
        dialog = open_dialog(qtbot, page)
        assert dialog.target_edit.text() == node  # the page's chosen drive
        qtbot.keyClicks(dialog.label_edit, "Mein Stick")
        box = press_restore(qtbot, dialog)
        assert box.text().startswith(f"Erase {node} (")
        assert "one exFAT partition over the whole drive, labelled 'Mein Stick'" in (
            box.informativeText()
        )
        assert box.defaultButton() is not box.findChild(QPushButton, "confirmRestore")
        # The GUI thread keeps running while the drive is restored.
        ticks: list[float] = []
        timer = QTimer()
        timer.timeout.connect(lambda: ticks.append(time.monotonic()))
        with qtbot.waitSignal(dialog.restored, timeout=RESTORE_TIMEOUT) as restored:
            timer.start(10)
            button = box.findChild(QPushButton, "confirmRestore")
            assert button is not None
            button.click()
            qtbot.waitUntil(lambda: dialog.busy(), timeout=5_000)
            assert not dialog.restore_button.isEnabled() and not dialog.close_button.isEnabled()
        timer.stop()
        result = restored.args[0]
        assert isinstance(result, RestoreResult) and result.partition == f"{node}p1"
        assert len(ticks) >= 5, "the GUI thread waited for the restore"
        qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=5_000)
        # The page shows what happened.
        assert page.stack.currentIndex() == RESULT
        assert page.outcome is not None and page.outcome.kind is OutcomeKind.RESTORED
        assert "Restored: one exFAT partition" in page.result_title.text()
        details = page.result_details.text()
        assert f"Restored {node}: one exFAT partition {node}p1" in details
        assert "labelled 'Mein Stick'" in details
        assert_restored(node, result.partition, FileSystem.EXFAT, "Mein Stick", tmp_path)
        qtbot.keyClick(page.again_button, Qt.Key.Key_Space)
        assert page.stack.currentIndex() == SETUP and page.target_path() is None


@needs_root
@pytest.mark.root
def test_a_mounted_drive_is_refused_through_the_error_function(
    qtbot: Any, page: WriterPage, tmp_path: Path, shown_errors: list[BaseException]
) -> None:
    with partitioned_loop(tmp_path) as (disk, p1, _p2), mounted(p1, tmp_path / "mnt"):
        before = sha256_of_device(disk)
        dialog = open_dialog(qtbot, page)
        dialog.target_edit.setText(disk)
        qtbot.mouseClick(dialog.restore_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: bool(shown_errors), timeout=10_000)
        assert "has mounted partitions" in str(shown_errors[0])
        assert dialog.error_box is not None and "has mounted partitions" in dialog.error_box.text()
        assert dialog.confirm_box is None and not dialog.busy()
        assert dialog.restore_button.isEnabled()  # the user may fix it and try again
        assert sha256_of_device(disk) == before
    QApplication.processEvents()


def test_the_outcome_words() -> None:
    result = RestoreResult(
        "/dev/sdb", "/dev/sdb1", "fat32", "FAT16", "STICK", 990, 1000, 2.0, "udisks", ("n x",)
    )
    outcome = restore_outcome(result)
    assert outcome.kind is OutcomeKind.RESTORED and outcome.title == "Restored: one FAT32 partition"
    assert "It took 2.0 s (through UDisks2)." in outcome.details
    assert outcome.details.splitlines()[-1] == "N x."

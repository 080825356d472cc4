"""“Remaster…” from the preview, on GRUB's rescue CD (Debian's grub-rescue-pc): a file
dropped in, a text file edited in place, a folder removed; the new image is written off
the GUI thread, keeps the boot entries, and can be handed to the writer."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

import app.iso.remaster as remaster_module
from app.errors import Cancelled
from app.iso.inspect import inspect_iso
from tests.app.iso.mastering_helpers import run
from tests.app.iso.remaster_helpers import GRUB_RESCUE_ISO
from ui.preview_view import PreviewView
from ui.remaster_dialog import RemasterDialog

TIMEOUT = 60_000
GRUB_CFG = "/boot/grub/grub.cfg"


@pytest.fixture
def view(qtbot: Any) -> Iterator[PreviewView]:
    widget = PreviewView()
    qtbot.addWidget(widget)
    widget.resize(1000, 720)
    widget.show()
    yield widget
    widget.shutdown()


@pytest.fixture
def rescue(tmp_path: Path) -> Path:
    return Path(shutil.copy(GRUB_RESCUE_ISO, tmp_path / "rescue.iso"))


def open_dialog(qtbot: Any, view: PreviewView, iso: Path, select: str) -> RemasterDialog:
    with qtbot.waitSignal(view.loaded, timeout=TIMEOUT):
        view.load(iso)
    assert view.select_path(select)
    assert view.remaster_button.isEnabled()
    dialog = view.open_remaster()
    assert dialog is not None and dialog.isVisible()
    return dialog


def drop(widget: Any, *paths: Path, kind: type = QDropEvent) -> Any:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = kind(
        QPoint(30, 30),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    event.ignore()
    QApplication.sendEvent(widget, event)
    return event


def read_from(iso: Path, inner: str, dest: Path) -> str:
    run("xorriso", "-osirrox", "on", "-indev", iso, "-extract", inner, dest)
    return dest.read_text()


def test_add_by_drop_edit_in_place_remove_write_and_hand_on(
    qtbot: Any, view: PreviewView, rescue: Path, tmp_path: Path
) -> None:
    dialog = open_dialog(qtbot, view, rescue, GRUB_CFG)
    assert dialog.path_edit.text() == GRUB_CFG
    assert dialog.folder.text() == "/boot/grub"
    # add (drag and drop) into the folder of the selection
    notes = tmp_path / "notes.txt"
    notes.write_text("dropped in\n")
    assert drop(dialog, notes, kind=QDragEnterEvent).isAccepted()
    assert drop(dialog, notes).isAccepted()
    # edit the boot menu in place
    editor = dialog.edit_path()
    assert editor is not None
    original = editor.editor.toPlainText()
    assert "menuentry" in original or "insmod" in original
    editor.editor.setPlainText(original + "\n# edited by the remaster dialog\n")
    editor.accept()
    # remove a folder
    dialog.path_edit.setText("/boot/grub/fonts")
    dialog.remove_button.click()
    assert [dialog.list.item(i).text() for i in range(dialog.list.count())] == [
        f"add /boot/grub/notes.txt ← {notes}",
        f"edit {GRUB_CFG} (edited here)",
        "remove /boot/grub/fonts",
    ]
    out = tmp_path / "rescue-new.iso"
    dialog.output_edit.setText(str(out))
    dialog.label_edit.setText("RESCUE_NEW")
    gui_thread = threading.get_ident()
    ran_in: list[int] = []
    real = remaster_module.remaster_iso

    def spy(*args: Any, **kwargs: Any) -> Any:
        ran_in.append(threading.get_ident())
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ui.remaster_dialog.remaster_iso", spy)
        with qtbot.waitSignal(dialog.remastered, timeout=TIMEOUT) as blocker:
            task = dialog.start()
            assert task is not None and dialog.is_writing()  # start() returned at once
            assert not dialog.write_button.isEnabled()
    assert ran_in and ran_in[0] != gui_thread  # written off the GUI thread
    assert blocker.args[0].path == out and not dialog.is_writing()
    report = inspect_iso(out)
    paths = {e.path for e in report.files}
    assert "/boot/grub/notes.txt" in paths and "/boot/grub/fonts" not in paths
    assert report.label == "RESCUE_NEW"
    assert read_from(out, GRUB_CFG, tmp_path / "grub.cfg").endswith(
        "# edited by the remaster dialog\n"
    )
    assert [(e.platform, e.emulation, e.load_size) for e in report.eltorito] == [
        (e.platform, e.emulation, e.load_size) for e in inspect_iso(rescue).eltorito
    ]
    assert "kept: " not in dialog.status.text() and "GRUB hybrid MBR boot code" in (
        dialog.status.text()
    )
    # then offer to write it to a stick
    assert dialog.usb_button.isVisible()
    with qtbot.waitSignal(view.writeRequested, timeout=5000) as handed:
        dialog.usb_button.click()
    assert handed.args[0] == out


def test_a_change_that_would_break_booting_is_refused_with_the_reason(
    qtbot: Any, view: PreviewView, rescue: Path, tmp_path: Path
) -> None:
    eltorito = "/boot/grub/i386-pc/eltorito.img"
    dialog = open_dialog(qtbot, view, rescue, eltorito)
    dialog.remove_button.click()
    out = tmp_path / "broken.iso"
    dialog.output_edit.setText(str(out))
    with qtbot.waitSignal(dialog.remasterFailed, timeout=TIMEOUT):
        dialog.start()
    assert dialog.error_box is not None
    text = dialog.error_box.text() + dialog.error_box.detailedText()
    assert "removing it would remove El Torito boot image 1" in text, text
    assert not out.exists()
    assert dialog.status.text() == "Nothing was written."
    assert not dialog.usb_button.isVisible()


def test_cancel_while_writing_leaves_nothing(
    qtbot: Any, view: PreviewView, rescue: Path, tmp_path: Path
) -> None:
    dialog = open_dialog(qtbot, view, rescue, GRUB_CFG)
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(64 * 1024 * 1024)  # long enough to be cancelled mid-way
    dialog.add_local_files([big])
    out = tmp_path / "cancelled.iso"
    dialog.output_edit.setText(str(out))
    with qtbot.waitSignal(dialog.remasterFailed, timeout=TIMEOUT) as blocker:
        dialog.start()
        assert dialog.cancel_button.isVisible()
        dialog.cancel_button.click()
    assert isinstance(blocker.args[0], Cancelled)
    assert dialog.error_box is None  # a cancel is no error
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cancelled.iso")]
    assert not dialog.cancel_button.isVisible() and dialog.write_button.isEnabled()

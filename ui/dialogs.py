"""Dialogs of one shape for the whole GUI: questions before what cannot be undone, and
file choosers; both open without blocking.

Questions before something that cannot be undone: the box is window-modal and opened
without blocking (`open()`), so the event loop and any running work go on, and tests can
find it by object name and answer it. The safe button is the default and the Escape
button: Enter never erases, stops or quits.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget


def ask_destructive(
    parent: QWidget,
    *,
    title: str,
    text: str,
    act: str,
    on_yes: Callable[[], object],
    name: str,
    act_name: str,
    keep: str = "Continue",
    informative: str = "",
    icon: QMessageBox.Icon = QMessageBox.Icon.Question,
    on_closed: Callable[[], object] | None = None,
) -> QMessageBox:
    """Ask `text`; `on_yes()` runs only if the user chose the `act` button.

    `on_closed()` runs after any answer (before `on_yes`), e.g. to forget the box.
    """
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.NoButton, parent)
    box.setObjectName(name)
    box.setAccessibleName(title)
    if informative:
        box.setInformativeText(informative)
    yes = box.addButton(act, QMessageBox.ButtonRole.DestructiveRole)
    yes.setObjectName(act_name)
    no = box.addButton(keep, QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(no)
    box.setEscapeButton(no)

    def answered(_result: int) -> None:
        box.deleteLater()
        if on_closed is not None:
            on_closed()
        if box.clickedButton() is yes:
            on_yes()

    box.finished.connect(answered)
    box.open()
    return box


class PathKind(enum.Enum):
    OPEN_FILE = "open"  # an existing file
    SAVE_FILE = "save"  # a file to write (may exist)
    FOLDER = "folder"  # an existing folder


def choose_path(
    parent: QWidget,
    *,
    title: str,
    start: str | Path,
    kind: PathKind,
    on_chosen: Callable[[Path], object],
    name: str,
    filters: str = "",
    confirm_overwrite: bool = True,
) -> QFileDialog:
    """A window-modal file dialog opened without blocking (no nested event loop); the
    caller keeps the returned dialog (tests find it by `name` and answer it)."""
    dialog = QFileDialog(parent, title, str(start), filters)
    dialog.setObjectName(name)
    if kind is PathKind.FOLDER:
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    elif kind is PathKind.SAVE_FILE:
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        if not confirm_overwrite:
            dialog.setOption(QFileDialog.Option.DontConfirmOverwrite)
    else:
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    if kind is not PathKind.SAVE_FILE:
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
    dialog.fileSelected.connect(lambda chosen: on_chosen(Path(chosen)) if chosen else None)
    dialog.finished.connect(lambda _result: dialog.deleteLater())
    dialog.open()
    return dialog

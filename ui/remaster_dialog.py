"""“Remaster…” from the preview: other files in an ISO, the same boot setup.

The dialog collects changes to the shown image: files added or replaced (“Add files…”
or dropped on the dialog, into the folder named above the list), entries removed, and
text files edited in place (extracted to a temporary folder, edited here, added back).
“Write new ISO…” runs `app.iso.remaster.remaster_iso` on a worker thread
(`BackgroundTask`); the boot setup that was kept is listed, and “Write to USB…” then
emits `writeRequested(path)` with the new image for whoever embeds the dialog (the main
window switches to the writer). Bad changes (removing a boot image, replacing the boot
catalog, an image whose boot setup cannot be kept) come back as the core's problems, in
an error box; nothing is written then.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.errors import Cancelled, InputError
from app.iso.extract import extract
from app.iso.inspect import IsoReport
from app.iso.remaster import RemasterResult, RemasterSpec, remaster_iso
from app.reporter import Reporter
from ui.errors import show_error
from ui.worker import BackgroundTask

TEXT_LIMIT = 1024 * 1024  # larger files are not edited in place


@dataclass(frozen=True)
class Change:
    kind: str  # "add" | "remove" | "edit"
    iso_path: str
    local: Path | None = None

    def text(self) -> str:
        if self.kind == "remove":
            return f"remove {self.iso_path}"
        if self.kind == "edit":
            return f"edit {self.iso_path} (edited here)"
        return f"add {self.iso_path} ← {self.local}"


class TextEditor(QDialog):
    """A plain text editor for one file of the image."""

    def __init__(self, iso_path: str, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Edit {iso_path}")
        self.setObjectName("remasterTextEditor")
        self.editor = QPlainTextEdit()
        self.editor.setObjectName("remasterText")
        self.editor.setAccessibleName(f"Text of {iso_path}")
        self.editor.setPlainText(text)
        save = QPushButton("&Keep changes")
        save.setObjectName("remasterKeepText")
        save.clicked.connect(self.accept)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(cancel)
        buttons.addWidget(save)
        layout = QVBoxLayout(self)
        layout.addWidget(self.editor, 1)
        layout.addLayout(buttons)
        self.resize(700, 500)


class RemasterDialog(QDialog):
    """Changes to one ISO image, then a new image with the same boot setup."""

    writeRequested = Signal(object)  # Path of the new image
    remastered = Signal(object)  # RemasterResult
    remasterFailed = Signal(object)  # the exception

    def __init__(self, report: IsoReport, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("remasterDialog")
        self.setWindowTitle(f"Remaster {report.path.name}")
        self.setAcceptDrops(True)
        self.report = report
        self.changes: list[Change] = []
        self.new_image: RemasterResult | None = None
        self.error_box: QMessageBox | None = None
        self.editor: TextEditor | None = None
        self._task: BackgroundTask | None = None
        self._workdir = Path(tempfile.mkdtemp(prefix="livesmith-remaster-"))
        self._entries = {e.path: e for e in report.files}

        intro = QLabel(
            "Add, replace, remove or edit files. The new image keeps the boot setup of "
            f"{report.path.name}: its El Torito entries, hybrid MBR and partitions."
        )
        intro.setWordWrap(True)
        self.folder = QLineEdit("/")
        self.folder.setObjectName("remasterFolder")
        self.folder.setAccessibleName("Folder in the image for added files")
        self.path_edit = QLineEdit()
        self.path_edit.setObjectName("remasterPath")
        self.path_edit.setAccessibleName("Path of a file in the image")
        self.path_edit.setPlaceholderText("/boot/grub/grub.cfg")
        self.label_edit = QLineEdit(report.label)
        self.label_edit.setObjectName("remasterLabel")
        self.label_edit.setAccessibleName("Volume label of the new image")
        self.output_edit = QLineEdit(str(report.path.with_name(f"{report.path.stem}-new.iso")))
        self.output_edit.setObjectName("remasterOutput")
        self.output_edit.setAccessibleName("The new image")

        self.add_button = self._button("&Add files…", "remasterAdd", self.choose_files)
        self.remove_button = self._button("&Remove", "remasterRemove", self.remove_path)
        self.edit_button = self._button("&Edit text…", "remasterEdit", self.edit_path)
        self.undo_button = self._button("&Undo change", "remasterUndo", self.undo)
        self.write_button = self._button("Write &new ISO", "remasterWrite", self.start)
        self.usb_button = self._button("Write to &USB…", "remasterToUsb", self.request_usb)
        self.usb_button.hide()
        self.cancel_button = self._button("&Cancel writing", "remasterCancel", self.cancel)
        self.cancel_button.hide()

        self.list = QListWidget()
        self.list.setObjectName("remasterChanges")
        self.list.setAccessibleName("Changes to the image")
        self.bar = QProgressBar()
        self.bar.setObjectName("remasterProgress")
        self.bar.hide()
        self.status = QLabel("Drop files here to add them to the folder above.")
        self.status.setObjectName("remasterStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(self.add_button)
        form.addRow("Add into folder:", folder_row)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(self.edit_button)
        path_row.addWidget(self.remove_button)
        form.addRow("File in the image:", path_row)
        form.addRow("Volume label:", self.label_edit)
        form.addRow("New image:", self.output_edit)
        bottom = QHBoxLayout()
        bottom.addWidget(self.undo_button)
        bottom.addStretch(1)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(self.usb_button)
        bottom.addWidget(self.write_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addLayout(bottom)
        self.resize(760, 520)

    def _button(self, text: str, name: str, slot: object) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setAccessibleName(text.replace("&", "").rstrip("…"))
        button.clicked.connect(lambda _checked=False: slot())  # type: ignore[operator]
        return button

    # -- changes -------------------------------------------------------------------------------
    def _record(self, change: Change) -> None:
        # a later change of the same path replaces the earlier one
        self.changes = [c for c in self.changes if c.iso_path != change.iso_path]
        self.changes.append(change)
        self.list.clear()
        self.list.addItems([c.text() for c in self.changes])
        self.usb_button.hide()

    def set_target_path(self, iso_path: str) -> None:
        """Prefill from the preview's selection: the file, and its folder for additions."""
        entry = self._entries.get(iso_path)
        self.path_edit.setText(iso_path)
        if entry is not None and entry.type == "dir":
            self.folder.setText(iso_path)
        else:
            self.folder.setText(str(PurePosixPath(iso_path).parent))

    def add_local_files(self, paths: list[Path]) -> None:
        folder = self.folder.text().strip() or "/"
        for path in paths:
            if path.is_file():
                self._record(Change("add", str(PurePosixPath(folder) / path.name), path))

    def choose_files(self) -> QFileDialog:
        dialog = QFileDialog(self, "Files to add to the image")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.filesSelected.connect(lambda names: self.add_local_files([Path(n) for n in names]))
        dialog.open()
        return dialog

    def remove_path(self) -> None:
        path = self.path_edit.text().strip()
        if not path:
            return
        if path not in self._entries:
            self.error_box = show_error(
                self, InputError("there is no such file or folder in the image", where=path)
            )
            return
        self._record(Change("remove", path))

    def edit_path(self) -> TextEditor | None:
        path = self.path_edit.text().strip()
        entry = self._entries.get(path)
        if entry is None or entry.type != "file":
            self.error_box = show_error(
                self, InputError("choose a text file of the image to edit", where=path or "")
            )
            return None
        if entry.size > TEXT_LIMIT:
            self.error_box = show_error(
                self, InputError("the file is too large to edit here (over 1 MiB)", where=path)
            )
            return None
        earlier = next((c for c in self.changes if c.iso_path == path and c.local), None)
        if earlier is not None and earlier.local is not None:
            raw = earlier.local.read_bytes()
        else:
            dest = self._workdir / f"original-{len(self.changes)}-{PurePosixPath(path).name}"
            extract(self.report.path, path, dest)
            raw = dest.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.error_box = show_error(
                self, InputError("the file is not UTF-8 text; it cannot be edited here", where=path)
            )
            return None
        self.editor = TextEditor(path, text, self)
        self.editor.accepted.connect(lambda: self._edited(path))
        self.editor.open()
        return self.editor

    def _edited(self, path: str) -> None:
        assert self.editor is not None
        local = self._workdir / f"edited-{len(self.changes)}-{PurePosixPath(path).name}"
        local.write_text(self.editor.editor.toPlainText(), encoding="utf-8")
        self._record(Change("edit", path, local))

    def undo(self) -> None:
        if self.changes:
            self.changes.pop()
            self.list.clear()
            self.list.addItems([c.text() for c in self.changes])

    def spec(self) -> RemasterSpec:
        label = self.label_edit.text().strip()
        return RemasterSpec(
            source=self.report.path,
            output=Path(self.output_edit.text().strip()),
            add=tuple((c.iso_path, c.local) for c in self.changes if c.local is not None),
            remove=tuple(c.iso_path for c in self.changes if c.kind == "remove"),
            label=label if label and label != self.report.label else None,
        )

    # -- writing ---------------------------------------------------------------------------------
    def is_writing(self) -> bool:
        return self._task is not None

    def start(self) -> BackgroundTask | None:
        if self._task is not None:
            return None
        spec = self.spec()

        def work(reporter: Reporter) -> RemasterResult:
            return remaster_iso(spec, reporter)

        task = BackgroundTask(work, self, name="livesmith-remaster")
        self._task = task
        task.progressChanged.connect(self._progress)
        task.finished.connect(self._done)
        task.failed.connect(self._failed)
        self.bar.setRange(0, 0)
        self.bar.show()
        self.cancel_button.show()
        self.write_button.setEnabled(False)
        self.status.setText(f"Writing {spec.output}…")
        task.start()
        return task

    def _progress(self, done: int, total: int) -> None:
        if total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(done * 1000 / total))

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _ended(self) -> None:
        self._task = None
        self.cancel_button.hide()
        self.bar.hide()
        self.write_button.setEnabled(True)

    def _done(self, result: RemasterResult) -> None:
        self._ended()
        self.new_image = result
        kept = "\n".join(f"• {line}" for line in result.kept)
        self.status.setText(f"Wrote {result.path} ({result.size:,} bytes). Kept:\n{kept}")
        self.usb_button.show()
        self.remastered.emit(result)

    def _failed(self, exc: BaseException) -> None:
        self._ended()
        self.status.setText("Nothing was written.")
        if not isinstance(exc, Cancelled):
            self.error_box = show_error(self, exc)
        self.remasterFailed.emit(exc)

    def request_usb(self) -> None:
        if self.new_image is not None:
            self.writeRequested.emit(self.new_image.path)
            self.accept()

    # -- drag and drop ---------------------------------------------------------------------------
    @staticmethod
    def dropped_files(event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> list[Path]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        return [p for p in paths if p.is_file()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self.dropped_files(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self.dropped_files(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        files = self.dropped_files(event)
        if not files:
            event.ignore()
            return
        event.acceptProposedAction()
        self.add_local_files(files)

    def shutdown(self) -> None:
        if self._task is not None:
            self._task.shutdown()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def done(self, result: int) -> None:
        if self._task is None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        super().done(result)

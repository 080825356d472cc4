"""The one function through which the GUI shows every error."""

from __future__ import annotations

import traceback

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from app.errors import Cancelled, LivesmithError, ValidationError


def error_text(exc: BaseException) -> tuple[str, str, str]:
    """(title, message, details) for an exception, in words a user understands."""
    if isinstance(exc, Cancelled):
        return "Cancelled", str(exc), ""
    if isinstance(exc, ValidationError):
        return (
            "Please fix these problems first",
            f"{len(exc.problems)} problem(s) found.",
            "\n".join(str(p) for p in exc.problems),
        )
    if isinstance(exc, LivesmithError):
        return "Livesmith", str(exc), ""
    details = "".join(traceback.format_exception(exc))
    return "Unexpected error", f"Something unexpected went wrong: {exc}", details


def show_error(parent: QWidget | None, exc: BaseException) -> QMessageBox:
    """Show `exc` in a non-blocking message box and return it (tests can inspect it)."""
    title, message, details = error_text(exc)
    box = QMessageBox(
        QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, parent
    )
    box.setObjectName("errorBox")
    # Messages name files, labels and partitions from images and packages: never markup.
    box.setTextFormat(Qt.TextFormat.PlainText)
    if details:
        box.setDetailedText(details)
    box.open()
    return box

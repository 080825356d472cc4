"""The main window: a start screen with the three ways in."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app import __version__


class StartScreen(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        title = QLabel(f"<h1>Livesmith</h1><p>Compose live ISO images, look inside any ISO, "
                       f"and write images safely to USB sticks.</p><p>Version {__version__}</p>")
        title.setWordWrap(True)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(title)
        self.compose_button = QPushButton("Compose a live ISO…")
        self.write_button = QPushButton("Write an ISO to USB…")
        self.inspect_button = QPushButton("Inspect an ISO…")
        for button, name in ((self.compose_button, "compose"), (self.write_button, "write"),
                             (self.inspect_button, "inspect")):
            button.setObjectName(f"start-{name}")
            button.setAccessibleName(button.text().rstrip("…"))
            button.setMinimumHeight(48)
            layout.addWidget(button)
        layout.addStretch(1)


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Livesmith")
        self.resize(900, 640)
        self.pages = QStackedWidget()
        self.start = StartScreen()
        self.pages.addWidget(self.start)
        self.setCentralWidget(self.pages)

"""Page 4, Image: how the root is stored (SquashFS, EROFS or all in RAM), its compression,
and whether the package files travel on the ISO."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.compose.profile import FORMAT_COMPRESSORS, Compressor, RootImageFormat, level_range
from ui.wizard.common import StatePage, buddy_label, named
from ui.wizard.state import WizardState

FORMAT_TITLES = {
    RootImageFormat.SQUASHFS: "&SquashFS (compact, the usual choice)",
    RootImageFormat.EROFS: "&EROFS (fast to read)",
    RootImageFormat.RAM: "R&AM only (the whole root in the initramfs)",
}


class ImagePage(StatePage):
    def __init__(self, state: WizardState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self.setTitle("Image")
        self.setSubTitle("How the root file system is stored on the medium.")
        form = QFormLayout(self)
        formats = QVBoxLayout()
        self.format_group = QButtonGroup(self)
        self.format_buttons: dict[RootImageFormat, QRadioButton] = {}
        for fmt, title in FORMAT_TITLES.items():
            button = named(
                QRadioButton(title), f"format-{fmt.value}", f"Root image format {fmt.value}"
            )
            self.format_group.addButton(button)
            self.format_buttons[fmt] = button
            formats.addWidget(button)
        form.addRow("Root image:", formats)

        self.compressor_combo = named(QComboBox(), "compressor", "Compressor")
        form.addRow("&Compressor:", self.compressor_combo)
        level_row = QHBoxLayout()
        self.default_level_check = named(
            QCheckBox("&Default level"), "defaultLevel", "Use the compressor's default level"
        )
        self.level_spin = named(QSpinBox(), "compressionLevel", "Compression level")
        level_row.addWidget(self.default_level_check)
        level_row.addWidget(self.level_spin)
        level_row.addStretch(1)
        form.addRow(buddy_label("&Level:", self.default_level_check), level_row)
        self.carry_check = named(
            QCheckBox("Carry the &package files on the ISO (/packages)"),
            "carryPackages",
            "Carry the package files on the ISO",
        )
        form.addRow("", self.carry_check)

        self._fill_from_profile()
        for fmt, button in self.format_buttons.items():
            button.toggled.connect(lambda on, fmt=fmt: self._on_format(fmt) if on else None)
        self.compressor_combo.currentIndexChanged.connect(self._on_compressor)
        self.default_level_check.toggled.connect(self._on_level)
        self.level_spin.valueChanged.connect(self._on_level)
        self.carry_check.toggled.connect(lambda on: self.state.update("packages", carry=on))

    def _fill_from_profile(self) -> None:
        self._loading = True
        image = self.state.profile.image
        self.format_buttons[image.format].setChecked(True)
        self._fill_compressors()
        self._fill_level()
        self.carry_check.setChecked(self.state.profile.packages.carry)
        self._loading = False

    def _fill_compressors(self) -> None:
        image = self.state.profile.image
        was_loading, self._loading = self._loading, True
        self.compressor_combo.clear()
        allowed = FORMAT_COMPRESSORS[image.format]
        for compressor in allowed:
            self.compressor_combo.addItem(compressor.value, compressor)
        if image.compressor not in allowed:  # e.g. from a hand-written profile
            self.compressor_combo.addItem(
                f"{image.compressor.value} (not possible)", image.compressor
            )
        self.compressor_combo.setCurrentIndex(self.compressor_combo.findData(image.compressor))
        self._loading = was_loading

    def _fill_level(self) -> None:
        image = self.state.profile.image
        was_loading, self._loading = self._loading, True
        levels = level_range(image.format, image.compressor)
        has_levels = levels is not None
        low, high, default = (levels.low, levels.high, levels.default) if levels else (0, 0, 0)
        self.level_spin.setRange(low, high)
        self.level_spin.setValue(default if image.level is None else image.level)
        self.level_spin.setToolTip(f"{low} to {high}" if has_levels else "no levels")
        self.default_level_check.setChecked(image.level is None)
        self.default_level_check.setEnabled(has_levels)
        self.level_spin.setEnabled(has_levels and image.level is not None)
        self._loading = was_loading

    def _on_format(self, fmt: RootImageFormat) -> None:
        if self._loading:
            return
        image = self.state.profile.image
        allowed = FORMAT_COMPRESSORS[fmt]
        if image.compressor in allowed:
            # A chosen level the new format cannot take moves to the nearest one it can.
            levels = level_range(fmt, image.compressor)
            level = image.level
            if level is not None:
                level = None if levels is None else min(max(level, levels.low), levels.high)
            self.state.update("image", format=fmt, level=level)
        else:  # the old compressor cannot be used: the new format's first, at its default
            self.state.update("image", format=fmt, compressor=allowed[0], level=None)
        self._fill_compressors()
        self._fill_level()

    @Slot(int)
    def _on_compressor(self, index: int) -> None:
        if self._loading or index < 0:
            return
        compressor: Compressor = self.compressor_combo.itemData(index)
        self.state.update("image", compressor=compressor, level=None)
        self._fill_level()

    @Slot()
    def _on_level(self) -> None:
        if self._loading:
            return
        use_default = self.default_level_check.isChecked()
        self.level_spin.setEnabled(not use_default and self.default_level_check.isEnabled())
        self.state.update("image", level=None if use_default else self.level_spin.value())

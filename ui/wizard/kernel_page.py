"""Page 2, Kernel and boot: which package ships the kernel, and the boot menu's options."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from app.compose import secureboot
from app.compose.bootloader import MAX_TIMEOUT_S
from app.compose.pipeline import looks_like_kernel_package
from app.compose.profile import Profile, SecureBoot
from app.packages.resolve import Resolution
from ui.wizard.common import StatePage, named
from ui.wizard.state import WizardState

AUTO_KERNEL = "Find it among the selected packages"
SECURE_BOOT_CHOICES = (
    (SecureBoot.AUTO, "Automatic: on with Debian or Ubuntu packages"),
    (SecureBoot.ON, "On: the signed shim, GRUB and kernel (required)"),
    (SecureBoot.OFF, "Off: boots only with Secure Boot disabled"),
)


def secure_boot_hint(profile: Profile) -> str:
    """What the Secure Boot choice means for this profile, before the archive is asked."""
    mode = profile.boot.secure_boot
    if mode is SecureBoot.OFF:
        return "UEFI boots through Livesmith's own GRUB, which Secure Boot firmware refuses."
    reasons = secureboot.profile_problems(profile)
    if reasons:
        why = "; ".join(p.message for p in reasons)
        if mode is SecureBoot.ON:
            return f"Cannot be met: {why}."
        return f"Will be off: {why}."
    return (
        "UEFI boots through the distribution's signed shim, GRUB and kernel "
        "(if the archive has shim-signed and grub-efi-amd64-signed)."
    )


def kernel_candidates(resolution: Resolution | None) -> list[str]:
    """Packages of the resolution that ship a kernel (by the pipeline's own rule)."""
    if resolution is None:
        return []
    return [p.name for p in resolution.packages if looks_like_kernel_package(p.name)]


class KernelBootPage(StatePage):
    def __init__(self, state: WizardState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self.setTitle("Kernel and boot")
        self.setSubTitle("The kernel, how the medium boots, and the boot menu.")
        form = QFormLayout(self)
        self.kernel_combo = named(QComboBox(), "kernelPackage", "Kernel package")
        form.addRow("&Kernel package:", self.kernel_combo)
        self.kernel_hint = named(QLabel(), "kernelHint", "Kernel hint")
        self.kernel_hint.setWordWrap(True)
        form.addRow("", self.kernel_hint)

        firmware = QHBoxLayout()
        self.bios_check = named(QCheckBox("B&IOS (isolinux)"), "bootBios", "Boot on BIOS")
        self.uefi_check = named(QCheckBox("&UEFI (GRUB)"), "bootUefi", "Boot on UEFI")
        firmware.addWidget(self.bios_check)
        firmware.addWidget(self.uefi_check)
        firmware.addStretch(1)
        form.addRow("Boots on:", firmware)

        self.timeout_spin = named(QSpinBox(), "bootTimeout", "Boot menu timeout in seconds")
        self.timeout_spin.setRange(0, MAX_TIMEOUT_S)
        self.timeout_spin.setSuffix(" s")
        form.addRow("Menu &timeout:", self.timeout_spin)
        self.cmdline_edit = named(QLineEdit(), "bootCmdline", "Extra kernel parameters")
        self.cmdline_edit.setPlaceholderText("e.g. quiet loglevel=3")
        form.addRow("Extra kernel &parameters:", self.cmdline_edit)
        self.copytoram_check = named(
            QCheckBox('Add a "copy to &RAM" entry'), "bootCopyToRam", "Add a copy to RAM boot entry"
        )
        form.addRow("", self.copytoram_check)
        self.safe_check = named(
            QCheckBox('Add a "safe &graphics" entry'), "bootSafe", "Add a safe graphics boot entry"
        )
        form.addRow("", self.safe_check)
        self.secure_boot_combo = named(QComboBox(), "bootSecureBoot", "Secure Boot")
        for mode, text in SECURE_BOOT_CHOICES:
            self.secure_boot_combo.addItem(text, mode)
        form.addRow("&Secure Boot:", self.secure_boot_combo)
        self.secure_boot_hint = named(QLabel(), "bootSecureBootHint", "Secure Boot hint")
        self.secure_boot_hint.setWordWrap(True)
        form.addRow("", self.secure_boot_hint)

        self._fill_from_profile()
        self.kernel_combo.currentIndexChanged.connect(self._on_kernel)
        self.bios_check.toggled.connect(lambda on: self._set_boot(bios=on))
        self.uefi_check.toggled.connect(lambda on: self._set_boot(uefi=on))
        self.timeout_spin.valueChanged.connect(lambda value: self._set_boot(timeout=value))
        self.cmdline_edit.textChanged.connect(lambda text: self._set_boot(cmdline=text))
        self.copytoram_check.toggled.connect(lambda on: self._set_boot(copytoram_entry=on))
        self.safe_check.toggled.connect(lambda on: self._set_boot(safe_entry=on))
        self.secure_boot_combo.currentIndexChanged.connect(
            lambda index: self._set_boot(secure_boot=self.secure_boot_combo.itemData(index))
        )
        state.resolutionChanged.connect(self._fill_kernels)
        state.profileChanged.connect(self._show_secure_boot_hint)

    def _fill_from_profile(self) -> None:
        profile = self.state.profile
        boot = profile.boot
        self._fill_kernels(self.state.resolution)
        self.bios_check.setChecked(boot.bios)
        self.uefi_check.setChecked(boot.uefi)
        self.timeout_spin.setValue(min(max(boot.timeout, 0), MAX_TIMEOUT_S))
        self.cmdline_edit.setText(boot.cmdline)
        self.copytoram_check.setChecked(boot.copytoram_entry)
        self.safe_check.setChecked(boot.safe_entry)
        self.secure_boot_combo.setCurrentIndex(
            max(self.secure_boot_combo.findData(boot.secure_boot), 0)
        )
        self._show_secure_boot_hint(profile)

    @Slot(object)
    def _show_secure_boot_hint(self, profile: Profile) -> None:
        self.secure_boot_hint.setText(secure_boot_hint(profile))

    @Slot(object)
    def _fill_kernels(self, resolution: Resolution | None) -> None:
        current = self.state.profile.kernel.package
        candidates = kernel_candidates(resolution)
        self._loading = True
        self.kernel_combo.clear()
        self.kernel_combo.addItem(AUTO_KERNEL, "")
        for name in candidates:
            self.kernel_combo.addItem(name, name)
        if current and current not in candidates:
            self.kernel_combo.addItem(f"{current} (not selected)", current)
        self.kernel_combo.setCurrentIndex(max(self.kernel_combo.findData(current), 0))
        self._loading = False
        if resolution is None:
            hint = "Load the package source to see which packages ship a kernel."
        elif not candidates:
            hint = "No selected package ships a kernel: select one on the Packages page."
        else:
            hint = f"Selected packages with a kernel: {', '.join(candidates)}"
        self.kernel_hint.setText(hint)

    @Slot(int)
    def _on_kernel(self, index: int) -> None:
        if not self._loading and index >= 0:
            self.state.update("kernel", package=self.kernel_combo.itemData(index))

    def _set_boot(self, **changes: object) -> None:
        if not self._loading:
            self.state.update("boot", **changes)

"""Take the writer page's screenshots (docs/screenshots/writer-*.png) under Xvfb, as root.

    python docs/screenshots/writer_screenshots.py

runs itself twice under `xvfb-run` with the real xcb platform:
  * `list`: under `umockdev-wrapper`, with a mocked SanDisk USB stick and a SATA system disk,
    so the drive list shows what a user with a stick plugged in sees (the system disk only
    with "Show all disks"); the confirmation dialog is the page's own, for that stick.
  * `write`: a real write of a 1.5 GiB image to a `--direct-io=on` loop device named in the
    "device or file" field: mid-write progress, then the result.
  * `multi`: three loop devices offered in the list as sticks and all chosen (Ctrl+A), one
    of them on a too-small tmpfs, so it dies part-way: the setup with three drives chosen,
    the progress with a bar per stick, and the result naming the stick that failed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from xvfb import HERE, ROOT, rerun_under_xvfb, settle, wait

WINDOW = (980, 700)
MiB = 1 << 20


def make_image(folder: Path, size: int) -> Path:
    """A hybrid-looking image (MBR at 510) with a SHA256SUMS file beside it."""
    image = folder / "livesmith-1.0-amd64.iso"
    with open(image, "wb") as fh:
        fh.write(os.urandom(MiB))
        fh.truncate(size)
    subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(image)],
                   input="label: dos\nstart=2048, type=0, bootable\n", text=True, check=True)
    digest = hashlib.sha256()
    with open(image, "rb") as fh:
        while chunk := fh.read(8 * MiB):
            digest.update(chunk)
    (folder / "SHA256SUMS").write_text(f"{digest.hexdigest()}  {image.name}\n")
    return image




def main() -> None:
    if len(sys.argv) == 1:
        rerun_under_xvfb(__file__, "list", wrapper=["umockdev-wrapper"])
        rerun_under_xvfb(__file__, "write")
        rerun_under_xvfb(__file__, "multi")
        return
    sys.path.insert(0, str(ROOT))
    from PySide6.QtWidgets import QApplication

    app = QApplication([sys.argv[0]])
    app.setApplicationName("Livesmith")
    with tempfile.TemporaryDirectory(prefix="livesmith-shots-") as tmp:
        if sys.argv[1] == "list":
            shoot_list(app, Path(tmp))
        elif sys.argv[1] == "multi":
            shoot_multi(app, Path(tmp))
        else:
            shoot_write(app, Path(tmp))


def window_with(page: object) -> object:
    from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

    window = QWidget()
    window.setWindowTitle("Livesmith — Write to USB")
    layout = QVBoxLayout(window)
    layout.addWidget(QLabel("<b>Write to USB</b>"))
    layout.addWidget(page)  # type: ignore[arg-type]
    window.resize(*WINDOW)
    window.move(0, 0)
    window.show()
    return window






def save_window(window: object, name: str) -> None:
    window.grab().save(str(HERE / name))  # type: ignore[attr-defined]
    print("saved", HERE / name)


def save_screen(app: object, name: str, width: int, height: int) -> None:
    screen = app.primaryScreen()  # type: ignore[attr-defined]
    screen.grabWindow(0, 0, 0, width, height).save(str(HERE / name))
    print("saved", HERE / name)


def shoot_list(app: object, tmp: Path) -> None:
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    from app.usb.target import Target, TargetKind
    from tests.app.usb.umock_support import GB, add_sata_disk, add_usb_stick
    from ui.drive_model import DriveListModel
    from ui.writer_page import Preflight, WriterPage

    testbed = UMockdev.Testbed.new()
    add_sata_disk(testbed)
    add_usb_stick(testbed, size=16 * GB, vendor="SanDisk", model="Ultra", partitions=1)
    image = make_image(tmp, 1536 * MiB)
    model = DriveListModel(include_excluded=True, mounts=[], swaps=[])
    page = WriterPage(model=model)
    window = window_with(page)
    page.set_image(image)
    wait(app, lambda: page.checksum is not None and model.rowCount() >= 2)
    page.drive_view.setCurrentIndex(page.drives.index(0, 0))
    settle(app)
    save_window(window, "writer-page.png")

    drive = page.selected_drive()
    assert drive is not None
    target = Target(Path(drive.devnode), TargetKind.BLOCK, drive.size, 512, False,
                    f"{drive.vendor} {drive.model} {drive.serial}", drive.devno)
    page.machine.check()
    page._confirm([(Preflight(target, ()), drive)])
    settle(app, 0.5)
    save_screen(app, "writer-confirm.png", *WINDOW)
    if page.confirm_box is not None:
        page.confirm_box.reject()
    page.show_all_check.setChecked(True)
    settle(app)
    save_window(window, "writer-all-disks.png")
    page.shutdown()
    window.close()  # type: ignore[attr-defined]


def shoot_write(app: object, tmp: Path) -> None:
    from PySide6.QtWidgets import QPushButton

    from ui.writer_page import WriterPage

    image = make_image(tmp, 1536 * MiB)
    backing = tmp / "stick.img"
    with open(backing, "wb") as fh:
        fh.truncate(1600 * MiB)
    node = subprocess.run(["losetup", "--find", "--show", "--direct-io=on", str(backing)],
                          capture_output=True, text=True, check=True).stdout.strip()
    try:
        page = WriterPage()
        window = window_with(page)
        page.set_image(image)
        wait(app, lambda: page.checksum is not None)
        page.target_edit.setText(node)
        page.use_typed_target()
        wait(app, lambda: page.target_path() == node)
        settle(app)
        page.start_write()
        wait(app, lambda: page.confirm_box is not None)
        box = page.confirm_box
        assert box is not None
        button = box.findChild(QPushButton, "confirmErase")
        button.click()
        shot = {"done": False}

        def at_progress(_done: int, _total: int) -> None:
            value = page.progress_bar.value()
            if not shot["done"] and 350 <= value and "/s" in page.speed_label.text():
                shot["done"] = True
                save_window(window, "writer-progress.png")

        wait(app, lambda: page.run.task(0) is not None)
        task = page.run.task(0)
        assert task is not None
        task.progressChanged.connect(at_progress)
        wait(app, lambda: page.outcome is not None and not page.busy(), timeout=300)
        settle(app)
        save_window(window, "writer-result.png")
        page.shutdown()
        window.close()  # type: ignore[attr-defined]
    finally:
        subprocess.run(["losetup", "-d", node], check=False)


def shoot_multi(app: object, tmp: Path) -> None:
    import dataclasses

    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QPushButton

    from app.usb.drives import list_drives
    from ui.writer_page import WriterPage

    image = make_image(tmp, 512 * MiB)
    small = tmp / "small-fs"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160M", "tmpfs", str(small)], check=True)
    nodes: list[str] = []
    try:
        for folder, name, direct in ((tmp, "a", "on"), (small, "b", "off"), (tmp, "c", "on")):
            backing = folder / f"{name}.img"
            with open(backing, "wb") as fh:
                fh.truncate(600 * MiB)
            nodes.append(subprocess.run(
                ["losetup", "--find", "--show", f"--direct-io={direct}", str(backing)],
                capture_output=True, text=True, check=True).stdout.strip())
        page = WriterPage()
        window = window_with(page)
        page.set_image(image)
        wait(app, lambda: page.checksum is not None)
        page.model.stop()
        settle(app)
        listed = {d.devnode: d for d in list_drives(include_excluded=True)}
        names = [("SanDisk", "Ultra"), ("Kingston", "DataTraveler"), ("Samsung", "BAR Plus")]
        page.model.set_drives([
            dataclasses.replace(listed[node], vendor=vendor, model=model, excluded_reason=None)
            for node, (vendor, model) in zip(nodes, names, strict=True)
        ])
        page.drive_view.setFocus()
        QTest.keyClick(page.drive_view, Qt.Key.Key_Down)
        QTest.keyClick(page.drive_view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
        settle(app)
        save_window(window, "writer-multi-setup.png")
        page.start_write()
        wait(app, lambda: page.confirm_box is not None)
        settle(app, 0.5)
        save_screen(app, "writer-multi-confirm.png", *WINDOW)
        box = page.confirm_box
        assert box is not None
        box.findChild(QPushButton, "confirmErase").click()
        shot = {"done": False}

        def at_progress() -> bool:
            rows = page.progress_view.rows
            return len(rows) == 3 and all(r.bar.value() >= 200 for r in (rows[0], rows[2]))

        wait(app, lambda: at_progress() or page.outcome is not None, timeout=300)
        if page.outcome is None:
            settle(app, 0.2)
            save_window(window, "writer-multi-progress.png")
            shot["done"] = True
        wait(app, lambda: page.outcome is not None and not page.busy(), timeout=300)
        settle(app)
        if page.error_box is not None:
            page.error_box.close()
        settle(app)
        save_window(window, "writer-multi-result.png")
        print("progress shot:", shot["done"])
        page.shutdown()
        window.close()  # type: ignore[attr-defined]
    finally:
        for node in nodes:
            subprocess.run(["losetup", "-d", node], check=False)
        subprocess.run(["umount", "-l", str(small)], check=False)


if __name__ == "__main__":
    main()

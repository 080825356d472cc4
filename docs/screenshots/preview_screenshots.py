"""Take the ISO preview's screenshots (docs/screenshots/preview-*.png) under Xvfb.

    python docs/screenshots/preview_screenshots.py

runs itself under `xvfb-run` with the real xcb platform and shows Debian's ipxe.iso
(El Torito for BIOS and UEFI, an isohybrid MBR) and grub-rescue-cdrom.iso with a search,
both taken from the packages the test suite downloads (tests/support/debian.py) and
copied to a "Downloads" folder, so the shots show a path a user would see.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from xvfb import HERE, ROOT, rerun_under_xvfb, settle

WINDOW = (1000, 720)






def shoot() -> None:
    sys.path.insert(0, str(ROOT))
    from PySide6.QtWidgets import QApplication

    from tests.support.debian import packaged_file
    from ui.preview_view import PreviewView

    app = QApplication([sys.argv[0]])
    app.setApplicationName("Livesmith")
    view = PreviewView()
    view.setWindowTitle("Livesmith — Inspect an ISO")
    view.resize(*WINDOW)
    view.move(0, 0)
    view.show()
    shots = [("ipxe", "ipxe.iso", "", None, "preview-ipxe.png"),
             ("grub-rescue-pc", "grub-rescue-cdrom.iso", "eltorito",
              "/boot/grub/i386-pc/eltorito.img", "preview-search.png")]
    downloads = Path(tempfile.mkdtemp(prefix="livesmith-shots-")) / "Downloads"
    downloads.mkdir()
    for package, name, search, selected, shot in shots:
        done: list[object] = []
        view.loaded.connect(done.append)
        iso = Path(shutil.copy(packaged_file(package, name), downloads / name))
        view.load(iso)
        while not done:
            settle(app, 0.05)
        view.loaded.disconnect(done.append)
        view.set_search(search)
        if selected:
            view.select_path(selected)
        view.tree.setFocus()
        settle(app)
        view.grab().save(str(HERE / shot))
        print("saved", HERE / shot)
    view.shutdown()
    shutil.rmtree(downloads.parent)


if __name__ == "__main__":
    if len(sys.argv) == 1:
        rerun_under_xvfb(__file__, "shoot")
    else:
        shoot()

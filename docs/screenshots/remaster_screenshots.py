"""Take the remaster dialog's screenshots (docs/screenshots/remaster-*.png) under Xvfb.

    python docs/screenshots/remaster_screenshots.py

runs itself under `xvfb-run` with the real xcb platform: GRUB's rescue CD (Debian's
grub-rescue-pc, /usr/lib/grub-rescue) in the preview, "Remaster…" with a file dropped in,
the boot menu edited and a folder removed (remaster-changes.png), then the new image
written with its boot setup kept (remaster-done.png).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from xvfb import HERE, ROOT, rerun_under_xvfb, settle, wait

GRUB_RESCUE_ISO = Path("/usr/lib/grub-rescue/grub-rescue-cdrom.iso")


def shoot() -> None:
    sys.path.insert(0, str(ROOT))
    from PySide6.QtWidgets import QApplication

    from ui.preview_view import PreviewView

    app = QApplication([sys.argv[0]])
    app.setApplicationName("Livesmith")
    downloads = Path(tempfile.mkdtemp(prefix="livesmith-shots-")) / "Downloads"
    downloads.mkdir()
    iso = Path(shutil.copy(GRUB_RESCUE_ISO, downloads / GRUB_RESCUE_ISO.name))
    view = PreviewView()
    view.resize(1000, 720)
    view.show()
    done: list[object] = []
    view.loaded.connect(done.append)
    view.load(iso)
    wait(app, lambda: done)
    view.select_path("/boot/grub/grub.cfg")
    dialog = view.open_remaster()
    assert dialog is not None
    dialog.move(40, 40)
    notes = downloads / "notes.txt"
    notes.write_text("added by the remaster dialog\n")
    dialog.add_local_files([notes])
    editor = dialog.edit_path()
    assert editor is not None
    editor.editor.setPlainText(editor.editor.toPlainText() + "\n# edited\n")
    editor.accept()
    dialog.path_edit.setText("/boot/grub/fonts")
    dialog.remove_path()
    dialog.label_edit.setText("RESCUE_NEW")
    settle(app)
    dialog.grab().save(str(HERE / "remaster-changes.png"))
    print("saved", HERE / "remaster-changes.png")
    finished: list[object] = []
    dialog.remastered.connect(finished.append)
    dialog.start()
    wait(app, lambda: finished)
    settle(app)
    dialog.grab().save(str(HERE / "remaster-done.png"))
    print("saved", HERE / "remaster-done.png")
    view.shutdown()
    shutil.rmtree(downloads.parent)


if __name__ == "__main__":
    if len(sys.argv) == 1:
        rerun_under_xvfb(__file__, "shoot")
    else:
        shoot()

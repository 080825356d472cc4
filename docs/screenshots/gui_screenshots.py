"""Take the main window's screenshots (start screen, every wizard page, a build, the
preview of the built ISO) under Xvfb with the real xcb platform.

    python docs/screenshots/gui_screenshots.py

runs itself under `xvfb-run`. The packages are the test suite's real fixture set (a static
busybox and the Debian kernel repacked as a glaucus tree, plus two small packages with a
dependency), so the build is real and takes seconds (RAM mode). Settings go to a temporary
folder, never to the user's.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from xvfb import HERE, ROOT, rerun_under_xvfb, settle, wait

WINDOW = (1000, 720)








def shoot() -> None:
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="livesmith-shots-"))
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication, QWizard

    from app.compose.profile import RootImageFormat, save_profile
    from tests.app.packages.fixtures import text_package
    from tests.support.live_fixtures import live_glaucus_repo, live_profile
    from ui.main_window import MainWindow
    from ui.wizard.compose_wizard import PageId

    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.NativeFormat, scope, str(work / "settings"))
    app = QApplication([sys.argv[0]])
    app.setApplicationName("Livesmith")
    app.setOrganizationName("Livesmith")
    home = work / "home"
    repo = live_glaucus_repo(home, text_package(
        "handbook", "2.1", depends=("handbook-fonts",),
        extra={"description": "The live system's handbook pages"}),
        text_package("handbook-fonts", "2.0", extra={"description": "Fonts for the handbook"}),
        name="glaucus-packages")
    profile = replace(live_profile(repo, "handbook", fmt=RootImageFormat.RAM,
                                   name="rescue-stick", label="RESCUE_STICK"),
                      description="A small rescue system")
    saved = home / "rescue-stick.toml"
    save_profile(profile, saved)
    settings = QSettings(str(work / "settings" / "livesmith.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings)
    window.start.recent_profiles.add(saved)
    window.resize(*WINDOW)
    window.move(0, 0)
    window.show()

    def save(name: str) -> None:
        settle(app)
        window.grab().save(str(HERE / name))
        print("saved", HERE / name)

    window.open_profile_file(saved)
    wizard = window.wizard
    assert wizard is not None
    (home / "out").mkdir()
    wizard.set_output_path(home / "out" / "rescue-stick.iso")
    wizard.build_page.build_options = {"cache_dir": work / "cache"}
    page = wizard.packages_page
    wait(app, lambda: page.load_count > 0 and not page.busy())
    save("wizard-packages.png")
    for page_id, name in ((PageId.KERNEL_BOOT, "wizard-kernel.png"),
                          (PageId.SYSTEM, "wizard-system.png"),
                          (PageId.IMAGE, "wizard-image.png")):
        wizard.next()
        assert wizard.currentId() == page_id
        save(name)
    wizard.next()
    review = wizard.review_page
    wait(app, lambda: not review.checking() and review.last_check() is not None)
    save("wizard-review.png")

    build = wizard.build_page
    wizard.next()
    running = [title for title in build.view.stage_titles()[2:]]  # past validate and gather
    wait(app, lambda: any(build.view.stage_state(t).value == "running" for t in running)
         or not build.is_building(), timeout=60)
    save("wizard-build-running.png")
    wait(app, lambda: not build.is_building(), timeout=300)
    save("wizard-build-done.png")
    wizard.next()
    assert wizard.currentId() == PageId.PREVIEW
    view = wizard.preview_page.view
    wait(app, lambda: view.report() is not None)
    view.set_search("vmlinuz")
    save("wizard-preview.png")
    wizard.button(QWizard.WizardButton.FinishButton).click()
    window.go_start()  # with the profile and the new ISO in the recent lists
    save("start.png")
    window.close()
    shutil.rmtree(work)


if __name__ == "__main__":
    if len(sys.argv) == 1:
        rerun_under_xvfb(__file__, "shoot")
    else:
        shoot()

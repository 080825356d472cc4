"""PreviewView on real ISOs: one mastered here, Debian's ipxe and grub-rescue images.

Loading and extracting run on BackgroundTask threads; the tests wait for the view's signals.
"""

from __future__ import annotations

import filecmp
import os
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QTableWidget, QWidget

from app.errors import Cancelled
from app.iso.inspect import IsoReport
from tests.app.iso.mastering_helpers import xorriso_listing
from tests.conftest import is_root
from tests.support.debian import packaged_file
from tests.ui.iso_fixtures import make_source_tree, master, model_listing, source_listing
from ui.iso_tree import Column
from ui.preview_view import BUSY, CONTENT, EMPTY, PreviewView

LOAD_TIMEOUT = 60_000


@pytest.fixture(scope="module")
def mastered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("preview")
    tree = make_source_tree(base / "tree")
    return tree, master(tree, base / "preview-test.iso")


@pytest.fixture
def view(qtbot: Any) -> Iterator[PreviewView]:
    widget = PreviewView()
    qtbot.addWidget(widget)
    widget.resize(1000, 720)
    widget.show()
    yield widget
    widget.shutdown()


def load(qtbot: Any, view: PreviewView, iso: Path) -> IsoReport:
    with qtbot.waitSignal(view.loaded, timeout=LOAD_TIMEOUT) as blocker:
        view.load(iso)
        # load() returns at once: the inspection runs on a worker thread meanwhile.
        assert view.is_loading() and view.stack.currentIndex() == BUSY
    report = blocker.args[0]
    assert isinstance(report, IsoReport) and view.report() is report
    assert view.stack.currentIndex() == CONTENT and not view.is_loading()
    return report


def load_fails(qtbot: Any, view: PreviewView, path: Path) -> BaseException:
    with qtbot.waitSignal(view.failed, timeout=LOAD_TIMEOUT) as blocker:
        view.load(path)
    exc = blocker.args[0]
    assert isinstance(exc, BaseException)
    return exc


def table_rows(table: QTableWidget) -> list[list[str]]:
    def text(row: int, column: int) -> str:
        item = table.item(row, column)
        return item.text() if item is not None else ""

    return [[text(r, c) for c in range(table.columnCount())] for r in range(table.rowCount())]


def extract(qtbot: Any, view: PreviewView, inner: str, dest: Path) -> list[Path]:
    assert view.select_path(inner)
    assert view.extract_button.isEnabled()
    with qtbot.waitSignal(view.extracted, timeout=LOAD_TIMEOUT) as blocker:
        task = view.extract_selected_to(dest)
        assert task is not None and view.is_extracting()
        assert not view.extract_button.isEnabled()  # one extraction at a time
    assert not view.is_extracting() and view.extract_button.isEnabled()
    created = blocker.args[0]
    assert isinstance(created, list)
    return created


# --- a mastered ISO -------------------------------------------------------------------------------


def test_shows_the_mastered_tree_with_modes_sizes_and_owners(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path]
) -> None:
    tree, iso = mastered
    report = load(qtbot, view, iso)
    assert model_listing(view.proxy) == source_listing(tree)
    assert view.facts["file"].text() == str(iso)
    assert view.facts["label"].text() == "PREVIEW_TEST"
    assert view.facts["publisher"].text() == "LIVESMITH TESTS"
    assert view.facts["names"].text().startswith("Rock Ridge")
    assert f"{iso.stat().st_size:,} bytes" in view.facts["size"].text()
    assert view.title.text() == iso.name
    # No boot files were given: no El Torito, no partitions, and the verdict says so.
    assert view.eltorito_table.rowCount() == 0 and view.partition_table.rowCount() == 0
    assert view.usb_label.text() == (
        "Bootable from a USB stick: no — no partition table: "
        "CD only, will not boot from a USB stick"
    )
    assert view.cd_label.text().startswith("Bootable as a CD/DVD: no")
    assert view.count_label.text() == f"{len(report.files) - 1:,} entries"
    shown = model_listing(view.proxy)
    assert shown["/bin/setuid-tool"][2] == "-rwsr-xr-x"
    assert shown["/data/huge.bin"][1] == "1.5 MiB"
    if is_root():
        assert shown["/bin/private"][3] == "1000:100"
        assert shown["/link-to-readme"][3] == "42:43"


def test_the_search_field_filters_and_keeps_parents(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path]
) -> None:
    load(qtbot, view, mastered[1])
    qtbot.keyClicks(view.search, "needle")
    assert view.proxy.search() == ""  # the search runs when the typing pauses
    qtbot.waitUntil(lambda: view.proxy.search() == "needle", timeout=5_000)
    assert set(model_listing(view.proxy)) == {
        "/data",
        "/data/nested",
        "/data/nested/deeper",
        "/data/nested/deeper/needle.txt",
        "/docs",
        "/docs/Needle-Guide.md",
    }
    # The folders leading to the matches are opened, so the matches are on screen.
    deeper = view.proxy.mapFromSource(view.model.index_of("/data/nested/deeper"))
    assert view.tree.isExpanded(deeper)
    assert view.count_label.text().startswith("2 of ")
    # Enter goes to the first match, in the tree.
    qtbot.keyClick(view.search, Qt.Key.Key_Return)
    assert view.tree.hasFocus() or QApplication.focusWidget() is view.tree
    entry = view.selected_entry()
    assert entry is not None and entry.path == "/data/nested/deeper/needle.txt"
    view.search.clear()
    qtbot.waitUntil(lambda: view.proxy.search() == "", timeout=5_000)
    assert model_listing(view.proxy) == source_listing(mastered[0])
    assert view.count_label.text() == f"{view.model.entry_count():,} entries"


def test_extracting_a_file_gives_identical_bytes(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path], tmp_path: Path
) -> None:
    tree, iso = mastered
    load(qtbot, view, iso)
    created = extract(qtbot, view, "/data/huge.bin", tmp_path)
    assert created == [tmp_path / "huge.bin"]
    assert (tmp_path / "huge.bin").read_bytes() == (tree / "data" / "huge.bin").read_bytes()
    assert "Extracted /data/huge.bin" in view.extract_label.text()


def tree_snapshot(root: Path) -> dict[str, tuple[str, int, bytes | str]]:
    """relative path -> (kind, permission bits, bytes or link target), from lstat."""
    snapshot: dict[str, tuple[str, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                snapshot[rel] = ("symlink", 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                snapshot[rel] = ("dir", stat.S_IMODE(st.st_mode), b"")
            else:
                snapshot[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
    return snapshot


def test_extracting_a_folder_gives_the_same_tree(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path], tmp_path: Path
) -> None:
    tree, iso = mastered
    load(qtbot, view, iso)
    created = extract(qtbot, view, "/data", tmp_path)
    out = tmp_path / "data"
    assert created[0] == out and len(created) == 10  # data, 4 .bin, a link, nested, deeper, 2 .txt
    assert tree_snapshot(out) == tree_snapshot(tree / "data")
    comparison = filecmp.dircmp(out, tree / "data")
    assert not comparison.diff_files and not comparison.left_only and not comparison.right_only


def test_extracting_over_an_existing_file_is_refused_and_the_view_stays_usable(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path], tmp_path: Path
) -> None:
    load(qtbot, view, mastered[1])
    (tmp_path / "README.txt").write_text("mine")
    view.select_path("/README.txt")
    with qtbot.waitSignal(view.extractFailed, timeout=LOAD_TIMEOUT):
        view.extract_selected_to(tmp_path)
    assert view.error_box is not None and "refusing to overwrite" in view.error_box.text()
    assert (tmp_path / "README.txt").read_text() == "mine"
    view.error_box.close()
    assert extract(qtbot, view, "/README.txt", tmp_path / "copy.txt") == [tmp_path / "copy.txt"]


def test_nothing_selected_extracts_nothing(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path], tmp_path: Path
) -> None:
    load(qtbot, view, mastered[1])
    assert view.selected_entry() is None and not view.extract_button.isEnabled()
    assert view.extract_selected_to(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_open_containing_folder_and_write_request(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path]
) -> None:
    iso = mastered[1]
    assert not view.folder_button.isEnabled() and not view.write_button.isEnabled()
    load(qtbot, view, iso)
    opened: list[QUrl] = []

    def open_url(url: QUrl) -> bool:
        opened.append(url)
        return True

    view.open_url = open_url
    qtbot.mouseClick(view.folder_button, Qt.MouseButton.LeftButton)
    assert opened == [QUrl.fromLocalFile(str(iso.parent))]
    with qtbot.waitSignal(view.writeRequested) as blocker:
        qtbot.mouseClick(view.write_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [iso]
    # A desktop without a file manager: said in words, not silently ignored.
    view.open_url = lambda url: False
    assert not view.open_containing_folder()
    assert view.error_box is not None and str(iso.parent) in view.error_box.text()


def test_loading_runs_off_the_gui_thread(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path]
) -> None:
    gui = threading.get_ident()
    seen: list[int] = []
    task = view.load(mastered[1])
    # The step signal is queued to this thread: connecting after start() still hears it.
    task.stepChanged.connect(lambda _s: seen.append(threading.get_ident()))
    assert task.is_running() and view.is_loading()
    assert view.stack.currentIndex() == BUSY and view.report() is None
    assert not view.write_button.isEnabled()
    with qtbot.waitSignal(view.loaded, timeout=LOAD_TIMEOUT):
        pass
    assert view.report() is not None
    # The core ran in the task's thread; its signals were delivered in the GUI thread.
    assert seen and all(who == gui for who in seen)


# --- Debian's ISOs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("package", "name"), [("ipxe", "ipxe.iso"), ("grub-rescue-pc", "grub-rescue-cdrom.iso")]
)
def test_debian_isos_show_their_files_and_boot_entries(
    qtbot: Any, view: PreviewView, package: str, name: str
) -> None:
    iso = packaged_file(package, name)
    load(qtbot, view, iso)
    shown = model_listing(view.proxy)
    theirs = xorriso_listing(iso)  # an independent reader
    theirs.pop("/")
    assert set(shown) == set(theirs)
    for path, entry in theirs.items():
        assert shown[path][2] == stat.filemode(entry.mode), path
    assert view.facts["label"].text() == "ISOIMAGE"
    assert view.usb_label.text().startswith("Bootable from a USB stick: yes — MBR with boot code")
    eltorito = table_rows(view.eltorito_table)
    partitions = table_rows(view.partition_table)
    if package == "ipxe":
        assert [(r[1], r[2], r[4], r[5]) for r in eltorito] == [
            ("BIOS", "none", "/isolinux.bin", "yes"),
            ("UEFI", "none", "/efi.img", "yes"),
        ]
        assert eltorito[0][3] == "4 sectors (2.0 KiB)"
        assert [r[:3] for r in partitions] == [["MBR", "1", "Hidden HPFS/NTFS (0x17)"]]
        assert "BIOS only" in view.usb_label.text()
        assert view.cd_label.text() == (
            "Bootable as a CD/DVD: yes — El Torito entries for BIOS, UEFI"
        )
        assert set(shown) == {
            "/boot.cat",
            "/efi.img",
            "/ipxe.krn",
            "/isolinux.bin",
            "/isolinux.cfg",
            "/ldlinux.c32",
        }
    else:
        assert [(r[1], r[4]) for r in eltorito] == [("BIOS", "/boot/grub/i386-pc/eltorito.img")]
        assert [r[2] for r in partitions] == ["ISO 9660 (grub-mkrescue) (0xcd)"]
        assert "/boot/grub/i386-pc/eltorito.img" in shown


def test_the_boot_file_of_ipxe_extracts_like_xorriso(
    qtbot: Any, view: PreviewView, tmp_path: Path
) -> None:
    iso = packaged_file("ipxe", "ipxe.iso")
    load(qtbot, view, iso)
    extract(qtbot, view, "/isolinux.cfg", tmp_path / "ours.cfg")
    subprocess.run(
        [
            "xorriso",
            "-osirrox",
            "on",
            "-indev",
            str(iso),
            "-extract",
            "/isolinux.cfg",
            str(tmp_path / "theirs.cfg"),
        ],
        capture_output=True,
        check=True,
    )
    assert (tmp_path / "ours.cfg").read_bytes() == (tmp_path / "theirs.cfg").read_bytes()


# --- errors -----------------------------------------------------------------------------------


def test_a_file_that_is_not_an_iso_gives_a_clear_error_and_the_view_stays_usable(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.iso"
    notes.write_bytes(b"just some text, not an image\n" * 4000)
    exc = load_fails(qtbot, view, notes)
    assert view.error_box is not None
    assert "not an ISO 9660 image" in view.error_box.text()
    assert str(notes) in view.error_box.text()
    assert str(exc) == view.error_box.text()
    assert view.stack.currentIndex() == EMPTY and view.report() is None
    view.error_box.close()
    # Still usable: a real image loads, and a later failure keeps it on screen.
    report = load(qtbot, view, mastered[1])
    load_fails(qtbot, view, tmp_path)  # a directory
    assert view.error_box is not None and "is a directory" in view.error_box.text()
    assert view.report() is report and view.stack.currentIndex() == CONTENT
    assert view.write_button.isEnabled()
    load_fails(qtbot, view, tmp_path / "missing.iso")
    assert "does not exist" in view.error_box.text()
    assert model_listing(view.proxy) == source_listing(mastered[0])


def test_a_newer_load_replaces_a_running_one(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path]
) -> None:
    ipxe = packaged_file("ipxe", "ipxe.iso")
    reports: list[IsoReport] = []
    view.loaded.connect(reports.append)
    view.load(mastered[1])
    with qtbot.waitSignal(view.loaded, timeout=LOAD_TIMEOUT):
        view.load(ipxe)
    qtbot.waitUntil(lambda: not view._tasks, timeout=LOAD_TIMEOUT)
    assert [r.path for r in reports] == [ipxe]  # the first load's outcome is ignored
    assert view.title.text() == "ipxe.iso"


# --- drag and drop ------------------------------------------------------------------------------


def drag(view: PreviewView, *paths: Path, kind: type = QDragEnterEvent) -> Any:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = kind(
        QPoint(30, 30),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    event.ignore()
    QApplication.sendEvent(view, event)
    return event


def test_dropping_an_iso_loads_it(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path]
) -> None:
    iso = mastered[1]
    assert drag(view, iso).isAccepted()
    assert drag(view, iso, kind=QDragMoveEvent).isAccepted()
    with qtbot.waitSignal(view.loaded, timeout=LOAD_TIMEOUT) as blocker:
        assert drag(view, iso, kind=QDropEvent).isAccepted()
    assert blocker.args[0].path == iso


def test_other_drops_are_refused(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path], tmp_path: Path
) -> None:
    tree, iso = mastered
    text = tmp_path / "readme.txt"
    text.write_text("not an image")
    for paths in ([text], [iso, iso], [tree], [tmp_path / "gone.iso"]):
        assert not drag(view, *paths).isAccepted(), paths
        assert not drag(view, *paths, kind=QDropEvent).isAccepted(), paths
    assert not view.is_loading() and view.report() is None


# --- keyboard and accessibility -------------------------------------------------------------------


def test_ctrl_f_goes_to_the_search_field(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path]
) -> None:
    load(qtbot, view, mastered[1])
    view.activateWindow()
    view.tree.setFocus()
    qtbot.waitUntil(lambda: view.tree.hasFocus())
    view.search.setText("old")
    qtbot.keyClick(view.tree, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert view.search.hasFocus()
    assert view.search.selectedText() == "old"  # typing replaces the old search


def test_the_tree_is_keyboard_usable(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path]
) -> None:
    load(qtbot, view, mastered[1])
    assert view.tree.focusPolicy() & Qt.FocusPolicy.TabFocus
    view.activateWindow()
    view.tree.setFocus()
    qtbot.waitUntil(lambda: view.tree.hasFocus())
    qtbot.keyClick(view.tree, Qt.Key.Key_End)
    qtbot.keyClick(view.tree, Qt.Key.Key_Home)  # first row: the "bin" folder
    qtbot.keyClick(view.tree, Qt.Key.Key_Right)  # open it
    qtbot.keyClick(view.tree, Qt.Key.Key_Down)  # its first file
    entry = view.selected_entry()
    assert entry is not None and entry.path == "/bin/private"
    assert view.extract_button.isEnabled()


def test_every_control_has_an_accessible_name(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path]
) -> None:
    load(qtbot, view, mastered[1])
    view.select_path("/README.txt")
    controls = [
        w
        for w in view.findChildren(QWidget)
        if w.focusPolicy() & Qt.FocusPolicy.TabFocus and w.isVisibleTo(view)
    ]
    assert view.tree in controls and view.search in controls
    unnamed = [f"{type(w).__name__}:{w.objectName()}" for w in controls if not w.accessibleName()]
    assert not unnamed
    assert (
        view.tree.model().index(0, Column.NAME).data(Qt.ItemDataRole.AccessibleTextRole)
        == "Folder bin"
    )


@pytest.fixture(scope="module")
def thousand_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """More than 512 entries: inspection looks at the cancel flag after the first 512."""
    base = tmp_path_factory.mktemp("thousand")
    for i in range(1200):
        path = base / "tree" / f"d{i // 100:02d}" / f"f{i:04d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(i))
    return master(base / "tree", base / "thousand.iso")


def test_cancel_while_reading_goes_back_without_an_error_box(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path], thousand_files: Path
) -> None:
    report = load(qtbot, view, mastered[1])
    with qtbot.waitSignal(view.failed, timeout=LOAD_TIMEOUT) as blocker:
        view.load(thousand_files)
        assert view.busy_cancel.isVisible()
        qtbot.mouseClick(view.busy_cancel, Qt.MouseButton.LeftButton)
    assert isinstance(blocker.args[0], Cancelled)
    assert view.error_box is None  # the user asked for it: nothing to report
    assert view.report() is report and view.stack.currentIndex() == CONTENT
    assert load(qtbot, view, thousand_files).path == thousand_files
    assert view.model.entry_count() == 1200 + 12


# --- dialogs and the main window -------------------------------------------------------------


def test_open_iso_asks_without_blocking_and_loads_the_choice(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path]
) -> None:
    iso = mastered[1]
    qtbot.mouseClick(view.open_button, Qt.MouseButton.LeftButton)
    dialog = view.file_dialog
    assert dialog is not None and dialog.isVisible()  # open() returned: the loop goes on
    with qtbot.waitSignal(view.loaded, timeout=LOAD_TIMEOUT) as blocker:
        dialog.selectFile(str(iso))
        dialog.accept()
    assert blocker.args[0].path == iso
    assert view.file_dialog is None  # answered dialogs are not kept


def test_extract_asks_for_a_folder_and_extracts_into_it(
    qtbot: Any, view: PreviewView, mastered: tuple[Path, Path], tmp_path: Path
) -> None:
    tree, iso = mastered
    load(qtbot, view, iso)
    view.select_path("/docs")
    qtbot.mouseClick(view.extract_button, Qt.MouseButton.LeftButton)
    dialog = view.file_dialog
    assert dialog is not None and dialog.isVisible()
    with qtbot.waitSignal(view.extracted, timeout=LOAD_TIMEOUT):
        dialog.selectFile(str(tmp_path))
        dialog.accept()
    assert tree_snapshot(tmp_path / "docs") == tree_snapshot(tree / "docs")


def test_the_main_window_inspects_an_image_and_hands_it_to_the_writer(
    qtbot: Any, settings: Any, mastered: tuple[Path, Path]
) -> None:
    from ui.main_window import MainWindow

    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.show()
    iso = mastered[1]
    window.open_inspect(iso)
    view = window.inspector
    assert isinstance(view, PreviewView)
    qtbot.waitUntil(lambda: view.report() is not None, timeout=LOAD_TIMEOUT)
    assert window.pages.currentWidget() is window.inspect_frame
    qtbot.mouseClick(view.write_button, Qt.MouseButton.LeftButton)
    assert window.pages.currentWidget() is window.writer_frame
    assert window.writer.image() == iso
    window.close()

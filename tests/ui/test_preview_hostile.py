"""The preview on hostile images: names and ids from the image are shown as text, never as
markup (a QLabel or tooltip would render "<h1>" and load "<img src=…>")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QLabel, QMessageBox

from app.display import printable
from app.errors import InputError
from tests.app.hostile_iso import (
    APPLICATION,
    GPT_NAME,
    HTML_NAME,
    LABEL,
    LINK_NAME,
    LINK_TARGET,
    PUBLISHER,
    SLASH_NAME,
    make_hostile_iso,
    rename_gpt_partition,
)
from tests.app.iso.test_inspect import make_isohybrid_gpt_iso
from tests.ui.test_preview_view import LOAD_TIMEOUT, load
from ui.errors import show_error
from ui.iso_tree import AMBIGUOUS_NOTE, Column
from ui.preview_view import PreviewView


@pytest.fixture(scope="module")
def hostile_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hostile_iso(tmp_path_factory.mktemp("hostile") / "hostile.iso")


@pytest.fixture
def view(qtbot: Any) -> Iterator[PreviewView]:
    widget = PreviewView()
    qtbot.addWidget(widget)
    widget.resize(1000, 720)
    widget.show()
    yield widget
    widget.shutdown()


def rendered(tooltip: str) -> str:
    """What Qt shows for a tooltip: rich text if it looks like it, else the text itself."""
    if not GuiQt.mightBeRichText(tooltip):
        return tooltip
    document = QTextDocument()
    document.setHtml(tooltip)
    return document.toPlainText()


def all_indexes(view: PreviewView, parent: QModelIndex | None = None) -> list[QModelIndex]:
    parent = parent or QModelIndex()
    found = []
    for row in range(view.model.rowCount(parent)):
        index = view.model.index(row, 0, parent)
        found.append(index)
        found += all_indexes(view, index)
    return found


def test_volume_ids_are_shown_literally(qtbot: Any, view: PreviewView, hostile_iso: Path) -> None:
    load(qtbot, view, hostile_iso)
    assert view.facts["label"].text() == LABEL
    assert view.facts["publisher"].text() == PUBLISHER
    assert view.facts["application"].text() == printable(APPLICATION)
    assert printable(APPLICATION) == "<img src=/etc/hostname>\\x1b]0;app\\x07"
    # Every label the view makes itself (they have object names) shows plain text; the
    # others are the form's row titles, which are ours.
    ours = [label for label in view.findChildren(QLabel) if label.objectName()]
    assert len(ours) >= 12
    assert [
        label.objectName() for label in ours if label.textFormat() != Qt.TextFormat.PlainText
    ] == []


def test_tree_tooltips_show_names_literally(
    qtbot: Any, view: PreviewView, hostile_iso: Path
) -> None:
    load(qtbot, view, hostile_iso)
    tips = {rendered(index.data(Qt.ItemDataRole.ToolTipRole)) for index in all_indexes(view)}
    assert "/" + HTML_NAME in tips
    assert f"/{LINK_NAME} → {printable(LINK_TARGET)}" in tips
    target = view.model.index_of("/" + LINK_NAME, Column.TARGET)
    assert rendered(target.data(Qt.ItemDataRole.ToolTipRole)) == f"/{LINK_NAME} → \\x1b[2Jtarget"


def test_partition_names_are_shown_literally(qtbot: Any, view: PreviewView, tmp_path: Path) -> None:
    iso = make_isohybrid_gpt_iso(tmp_path)
    rename_gpt_partition(iso, 1, GPT_NAME)
    load(qtbot, view, iso)
    table = view.partition_table
    flags = [table.item(row, table.columnCount() - 1) for row in range(table.rowCount())]
    shown = "“\\x1b]0;gpt\\x07\\n<b>G</b>”"
    assert [item.text() for item in flags if "gpt" in item.text()] == [shown]
    assert [rendered(item.toolTip()) for item in flags if "gpt" in item.text()] == [shown]


def test_error_messages_are_plain_text(qtbot: Any) -> None:
    box = show_error(None, InputError("<b>x</b><img src=/etc/hostname>", where="<h1>w</h1>"))
    qtbot.addWidget(box)
    assert box.textFormat() == Qt.TextFormat.PlainText
    label = box.findChild(QLabel, "qt_msgbox_label")
    assert label is not None and label.textFormat() == Qt.TextFormat.PlainText
    assert label.text() == "<h1>w</h1>: <b>x</b><img src=/etc/hostname>"
    assert isinstance(box, QMessageBox)


def test_a_name_with_a_slash_invents_no_folders_and_is_not_extracted(
    qtbot: Any, view: PreviewView, hostile_iso: Path, tmp_path: Path
) -> None:
    report = load(qtbot, view, hostile_iso)
    assert view.model.entry_count() == len(report.files) - 1  # one row per entry, no more
    folder = view.model.index_of("/dd")
    names = [view.model.index(r, 0, folder).data() for r in range(view.model.rowCount(folder))]
    assert names == ["<a href=x>y<∕a>", "plain.txt"]
    slashed = view.model.index(0, 0, folder)
    assert SLASH_NAME == "<a href=x>y</a>" and view.model.is_ambiguous(slashed)
    assert (
        rendered(slashed.data(Qt.ItemDataRole.ToolTipRole))
        == f"/dd/<a href=x>y<∕a> ({AMBIGUOUS_NOTE})"
    )

    view.tree.setCurrentIndex(view.proxy.mapFromSource(slashed))
    assert view.choose_destination() is None and view.extract_selected_to(tmp_path) is None
    assert not view.is_extracting() and list(tmp_path.iterdir()) == []
    assert view.error_box is not None
    assert view.error_box.text() == (
        "/dd/<a href=x>y<∕a>: cannot extract this entry: "
        f"{AMBIGUOUS_NOTE} (the image holds a name with “/” "
        "in it, which no folder can hold)"
    )
    assert view.extract_label.text() == f"Cannot extract /dd/<a href=x>y<∕a>: {AMBIGUOUS_NOTE}."

    assert view.select_path("/dd/plain.txt")  # its neighbour extracts as before
    with qtbot.waitSignal(view.extracted, timeout=LOAD_TIMEOUT):
        view.extract_selected_to(tmp_path)
    assert (tmp_path / "plain.txt").read_bytes() == b"plain\n"

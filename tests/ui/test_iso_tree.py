"""IsoTreeModel and IsoTreeFilter over real ISOs: the tree, the columns, sorting and search."""

from __future__ import annotations

import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, Qt

from app.iso.inspect import IsoEntry, IsoReport, inspect_iso
from tests.support.debian import packaged_file
from tests.ui.iso_fixtures import (
    HUGE,
    LARGE,
    MEDIUM,
    SMALL,
    make_source_tree,
    master,
    model_listing,
    source_listing,
)
from ui.iso_tree import (
    ENTRY_ROLE,
    PATH_ROLE,
    Column,
    IsoTreeFilter,
    IsoTreeModel,
    human_size,
    mode_text,
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IsoReport]:
    base = tmp_path_factory.mktemp("tree-model")
    tree = make_source_tree(base / "tree")
    return tree, inspect_iso(master(tree, base / "tree.iso"))


def model_for(report: IsoReport) -> tuple[IsoTreeModel, IsoTreeFilter]:
    model = IsoTreeModel()
    model.set_entries(report.files)
    proxy = IsoTreeFilter()
    proxy.setSourceModel(model)
    return model, proxy


def top_names(model: Any, parent: QModelIndex | None = None) -> list[str]:
    parent = parent or QModelIndex()
    return [model.index(r, 0, parent).data() for r in range(model.rowCount(parent))]


def test_the_tree_is_the_source_tree(source: tuple[Path, IsoReport]) -> None:
    tree, report = source
    model, _ = model_for(report)
    shown = model_listing(model)
    assert shown == source_listing(tree)
    assert model.entry_count() == len(report.files) - 1 == len(shown)
    # Spot checks, so a broken comparison cannot pass unnoticed.
    assert shown["/bin/setuid-tool"][2] == "-rwsr-xr-x"
    assert shown["/shared"][2] == "drwxrwxrwt"
    assert shown["/data/huge.bin"][1] == "1.5 MiB"
    assert shown["/data/link-dangling"][4] == "/nowhere/at/all"
    assert top_names(model) == [
        "README.txt",
        "bin",
        "data",
        "docs",
        "empty",
        "link-to-readme",
        "shared",
    ]


def test_index_parent_round_trip_passes_qt_model_tester(
    qtmodeltester: Any, source: tuple[Path, IsoReport]
) -> None:
    model, proxy = model_for(source[1])
    # pytest-qt's Python checks: PySide6 6.11's QAbstractItemModelTester fails to construct.
    qtmodeltester.check(model, force_py=True)
    proxy.set_search("needle")
    qtmodeltester.check(proxy, force_py=True)


def test_lookups_by_path_and_entry(source: tuple[Path, IsoReport]) -> None:
    model, _ = model_for(source[1])
    index = model.index_of("/data/nested/deeper/needle.txt")
    assert index.isValid() and index.data() == "needle.txt"
    entry = model.entry(index)
    assert isinstance(entry, IsoEntry) and entry.size == len(b"found me\n")
    assert index.data(ENTRY_ROLE) is entry
    assert index.parent().data(PATH_ROLE) == "/data/nested/deeper"
    assert index.parent().parent().parent() == model.index_of("/data")
    assert not model.index_of("/no/such/file").isValid()
    assert not model.index_of("/").isValid()  # the root is the invisible root
    assert index.flags() & Qt.ItemFlag.ItemNeverHasChildren
    assert index.siblingAtColumn(Column.TYPE).data() == "File"
    assert model.index_of("/data").siblingAtColumn(Column.TYPE).data() == "Folder"
    assert model.index_of("/link-to-readme").siblingAtColumn(Column.TYPE).data() == "Symbolic link"
    assert index.siblingAtColumn(Column.SIZE).data(Qt.ItemDataRole.ToolTipRole) == "9 bytes"


def test_sizes_sort_by_bytes_not_by_text(source: tuple[Path, IsoReport]) -> None:
    model, proxy = model_for(source[1])
    proxy.sort(Column.SIZE, Qt.SortOrder.AscendingOrder)
    data = proxy.mapFromSource(model.index_of("/data"))
    files = [n for n in top_names(proxy, data) if n.endswith(".bin")]
    assert files == ["small.bin", "medium.bin", "large.bin", "huge.bin"]
    texts = sorted(human_size(n) for n in (SMALL, MEDIUM, LARGE, HUGE))
    assert texts[0] == "1.5 MiB"  # as text it would have come first
    proxy.sort(Column.SIZE, Qt.SortOrder.DescendingOrder)
    data = proxy.mapFromSource(model.index_of("/data"))
    assert [n for n in top_names(proxy, data) if n.endswith(".bin")][0] == "huge.bin"


def test_names_sort_folders_first_case_insensitive(source: tuple[Path, IsoReport]) -> None:
    model, proxy = model_for(source[1])
    proxy.sort(Column.NAME, Qt.SortOrder.AscendingOrder)
    assert top_names(proxy) == [
        "bin",
        "data",
        "docs",
        "empty",
        "shared",
        "link-to-readme",
        "README.txt",
    ]


def test_search_keeps_the_folders_above_a_match(source: tuple[Path, IsoReport]) -> None:
    model, proxy = model_for(source[1])
    proxy.set_search("NEEDLE")  # case-insensitive
    shown = set(model_listing(proxy))
    assert shown == {
        "/data",
        "/data/nested",
        "/data/nested/deeper",
        "/data/nested/deeper/needle.txt",
        "/docs",
        "/docs/Needle-Guide.md",
    }
    opened = {i.data(PATH_ROLE) for i in proxy.expansions()}
    assert opened == {"/data", "/data/nested", "/data/nested/deeper", "/docs"}


def test_a_matching_folder_keeps_its_contents(source: tuple[Path, IsoReport]) -> None:
    model, proxy = model_for(source[1])
    proxy.set_search("nest")
    assert set(model_listing(proxy)) == {
        "/data",
        "/data/nested",
        "/data/nested/deeper",
        "/data/nested/deeper/needle.txt",
        "/data/nested/deeper/hay.txt",
    }
    assert {i.data(PATH_ROLE) for i in proxy.expansions()} == {"/data"}


def test_search_with_a_slash_matches_paths(source: tuple[Path, IsoReport]) -> None:
    model, proxy = model_for(source[1])
    proxy.set_search("deeper/h")
    assert set(model_listing(proxy)) == {
        "/data",
        "/data/nested",
        "/data/nested/deeper",
        "/data/nested/deeper/hay.txt",
    }
    proxy.set_search("no such name")
    assert proxy.rowCount() == 0
    proxy.set_search("")
    assert model_listing(proxy) == model_listing(model)


@pytest.mark.parametrize(
    ("package", "name"), [("ipxe", "ipxe.iso"), ("grub-rescue-pc", "grub-rescue-cdrom.iso")]
)
def test_debian_isos_show_every_entry(package: str, name: str) -> None:
    report = inspect_iso(packaged_file(package, name))
    model, _ = model_for(report)
    shown = model_listing(model)
    assert set(shown) == {f.path for f in report.files} - {"/"}
    for entry in report.files[1:]:
        assert shown[entry.path][2] == mode_text(entry)


def test_mode_text_is_like_ls() -> None:
    def entry(kind: str, mode: int | None) -> IsoEntry:
        return IsoEntry(path="/x", type=kind, size=0, mode=mode, uid=None, gid=None, target=None)

    assert mode_text(entry("dir", 0o755)) == stat.filemode(stat.S_IFDIR | 0o755)
    assert mode_text(entry("file", 0o2644)) == "-rw-r-Sr--"
    assert mode_text(entry("symlink", 0o777)) == "lrwxrwxrwx"
    assert mode_text(entry("file", None)) == "-?????????"  # no Rock Ridge
    assert mode_text(entry("other", 0o600)) == "?rw-------"


def listed(path: str, kind: str = "file") -> IsoEntry:
    return IsoEntry(path=path, type=kind, size=3, mode=None, uid=None, gid=None, target=None)


def test_an_entry_without_its_parent_folder_is_kept_without_inventing_folders() -> None:
    # The inspector lists every folder before its contents: a path whose folder was not
    # listed holds a name with "/" in it (a hostile image), not folders of its own.
    model = IsoTreeModel()
    model.set_entries([listed("/a/b/c.txt")])
    assert model.entry_count() == 1 and model.rowCount() == 1
    row = model.index(0, 0)
    assert row.data() == "a∕b∕c.txt" and model.is_ambiguous(row)
    assert row.siblingAtColumn(Column.OWNER).data() == "—"
    assert not model.index_of("/a").isValid()


def test_a_name_with_a_slash_stays_in_its_folder_and_is_marked() -> None:
    model = IsoTreeModel()
    model.set_entries(
        [
            listed("/", "dir"),
            listed("/d", "dir"),
            listed("/d/x/y</b>", "dir"),
            listed("/d/x/y</b>/inner.txt"),
            listed("/d/plain.txt"),
            listed("/e.txt"),
        ]
    )
    assert model.entry_count() == 5
    assert top_names(model) == ["d", "e.txt"]
    folder = model.index_of("/d")
    assert top_names(model, folder) == ["x∕y<∕b>", "plain.txt"]
    slashed = model.index(0, 0, folder)
    assert model.is_ambiguous(slashed)
    assert top_names(model, slashed) == ["inner.txt"]
    inner = model.index(0, 0, slashed)
    assert model.is_ambiguous(inner)  # inside an entry whose path is ambiguous
    assert model.shown_path(inner.internalId()) == "/d/x∕y<∕b>/inner.txt"
    assert not model.is_ambiguous(model.index_of("/d/plain.txt"))
    assert not model.is_ambiguous(model.index_of("/e.txt"))


def test_a_path_listed_twice_is_marked_ambiguous_the_second_time() -> None:
    model = IsoTreeModel()
    model.set_entries([listed("/a", "dir"), listed("/a/b"), listed("/a/b")])
    folder = model.index_of("/a")
    assert model.rowCount(folder) == 2
    first, second = model.index(0, 0, folder), model.index(1, 0, folder)
    assert model.index_of("/a/b") == first
    assert not model.is_ambiguous(first) and model.is_ambiguous(second)


def test_twenty_thousand_entries_build_sort_and_filter_quickly() -> None:
    entries = [IsoEntry(path="/", type="dir", size=0, mode=0o755, uid=0, gid=0, target=None)]
    for d in range(40):
        entries.append(
            IsoEntry(path=f"/d{d:02d}", type="dir", size=0, mode=0o755, uid=0, gid=0, target=None)
        )
        entries += [
            IsoEntry(
                path=f"/d{d:02d}/file-{i:05d}.txt",
                type="file",
                size=i,
                mode=0o644,
                uid=0,
                gid=0,
                target=None,
            )
            for i in range(500)
        ]
    started = time.monotonic()
    model = IsoTreeModel()
    model.set_entries(entries)
    proxy = IsoTreeFilter()
    proxy.setSourceModel(model)
    proxy.sort(Column.SIZE, Qt.SortOrder.DescendingOrder)
    proxy.set_search("file-00499")
    matches = len(proxy.expansions())
    elapsed = time.monotonic() - started
    assert model.entry_count() == 20_040
    assert matches == 40 and proxy.rowCount() == 40
    # Not a benchmark; a guard against quadratic building (typically well under a second).
    assert elapsed < 20


def test_an_image_without_rock_ridge_shows_unknown_modes_and_owners(tmp_path: Path) -> None:
    tree = make_source_tree(tmp_path / "tree")
    iso = tmp_path / "joliet.iso"
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "--norock", "-J", "-joliet-long", "-o", str(iso), str(tree)],
        capture_output=True,
        check=True,
    )
    report = inspect_iso(iso)
    assert report.name_source == "joliet"
    model, _ = model_for(report)
    needle = model.index_of("/data/nested/deeper/needle.txt")
    assert needle.isValid()  # Joliet keeps the long, mixed-case names
    row = {c: needle.siblingAtColumn(c).data() for c in Column}
    assert row[Column.MODE] == "-?????????" and row[Column.OWNER] == "—"
    assert row[Column.SIZE] == "9 B"

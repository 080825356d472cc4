"""Page 1, Packages: the package source, and which of its packages go into the system.

Opening a source and resolving the selection (dependencies, missing ones, conflicts) run on
a BackgroundTask, one at a time: the apt source runs apt-cache, which takes a second or more
and may fail offline. Requests that arrive meanwhile are queued (a reload wins over a
re-resolve, which reads the selection when it starts), so the table always ends up showing
the latest selection. The package source object is only ever used inside those tasks.

Choosing another source drops the loaded one at once and starts a new source generation:
a task still running for the old source reports into a generation that is gone, so its
result (or failure) is ignored and cannot refill the table. Adding by name and following
dependencies need a loaded source, so they stay disabled until the new one has loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.compose.profile import InstallMethod
from app.packages.model import PackageInfo, PackageSource, SourceKind, SourceSpec
from app.packages.resolve import Resolution, resolve
from app.packages.sources import open_source
from app.reporter import Reporter
from ui.dialogs import PathKind, choose_path
from ui.errors import show_error
from ui.settings import last_source_folder, remember_source_folder
from ui.wizard.common import StatePage, buddy_label, named
from ui.wizard.debian_options import DebianOptions
from ui.wizard.package_model import (
    DESCRIPTION,
    NAME,
    STATUS,
    PackageFilter,
    PackageTableModel,
    human_size,
)
from ui.wizard.state import WizardState
from ui.worker import BackgroundTask

ARCH_METHODS = (
    (InstallMethod.AUTO, "Automatic (pacman when dependencies are included)"),
    (InstallMethod.PACMAN, "pacman: run install scripts and hooks, in a sandbox"),
    (InstallMethod.UNPACK, "Unpack only: no install scripts"),
)

KIND_ORDER = (
    SourceKind.GLAUCUS,
    SourceKind.ARCH,
    SourceKind.TARBALLS,
    SourceKind.DEB,
    SourceKind.APT,
)


def problem_lines(resolution: Resolution | None) -> list[str]:
    """What is wrong with the selection, in words that say which packages."""
    if resolution is None:
        return []
    lines = [
        f"{by} needs {dep}, which is not in the package source" for dep, by in resolution.missing
    ]
    lines += [f"{a} conflicts with {b}; select only one" for a, b in resolution.conflicts]
    lines += [f"{name} is not in this package source" for name in resolution.unknown]
    return lines


class PackagesPage(StatePage):
    def __init__(self, state: WizardState, parent: QWidget | None = None) -> None:
        super().__init__(state, parent)
        self.file_dialog: QFileDialog | None = None
        self.setTitle("Packages")
        self.setSubTitle(
            "Choose where the packages come from and which ones to include. "
            "Their dependencies are added automatically."
        )
        self._source: PackageSource | None = None  # used only inside tasks
        self._source_generation = 0  # bumped whenever the loaded source is dropped
        self._task_generation = 0  # the generation the running (or just finished) task is for
        self._packages: list[PackageInfo] = []
        self._task: BackgroundTask | None = None
        self._pending: str | None = None  # "load" or "resolve"
        self.load_count = 0  # finished loads (tests wait on it)

        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.kind_combo = named(QComboBox(), "sourceKind", "Package source kind")
        for kind in KIND_ORDER:
            self.kind_combo.addItem(kind.title, kind)
        form.addRow("Package &source:", self.kind_combo)

        folder_row = QHBoxLayout()
        self.folder_edit = named(QLineEdit(), "sourceFolder", "Package source folder")
        self.folder_edit.setPlaceholderText("Folder with the packages")
        self.browse_button = named(
            QPushButton("Br&owse…"), "browseSource", "Browse for the package source folder"
        )
        self.load_button = named(QPushButton("&Load"), "loadSource", "Load the package list")
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.browse_button)
        folder_row.addWidget(self.load_button)
        self.folder_label = QLabel("&Folder:")
        self.folder_label.setBuddy(self.folder_edit)
        form.addRow(self.folder_label, folder_row)

        add_row = QHBoxLayout()
        self.add_edit = named(QLineEdit(), "addPackage", "Package name to add")
        self.add_edit.setPlaceholderText("Package name, e.g. busybox-static")
        self.add_button = named(QPushButton("&Add"), "addPackageButton", "Add the package")
        add_row.addWidget(self.add_edit, 1)
        add_row.addWidget(self.add_button)
        form.addRow(buddy_label("Add b&y name:", self.add_edit), add_row)

        self.follow_check = named(
            QCheckBox("Include &dependencies automatically"),
            "followDependencies",
            "Include dependencies automatically",
        )
        form.addRow("", self.follow_check)
        # Arch-style packages: pacman runs their install scripts and hooks (in a sandbox).
        self.arch_method_combo = named(
            QComboBox(), "archInstallMethod", "How Arch-style packages are installed"
        )
        for method, title in ARCH_METHODS:
            self.arch_method_combo.addItem(title, method)
        self.arch_method_label = buddy_label("&Install:", self.arch_method_combo)
        form.addRow(self.arch_method_label, self.arch_method_combo)
        self.search_edit = named(QLineEdit(), "packageSearch", "Search packages")
        self.search_edit.setPlaceholderText("Search names and descriptions")
        self.search_edit.setClearButtonEnabled(True)
        form.addRow("Sear&ch:", self.search_edit)
        layout.addLayout(form)
        self.debian_options = DebianOptions(state)
        layout.addWidget(self.debian_options)

        self.model = PackageTableModel(self)
        self.proxy = PackageFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = named(QTableView(), "packageTable", "Packages")
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table; arrows move inside
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(DESCRIPTION, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(STATUS, QHeaderView.ResizeMode.ResizeToContents)
        layout.addWidget(self.table, 1)

        self.problems_label = named(QLabel(), "packageProblems", "Package problems")
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet("color: #b00000;")
        self.problems_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.problems_label)
        self.total_label = named(QLabel(), "packageTotal", "Total size")
        self.status_label = named(QLabel(), "packageStatus", "Package source status")
        status_row = QHBoxLayout()
        status_row.addWidget(self.total_label, 1)
        status_row.addWidget(self.status_label)
        layout.addLayout(status_row)

        self._fill_from_profile()
        self.kind_combo.currentIndexChanged.connect(self._on_kind_changed)
        self.folder_edit.editingFinished.connect(self._on_folder_edited)
        self.browse_button.clicked.connect(self._browse)
        self.load_button.clicked.connect(self.load_source)
        self.add_button.clicked.connect(self._add_by_name)
        self.add_edit.returnPressed.connect(self._add_by_name)
        self.follow_check.toggled.connect(self._on_follow_toggled)
        self.arch_method_combo.currentIndexChanged.connect(
            lambda: self.state.update("packages", install=self.arch_method_combo.currentData())
        )
        self.search_edit.textChanged.connect(self.proxy.set_text)
        self.model.selectionToggled.connect(self._on_toggled)
        self._update_labels()
        self._enable_source_actions(False)
        if self._can_load(self.state.profile.packages.source):
            self.load_source()

    # -- profile <-> widgets --------------------------------------------------------------
    def _fill_from_profile(self) -> None:
        options = self.state.profile.packages
        spec = options.source
        if spec.kind is not SourceKind.APT and not spec.location:
            remembered = last_source_folder(self.state.settings, spec.kind)
            if remembered:
                spec = SourceSpec(spec.kind, remembered)
                self.state.update("packages", source=spec)
        self.kind_combo.setCurrentIndex(KIND_ORDER.index(spec.kind))
        self.folder_edit.setText(spec.location)
        self.follow_check.setChecked(options.follow_dependencies)
        offered = [m for m, _ in ARCH_METHODS]
        method = options.install if options.install in offered else InstallMethod.AUTO
        self.arch_method_combo.setCurrentIndex(offered.index(method))
        self._show_kind(spec.kind)
        self.model.set_packages([], options.packages, None)

    def _show_kind(self, kind: SourceKind) -> None:
        folder = kind is not SourceKind.APT
        # A folder of .deb files can sit beside a suite (mmdebstrap), so it shows them too.
        self.debian_options.setVisible(kind in (SourceKind.APT, SourceKind.DEB))
        self.arch_method_label.setVisible(kind is SourceKind.ARCH)
        self.arch_method_combo.setVisible(kind is SourceKind.ARCH)
        for widget in (self.folder_edit, self.browse_button):
            widget.setEnabled(folder)

    def selected(self) -> tuple[str, ...]:
        return self.state.profile.packages.packages

    def _set_selected(self, names: Sequence[str]) -> None:
        self.state.update("packages", packages=tuple(dict.fromkeys(names)))
        self.model.set_selection(self.selected(), self.state.resolution)
        self._update_labels()
        self._request("resolve")

    # -- user actions ---------------------------------------------------------------------
    @Slot(int)
    def _on_kind_changed(self, index: int) -> None:
        kind: SourceKind = self.kind_combo.itemData(index)
        folder = self.folder_edit.text().strip()
        if kind is not SourceKind.APT and not folder:
            folder = last_source_folder(self.state.settings, kind)
            self.folder_edit.setText(folder)
        self._show_kind(kind)
        self._source_changed()

    @Slot()
    def _on_folder_edited(self) -> None:
        if self.folder_edit.text().strip() != self.state.profile.packages.source.location:
            self._source_changed()

    def set_source(self, kind: SourceKind, folder: str = "") -> None:
        """Choose a source as the user would (kind, then folder) and load it."""
        self.folder_edit.setText(folder)
        if self.kind_combo.currentIndex() != KIND_ORDER.index(kind):
            self.kind_combo.setCurrentIndex(KIND_ORDER.index(kind))  # loads
        else:
            self._source_changed()

    def _source_changed(self) -> None:
        kind: SourceKind = self.kind_combo.currentData()
        location = "" if kind is SourceKind.APT else self.folder_edit.text().strip()
        spec = SourceSpec(kind, location)
        self.state.update("packages", source=spec)
        self._drop_source()
        self.model.set_packages([], self.selected(), None)
        self.state.set_resolution(None)
        self._update_labels()
        if self._can_load(spec):
            self.load_source()
        else:
            self.status_label.setText("Choose the folder with the packages.")

    @staticmethod
    def _can_load(spec: SourceSpec) -> bool:
        return spec.kind is SourceKind.APT or bool(spec.location)

    def _drop_source(self) -> None:
        """Forget the loaded source: what runs for it now reports into a past generation,
        and what needs a source waits for the next load."""
        self._source = None
        self._source_generation += 1
        self._packages = []
        self._enable_source_actions(False)

    def _enable_source_actions(self, enabled: bool) -> None:
        for widget in (self.add_edit, self.add_button, self.follow_check):
            widget.setEnabled(enabled)

    @Slot()
    def _browse(self) -> None:
        start = self.folder_edit.text() or str(Path.home())
        self.file_dialog = choose_path(
            self,
            title="Package source folder",
            start=start,
            kind=PathKind.FOLDER,
            name="sourceFolderDialog",
            on_chosen=self._folder_chosen,
        )

    def _folder_chosen(self, folder: Path) -> None:
        self.folder_edit.setText(str(folder))
        self._source_changed()

    @Slot()
    def _add_by_name(self) -> None:
        names = self.add_edit.text().replace(",", " ").split()
        if names:
            self.add_edit.clear()
            self._set_selected([*self.selected(), *names])

    @Slot(bool)
    def _on_follow_toggled(self, checked: bool) -> None:
        self.state.update("packages", follow_dependencies=checked)
        self._request("resolve")

    @Slot(str, bool)
    def _on_toggled(self, name: str, checked: bool) -> None:
        names = list(self.selected())
        if checked and name not in names:
            names.append(name)
        elif not checked:
            names = [n for n in names if n != name]
        self._set_selected(names)

    # -- background work ------------------------------------------------------------------
    @Slot()
    def load_source(self) -> None:
        self._request("load")

    def busy(self) -> bool:
        return self._task is not None or self._pending is not None

    def _request(self, what: str) -> None:
        if self._task is not None:
            if self._pending != "load":
                self._pending = what
            return
        if what == "resolve" and self._source is None:
            return  # nothing loaded yet; the load resolves the selection
        self._start(what)

    def _start(self, what: str) -> None:
        selected = self.selected()
        follow = self.state.profile.packages.follow_dependencies
        if what == "load":
            spec = self.state.profile.packages.source
            self._drop_source()
            self.status_label.setText(f"Loading {spec.kind.title}…")

            def work(reporter: Reporter) -> tuple[Any, ...]:
                source = open_source(spec)
                resolution = resolve(source, selected, follow_dependencies=follow)
                return spec, source, source.packages(), resolution

            task = BackgroundTask(work, self, name="livesmith-packages-load")
            task.finished.connect(self._on_loaded)
        else:
            source = self._source
            assert source is not None
            self.status_label.setText("Resolving dependencies…")

            def work(reporter: Reporter) -> tuple[Any, ...]:
                resolution = resolve(source, selected, follow_dependencies=follow)
                return selected, source.packages(), resolution

            task = BackgroundTask(work, self, name="livesmith-packages-resolve")
            task.finished.connect(self._on_resolved)
        task.failed.connect(self._on_failed)
        task.ended.connect(self._on_ended)
        self._task = task
        self._task_generation = self._source_generation
        task.start()

    @Slot(object)
    def _on_loaded(self, result: tuple[Any, ...]) -> None:
        spec, source, packages, resolution = result
        if self._task_generation != self._source_generation:
            return  # the user chose another source meanwhile
        self._source = source
        self._packages = packages
        self._enable_source_actions(True)
        remember_source_folder(self.state.settings, spec.kind, spec.location)
        self._show_resolution(packages, resolution, reset=True)
        self.state.source_loaded()
        self.load_count += 1

    @Slot(object)
    def _on_resolved(self, result: tuple[Any, ...]) -> None:
        _selected, packages, resolution = result
        if self._task_generation != self._source_generation:
            return  # resolved against a source the user has left
        self._show_resolution(packages, resolution, reset=len(packages) != len(self._packages))
        self._packages = packages

    def _show_resolution(
        self, packages: list[PackageInfo], resolution: Resolution, *, reset: bool
    ) -> None:
        self.state.set_resolution(resolution)
        if reset:
            self.model.set_packages(packages, self.selected(), resolution)
        else:
            self.model.set_selection(self.selected(), resolution)
        self.status_label.setText(f"{len(packages)} packages in the source")
        self._update_labels()

    @Slot(object)
    def _on_failed(self, exc: BaseException) -> None:
        if self._task_generation != self._source_generation:
            return  # the source the user has left failed; the current one is what counts
        self.status_label.setText("Could not load the package source.")
        self.state.set_resolution(None)
        show_error(self, exc)

    @Slot()
    def _on_ended(self) -> None:
        self._task = None
        pending, self._pending = self._pending, None
        if pending is not None:
            self._request(pending)

    def _update_labels(self) -> None:
        resolution = self.state.resolution
        self.problems_label.setText("\n".join(problem_lines(resolution)))
        self.problems_label.setVisible(bool(self.problems_label.text()))
        if resolution is None:
            self.total_label.setText(f"{len(self.selected())} selected")
            return
        packed = sum(p.size for p in resolution.packages)
        unpacked = sum(p.installed_size or 0 for p in resolution.packages)
        dependencies = len(resolution.packages) - sum(
            1 for p in resolution.packages if p.name in self.selected()
        )
        count = len(resolution.packages)
        text = (
            f"{count} package{'s' if count != 1 else ''} ({dependencies} as "
            f"dependencies), {human_size(packed)} to download"
        )
        if unpacked:
            text += f", {human_size(unpacked)} installed"
        self.total_label.setText(text)

    def shutdown(self) -> None:
        self._pending = None
        if self._task is not None:
            self._task.shutdown()

"""depmod indexes the live kernel's modules inside the staged root, and only there."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from app.compose.kmod import LIVE_MODULES, resolve_modules
from app.compose.live.modules import escaping_links, index_modules
from app.compose.manifest import Kind, RootManifest
from app.errors import StageError
from app.reporter import RecordingReporter
from tests.support.debian import kernel_tree


def staged_kernel(tmp_path: Path, lib: str = "lib") -> tuple[Path, str, Path]:
    """A root with the real Debian kernel's live modules (no index files) under <lib>."""
    _, mod_dir, version = kernel_tree()
    root = tmp_path / "root"
    folder = root / lib / "modules" / version
    for module in resolve_modules(mod_dir, LIVE_MODULES):
        target = folder / module.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(module.path, target)
    return root, version, folder


def test_depmod_writes_the_indexes_modprobe_reads(tmp_path: Path) -> None:
    root, version, folder = staged_kernel(tmp_path)
    manifest = RootManifest()
    written = index_modules(root, version, manifest, RecordingReporter(), stage="configure")

    assert {"modules.dep", "modules.dep.bin", "modules.alias", "modules.alias.bin"} <= set(written)
    dep = (folder / "modules.dep").read_text()
    sr_mod = next(line for line in dep.splitlines() if "/sr_mod.ko" in line)
    assert "/cdrom.ko" in sr_mod  # dependencies come from the modules' own .modinfo
    assert "virtio:d00000002v" in (folder / "modules.alias").read_text()  # virtio_blk
    for name in written:
        meta = manifest.get(f"lib/modules/{version}/{name}")
        assert meta is not None and meta.kind is Kind.FILE and meta.mode == 0o644
        assert meta.uid == 0 and meta.owner == ""

    # kmod's own modprobe resolves a module and its dependencies from the binary index.
    shown = subprocess.run(
        ["modprobe", "--dirname", str(root), "--set-version", version, "--show-depends", "sr_mod"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "cdrom.ko" in shown and "sr_mod.ko" in shown


def test_a_usr_merged_root_is_indexed_in_usr_lib(tmp_path: Path) -> None:
    root, version, folder = staged_kernel(tmp_path, lib="usr/lib")
    (root / "lib").symlink_to("usr/lib")
    index_modules(root, version, RootManifest(), RecordingReporter(), stage="configure")
    assert (folder / "modules.dep").stat().st_size > 0


def test_the_build_and_source_links_of_a_kernel_package_are_allowed(tmp_path: Path) -> None:
    root, version, folder = staged_kernel(tmp_path)
    (folder / "build").symlink_to(f"/usr/src/linux-headers-{version}")
    assert escaping_links(root, folder) == []
    index_modules(root, version, RootManifest(), RecordingReporter(), stage="configure")
    assert (folder / "modules.dep").is_file()


@pytest.mark.parametrize("target", ["/etc", "../../../../../etc", "/lib/modules"])
def test_a_link_that_leads_outside_the_root_is_refused_before_depmod_runs(
    tmp_path: Path, target: str
) -> None:
    root, version, folder = staged_kernel(tmp_path)
    (folder / "kernel" / "extra").symlink_to(target)
    with pytest.raises(StageError) as caught:
        index_modules(root, version, RootManifest(), RecordingReporter(), stage="configure")
    assert f"/lib/modules/{version}/kernel/extra" in caught.value.message
    assert "outside the system" in caught.value.message
    assert not (folder / "modules.dep").exists()


def test_a_relative_link_that_stays_inside_the_root_is_followed(tmp_path: Path) -> None:
    root, version, folder = staged_kernel(tmp_path)
    (root / "opt/extra").mkdir(parents=True)
    (folder / "kernel" / "extra").symlink_to("../../../../opt/extra")  # root/opt/extra
    assert escaping_links(root, folder) == []


def test_a_kernel_without_modules_is_left_alone(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    (tmp_path / "boot").mkdir()
    assert index_modules(tmp_path, "6.1.0-x", RootManifest(), reporter, stage="configure") == []
    assert any("no modules folder" in line for _, line in reporter.logs)

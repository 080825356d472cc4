"""The built-in `minimal` profile, end to end, from the Debian archive through host apt."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from app.compose.pipeline import checksum_file
from app.iso.inspect import inspect_iso
from tests.support.images import root_image_entries


def test_minimal_build_is_a_hybrid_live_iso(minimal_iso) -> None:
    iso = minimal_iso.iso
    assert iso.is_file() and minimal_iso.size == iso.stat().st_size
    digest = hashlib.sha256(iso.read_bytes()).hexdigest()
    assert checksum_file(iso).read_text() == f"{digest}  {iso.name}\n"
    report = inspect_iso(iso)
    names = {f.path for f in report.files}
    build_id = minimal_iso.build_id
    for expected in (
        "/live/vmlinuz",
        "/live/initramfs.img",
        "/live/rootfs.sfs",
        "/live/rootfs.sfs.sha512",
        f"/live/{build_id}.id",
        "/boot/syslinux/isolinux.bin",
        "/boot/syslinux/syslinux.cfg",
        "/boot/grub/grub.cfg",
        "/boot/grub/efi.img",
        "/EFI/BOOT/BOOTX64.EFI",
    ):
        assert expected in names, expected
    assert [e.platform for e in report.eltorito] == [0x00, 0xEF]
    assert report.hybrid, report.hybrid_reason
    assert report.partition_problems == []
    assert report.label == "LIVESMITH"


def test_the_system_area_passes_sgdisk_and_xorriso(minimal_iso) -> None:
    out = subprocess.run(["sgdisk", "-v", str(minimal_iso.iso)], capture_output=True, text=True)
    assert "No problems found" in out.stdout, out.stdout
    report = subprocess.run(
        [
            "xorriso",
            "-indev",
            str(minimal_iso.iso),
            "-report_el_torito",
            "plain",
            "-report_system_area",
            "plain",
        ],
        capture_output=True,
        text=True,
    ).stdout
    assert "El Torito boot img :   1  BIOS" in report and "UEFI" in report


def test_root_image_carries_root_ownership_and_the_live_config(minimal_iso, tmp_path: Path) -> None:
    entries = root_image_entries(minimal_iso.iso, tmp_path)
    assert entries["/bin/busybox"] == ["-rwxr-xr-x", "0/0"]
    assert entries["/etc/shadow"] == ["-rw-------", "0/0"]
    assert entries["/tmp"][0] == "drwxrwxrwt"
    assert entries["/sbin/init"][0].startswith("l")
    assert any(path.startswith("/lib/modules/") for path in entries)


def test_same_epoch_and_inputs_give_identical_bytes(
    build_iso, minimal_profile, minimal_iso
) -> None:
    again = build_iso(minimal_profile.with_changes(), "minimal-again")
    assert again.sha256 == minimal_iso.sha256


def test_cli_lists_builtin_profiles(livesmith_cmd) -> None:
    out = subprocess.run([*livesmith_cmd, "profiles"], capture_output=True, text=True, check=True)
    names = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    assert {"minimal", "rescue", "desktop"} <= set(names), out.stdout
    shown = subprocess.run(
        [*livesmith_cmd, "profiles", "--show", "minimal"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert 'name = "minimal"' in shown and 'kind = "apt"' in shown

"""Persistence on a real stick image, booted for real: `livesmith write --persistence rest`
puts the built `minimal` and `rescue` images on a 2 GiB disk (through a loop device;
`sgdisk -v` is clean and El Torito unchanged, `livesmith verify` passes), which then boots in QEMU as a UEFI USB stick (OVMF, xHCI). A file written in the first
boot is there in the second; the boot menu's "without persistence" entry does not see it.
The same disk file is used by every boot (the harness's medium copy is not used)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.compose.profile import builtin_profile
from tests.app.usb.writer_support import loop_device
from tests.conftest import ROOT, needs_root
from tests.integration.qemu import BootConfig, QemuSession

pytestmark = [pytest.mark.slow, needs_root, pytest.mark.root]

STICK_SIZE = 2 << 30
MENU_DOWN = "\x0e"  # Ctrl-N: GRUB's "next entry" key
NOPERSIST_INDEX = 3  # live, toram, safe, nopersist (app.compose.bootloader.default_menu)
PROOF = "/root/persistence-proof"


@pytest.fixture(scope="module", params=["minimal", "rescue"])
def built(request: pytest.FixtureRequest, build_iso):
    # The same keys as the other integration tests: each image is built once per session.
    return build_iso(builtin_profile(request.param), request.param)


def write_stick(iso: Path, stick: Path) -> str:
    with open(stick, "wb") as f:
        f.truncate(STICK_SIZE)
    with loop_device(stick) as node:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "app",
                "write",
                str(iso),
                node,
                "--yes",
                "--persistence",
                "rest",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr
        verify = subprocess.run(
            [sys.executable, "-m", "app", "verify", str(iso), node],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert verify.returncode == 0, verify.stderr
        assert "not compared" in verify.stdout
        # The built image's GPT, now with the new entry and the backup at the disk's end.
        gpt = subprocess.run(["sgdisk", "-v", node], capture_output=True, text=True)
        assert "No problems found" in gpt.stdout, gpt.stdout + gpt.stderr
        assert el_torito(node) == el_torito(iso)
    return out.stdout


def el_torito(disk: str | Path) -> list[str]:
    report = subprocess.run(
        ["xorriso", "-indev", f"stdio:{disk}", "-report_el_torito", "plain"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in report.stdout.splitlines() if line.startswith("El Torito")]


def boot(stick: Path) -> QemuSession:
    """A UEFI boot of `stick` itself as a USB stick (changes go to the file)."""
    return QemuSession(
        BootConfig(firmware="uefi", medium="none", image=None, memory_mb=1024),
        extra_args=(
            "-drive",
            f"if=none,id=stick,format=raw,file={stick}",
            "-device",
            "qemu-xhci,id=xhci",
            "-device",
            "usb-storage,bus=xhci.0,drive=stick,bootindex=0",
        ),
    )


def test_a_file_survives_a_reboot_but_not_the_entry_without_persistence(
    built, tmp_path: Path
) -> None:
    stick = tmp_path / "stick.img"
    summary = write_stick(built.iso, stick)
    assert "ext4 labelled LIVESMITH-RW" in summary
    token = f"kept-{built.build_id}"

    with boot(stick) as vm:
        vm.login("root", "live", timeout=240)
        assert "persistence: changes are kept on /dev/" in vm.output
        mounts = vm.run("grep -E ' /run/livesmith/cow | / ' /proc/mounts", check=True)
        assert "ext4" in mounts and "upperdir=/run/livesmith/cow/livesmith/upper" in mounts
        assert vm.run(f"cat {PROOF} 2>/dev/null || echo absent") == "absent"
        vm.run(f"echo {token} > {PROOF} && sync", check=True, timeout=60)
        first = vm.elapsed
    print(f"{built.iso.name}: boot 1 (write) {first:.0f} s")

    with boot(stick) as vm:
        vm.login("root", "live", timeout=240)
        assert vm.run(f"cat {PROOF}", check=True) == token
        second = vm.elapsed
    print(f"{built.iso.name}: boot 2 (read back) {second:.0f} s")

    with boot(stick) as vm:
        vm.expect("GNU GRUB", timeout=120)
        vm.expect("(without persistence)", timeout=10)
        for _ in range(NOPERSIST_INDEX):
            vm.send_raw(MENU_DOWN)
        vm.send_raw("\r")
        vm.expect(re.compile(r"Loading .* \(without persistence\)"), timeout=30)
        vm.login("root", "live", timeout=240)
        assert "livesmith.persistence=no" in vm.run("cat /proc/cmdline")
        assert "(livesmith.persistence=no); changes stay in RAM" in vm.output
        assert vm.run(f"cat {PROOF} 2>/dev/null || echo absent") == "absent"
        assert "/run/livesmith/cow tmpfs" in vm.run("grep ' /run/livesmith/cow ' /proc/mounts")

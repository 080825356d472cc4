"""The built-in `rescue` profile: a Debian system made by mmdebstrap, booted for real on
BIOS and UEFI and checked the way its user would: the system is running with no failed
unit, kernel modules load, an ext4 file system can be made and mounted on a virtio disk,
the NIC gets its address by DHCP, root logs in to bash with GNU coreutils, and the users
and groups Debian's maintainer scripts create exist."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.compose.profile import Profile, builtin_profile
from tests.integration.qemu import BootConfig, QemuSession
from tests.integration.test_live_layer_boot import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rescue_iso(build_iso):
    profile: Profile = builtin_profile("rescue")
    return build_iso(profile, "rescue")


@pytest.mark.parametrize(("firmware", "medium"), [("bios", "cd"), ("uefi", "usb")])
def test_rescue_boots_to_a_working_debian_system(
    rescue_iso, tmp_path: Path, firmware: str, medium: str
) -> None:
    disk = tmp_path / "disk.img"
    subprocess.run(["truncate", "-s", "64M", str(disk)], check=True)
    config = BootConfig(firmware=firmware, medium=medium, image=rescue_iso.iso, memory_mb=1024)
    extra = ("-drive", f"if=virtio,format=raw,file={disk}", "-nic", "user,model=virtio-net-pci")
    with QemuSession(config, extra_args=extra) as vm:
        vm.login("root", "live", timeout=180)
        state = vm.run("systemctl is-system-running --wait", timeout=180)
        failed = vm.run("systemctl --failed --no-legend --plain")
        assert state.strip() == "running", f"{state}\n{failed}"
        assert failed.strip() == ""

        assert vm.run("getent passwd root", check=True).endswith(":/root:/bin/bash")
        assert vm.run("ls --version | head -n 1", check=True).startswith("ls (GNU coreutils)")
        for group in ("systemd-journal", "systemd-network", "messagebus"):
            assert vm.run(f"getent group {group}", check=True).startswith(f"{group}:x:")

        vm.run("modprobe ext4 && mkfs.ext4 -q -F /dev/vda", timeout=60, check=True)
        vm.run("mount /dev/vda /mnt && echo kept > /mnt/file && umount /mnt", check=True)
        # (the kernel's own mount messages share the console)
        read_back = vm.run("mount -o ro /dev/vda /mnt && cat /mnt/file && umount /mnt")
        assert vm.last_status == 0 and "kept" in read_back.splitlines(), read_back

        addresses = wait_for(vm, "ip -4 -o addr show scope global", r"10\.0\.2\.15/24", 60)
        assert "inet 10.0.2.15/24" in addresses, addresses
        # A fresh machine id on every boot, never the one baked in at build time.
        assert len(vm.run("cat /etc/machine-id", check=True)) == 32

"""The live layer of the `minimal` (BusyBox) system, booted for real: kernel modules load
by name (modules.dep), drivers come for the hardware present at boot (coldplug), and the
wired network comes up by DHCP from QEMU's user network; a live user is logged in
automatically, a packaged init script runs from rcS, and the first-boot script runs."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from app.compose.profile import with_settings
from tests.integration.qemu import BootConfig, QemuSession

pytestmark = pytest.mark.slow


def ext4_disk(path: Path) -> Path:
    """A 32 MiB ext4 file system holding one file, made on the host."""
    content = path.parent / "content"
    content.mkdir()
    (content / "hello.txt").write_text("hello from ext4\n")
    subprocess.run(["truncate", "-s", "32M", str(path)], check=True)
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(content), str(path)], check=True, capture_output=True
    )
    return path


def wait_for(vm: QemuSession, command: str, pattern: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds * vm.scale
    while True:
        out = vm.run(command)
        if re.search(pattern, out) or time.monotonic() > deadline:
            return out
        time.sleep(1)


def test_minimal_loads_modules_mounts_ext4_and_gets_a_dhcp_lease(
    minimal_iso, tmp_path: Path
) -> None:
    disk = ext4_disk(tmp_path / "ext4.img")
    config = BootConfig(firmware="bios", medium="cd", image=minimal_iso.iso)
    extra = (
        "-drive",
        f"if=virtio,format=raw,file={disk}",
        "-nic",
        "user,model=virtio-net-pci",
    )
    with QemuSession(config, extra_args=extra) as vm:
        vm.login("root", "live")

        # Coldplug: the NIC's driver was loaded at boot, without anyone asking for it.
        driver = vm.run("readlink /sys/class/net/eth0/device/driver", check=True)
        assert driver.endswith("/virtio_net"), driver

        # modprobe finds a module by name through modules.dep, with its dependencies.
        vm.run("modprobe ext4", check=True)
        assert "ext4" in vm.run("cat /proc/filesystems")
        vm.run("mkdir -p /mnt/disk && mount -t ext4 /dev/vda /mnt/disk", check=True)
        assert vm.run("cat /mnt/disk/hello.txt", check=True) == "hello from ext4"
        vm.run("umount /mnt/disk", check=True)

        # DHCP: QEMU's user network hands out 10.0.2.15 with 10.0.2.2 as the gateway.
        addresses = wait_for(vm, "ip -4 addr show dev eth0", r"inet 10\.0\.2\.15/24", 30)
        assert "inet 10.0.2.15/24" in addresses, addresses
        assert "default via 10.0.2.2 dev eth0" in vm.run("ip -4 route", check=True)
        assert "nameserver 10.0.2.3" in vm.run("cat /etc/resolv.conf", check=True)


HELLO_SERVICE = """#!/bin/sh
# An init script as a package ships it (Buildroot style): start/stop.
case "$1" in
start) echo "started by rcS" > /run/hello-service ;;
esac
"""


def test_minimal_with_a_live_user_a_service_and_a_first_boot_script(
    build_iso, minimal_profile, tmp_path_factory: pytest.TempPathFactory
) -> None:
    overlay = tmp_path_factory.mktemp("overlay")
    (overlay / "etc/init.d").mkdir(parents=True)
    script = overlay / "etc/init.d/hello"
    script.write_text(HELLO_SERVICE)
    script.chmod(0o755)
    first_boot = tmp_path_factory.mktemp("first-boot") / "first-boot.sh"
    first_boot.write_text('#!/bin/sh\necho "first boot as $(id -u)" > /run/first-boot-ran\n')
    profile = with_settings(
        minimal_profile,
        [
            "system.user=ana",
            "system.autologin=true",
            f"system.overlay={overlay}",
            "system.enable_units=['hello']",
            f"system.first_boot={first_boot}",
        ],
    )
    result = build_iso(profile, "minimal-options")
    config = BootConfig(firmware="bios", medium="cd", image=result.iso)
    with QemuSession(config) as vm:
        # No login prompt: getty runs `login -f ana`, whose shell greets.
        console = vm.expect(re.compile(r"(?s).*built-in shell \(ash\)"), timeout=60).group(0)
        assert "rcS:" not in console, console  # rcS ran without a complaint
        vm.wait_for_shell()
        assert vm.run("id -un", check=True) == "ana"
        assert vm.run("cat /run/hello-service", check=True) == "started by rcS"
        assert vm.run("cat /run/first-boot-ran", check=True) == "first boot as 0"

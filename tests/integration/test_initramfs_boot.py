"""Boot the real Debian kernel with our initramfs in QEMU (TCG) and watch the serial console.

No ISO bootloader is involved (`-kernel`/`-initrd`): these boots prove the cpio writer
against the kernel's unpacker, the module set and modules.dep against real hardware
models (IDE CD, xHCI + usb-storage, virtio), and the /init script's medium search, mounts,
overlay, switch_root, RAM mode and rescue shell. The root image is a tiny busybox system
whose /sbin/init reports what it sees and powers off.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from app.compose.initramfs import InitramfsSpec, build_initramfs
from app.reporter import NullReporter
from tests.conftest import ROOT
from tests.support.debian import busybox_static, kernel_tree

pytestmark = pytest.mark.slow

BUILD_ID = "5eed0fcafe15dead"
LABEL = "LIVETEST"
BOOT_TIMEOUT = 150  # TCG on a busy 2-core machine; a normal boot takes ~20-30 s
ARTIFACTS = ROOT / "tests" / ".artifacts"

MARKER_INIT = """#!/bin/busybox sh
export PATH=/bin
bb=/bin/busybox
mountpoint_type() { $bb awk -v m="$1" '$2 == m { t = $3 } END { print t }' /proc/mounts; }
root=$(mountpoint_type /)
lower=$(mountpoint_type /run/livesmith/lower)
medium=$(mountpoint_type /run/livesmith/medium)
if echo ok > /written 2>/dev/null && [ "$($bb cat /written)" = ok ]; then w=yes; else w=no; fi
if $bb touch /run/livesmith/lower/x 2>/dev/null; then lower_ro=no; else lower_ro=yes; fi
if [ -e /.livesmith ]; then private=present; else private=gone; fi
echo "LIVESMITH-ROOT-OK root=$root writable=$w lower=${lower:-none} lower_ro=$lower_ro \
medium=${medium:-none} private=$private pid=$$"
$bb poweroff -f
"""
MARKER = (
    r"LIVESMITH-ROOT-OK root=(?P<root>\S+) writable=(?P<writable>\S+) "
    r"lower=(?P<lower>\S+) lower_ro=(?P<lower_ro>\S+) medium=(?P<medium>\S+) "
    r"private=(?P<private>\S+) pid=(?P<pid>\d+)\r?\n"
)


class SerialConsole:
    """A QEMU process whose first serial port is our stdin/stdout: expect and send."""

    def __init__(self, name: str, args: list[str]):
        self.name = name
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.output = bytearray()
        self._pos = 0

    def expect(self, pattern: str, timeout: float = BOOT_TIMEOUT) -> re.Match[bytes]:
        compiled = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while True:
            match = compiled.search(self.output, self._pos)
            if match:
                self._pos = match.end()
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.name}: no {pattern!r} within {timeout} s; console:\n{self.tail()}"
                )
            ready, _, _ = select.select([self.proc.stdout], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(
                        f"{self.name}: QEMU exited ({self.proc.wait()}) "
                        f"before {pattern!r}; console:\n{self.tail()}"
                    )
                self.output += chunk

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def text(self) -> str:
        return self.output.decode(errors="replace").replace("\r", "")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"initramfs-boot-{self.name}.log").write_bytes(bytes(self.output))


def boot(name: str, initramfs: Path, cmdline: str, media: list[str]) -> SerialConsole:
    vmlinuz, _, _ = kernel_tree()
    args = [
        shutil.which("qemu-system-x86_64") or "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-M",
        "pc",
        "-m",
        "512",
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        str(vmlinuz),
        "-initrd",
        str(initramfs),
        # panic=-1 + -no-reboot: a kernel panic ends QEMU at once instead of a timeout
        "-append",
        f"console=ttyS0,115200 panic=-1 quiet {cmdline}",
        *media,
    ]
    return SerialConsole(name, args)


def medium_args(id_: str = BUILD_ID, label: str = LABEL, extra: str = "") -> str:
    return f"livesmith.id={id_} livesmith.label={label} livesmith.timeout=20 {extra}".strip()


# -- fixtures: a tiny busybox system, its images, media and initramfs images -------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("initramfs-boot")


@pytest.fixture(scope="module")
def system_root(work: Path) -> Path:
    root = work / "system"
    for directory in ("bin", "sbin", "proc", "sys", "dev", "run", "tmp", "etc"):
        (root / directory).mkdir(parents=True)
    shutil.copy(busybox_static(), root / "bin/busybox")
    os.symlink("busybox", root / "bin/sh")
    (root / "sbin/init").write_text(MARKER_INIT)
    (root / "sbin/init").chmod(0o755)
    return root


@pytest.fixture(scope="module")
def squashfs(work: Path, system_root: Path) -> Path:
    image = work / "rootfs.sfs"
    subprocess.run(
        [
            "mksquashfs",
            str(system_root),
            str(image),
            "-noappend",
            "-quiet",
            "-comp",
            "zstd",
            "-all-root",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return image


@pytest.fixture(scope="module")
def erofs(work: Path, system_root: Path) -> Path:
    image = work / "rootfs.erofs"
    subprocess.run(
        ["mkfs.erofs", "--quiet", "-zlz4hc", "--all-root", str(image), str(system_root)], check=True
    )
    return image


def make_iso(work: Path, name: str, label: str, image: Path, *, id_file: bool = True) -> Path:
    tree = work / f"{name}-tree"
    (tree / "live").mkdir(parents=True)
    if id_file:
        (tree / "live" / f"{BUILD_ID}.id").write_text(f"{BUILD_ID}\n{LABEL}\n")
    shutil.copy(image, tree / "live" / image.name)
    iso = work / f"{name}.iso"
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-V", label, "-o", str(iso), str(tree)],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    return iso


def make_fat(work: Path, name: str, label: str, files: dict[str, Path]) -> Path:
    disk = work / f"{name}.img"
    subprocess.run(
        ["mkfs.vfat", "-C", "-n", label, str(disk), "16384"], check=True, stdout=subprocess.DEVNULL
    )
    for directory in sorted({str(Path(t).parent) for t in files} - {"."}):
        subprocess.run(["mmd", "-i", str(disk), f"::/{directory}"], check=True)
    for target, source in files.items():
        subprocess.run(["mcopy", "-i", str(disk), str(source), f"::/{target}"], check=True)
    return disk


@pytest.fixture(scope="module")
def iso(work: Path, squashfs: Path) -> Path:
    return make_iso(work, "live", LABEL, squashfs)


@pytest.fixture(scope="module")
def initramfs(work: Path) -> Path:
    _, mod_dir, version = kernel_tree()
    out = work / "initramfs.img"
    build_initramfs(
        InitramfsSpec(
            busybox=busybox_static(),
            kernel_version=version,
            modules_dir=mod_dir,
            build_id=BUILD_ID,
            label=LABEL,
            epoch=1_700_000_000,
        ),
        out,
        NullReporter(),
    )
    return out


def booted_root(console: SerialConsole) -> dict[str, str]:
    match = console.expect(MARKER)
    return {k: v.decode() for k, v in match.groupdict().items()}


def assert_overlay_root(found: dict[str, str], lower: str = "squashfs") -> None:
    assert found["root"] == "overlay"
    assert found["writable"] == "yes"
    assert found["lower"] == lower and found["lower_ro"] == "yes"
    assert found["pid"] == "1"  # the system's init really runs as PID 1 after switch_root


# -- the boots --------------------------------------------------------------------------


def test_boots_from_a_cd(initramfs: Path, iso: Path) -> None:
    console = boot("cdrom", initramfs, medium_args(), ["-cdrom", str(iso)])
    try:
        found = booted_root(console)
        assert_overlay_root(found)
        assert found["medium"] == "iso9660"
        assert "found the live medium on /dev/sr0 by its ID file" in console.text()
    finally:
        console.close()


def test_boots_from_a_usb_stick(initramfs: Path, iso: Path) -> None:
    console = boot(
        "usb",
        initramfs,
        medium_args(),
        [
            "-device",
            "qemu-xhci",
            "-device",
            "usb-storage,drive=stick",
            "-drive",
            f"if=none,id=stick,format=raw,readonly=on,file={iso}",
        ],
    )
    try:
        assert_overlay_root(booted_root(console))
        assert "found the live medium on /dev/sda by its ID file" in console.text()
    finally:
        console.close()


def test_without_the_id_file_the_label_is_used(initramfs: Path, work: Path, squashfs: Path) -> None:
    # A FAT stick labelled like the build but from another build (other ID): the label
    # fallback finds it, with a warning.
    stick = make_fat(work, "label-only", LABEL, {"live/rootfs.sfs": squashfs})
    console = boot(
        "label",
        initramfs,
        medium_args(id_="ffffffffffffffff"),
        [
            "-device",
            "qemu-xhci",
            "-device",
            "usb-storage,drive=stick",
            "-drive",
            f"if=none,id=stick,format=raw,file={stick}",
        ],
    )
    try:
        assert_overlay_root(booted_root(console))
        text = console.text()
        assert (
            "no device holds /live/ffffffffffffffff.id; using /dev/sda, found by its label "
            f"'{LABEL}'" in text
        )
    finally:
        console.close()


def test_no_medium_explains_and_opens_a_rescue_shell(initramfs: Path, work: Path) -> None:
    blank = work / "blank.img"
    blank.write_bytes(bytes(4 << 20))
    other_fat = make_fat(work, "other", "DATA", {})
    console = boot(
        "no-medium",
        initramfs,
        medium_args(extra="livesmith.timeout=3"),
        [
            "-drive",
            f"if=virtio,format=raw,file={blank}",
            "-drive",
            f"if=virtio,format=raw,file={other_fat}",
        ],
    )
    try:
        console.expect(r"starting a rescue shell")
        console.expect(r"livesmith-rescue# ")
        console.send("echo RESCUE-$((1+1))")
        console.expect(r"RESCUE-2\r?\n", timeout=30)
        text = console.text()
        assert "the live medium was not found within 3s" in text
        assert f"looked for the file /live/{BUILD_ID}.id on every block device" in text
        assert f"then for a filesystem labelled '{LABEL}': no filesystem is labelled" in text
        assert "vda: no iso9660 or vfat filesystem" in text
        assert "vdb: vfat without /live" in text
        # the shell is PID 1's child: leaving it brings a fresh one, never a panic
        console.expect(r"livesmith-rescue# ", timeout=30)
        console.send("exit")
        console.expect(r"built-in shell \(ash\)", timeout=30)
        console.expect(r"livesmith-rescue# ", timeout=30)
        console.send("echo AGAIN-$((2+2))")
        console.expect(r"AGAIN-4\r?\n", timeout=30)
        assert "Kernel panic" not in console.text()
    finally:
        console.close()


def test_ram_mode_runs_the_system_from_the_initramfs(work: Path, system_root: Path) -> None:
    _, mod_dir, version = kernel_tree()
    image = work / "initramfs-ram.img"
    build_initramfs(
        InitramfsSpec(
            busybox=busybox_static(),
            kernel_version=version,
            modules_dir=mod_dir,
            build_id=BUILD_ID,
            label=LABEL,
            epoch=1_700_000_000,
            ram_root=system_root,
        ),
        image,
        NullReporter(),
    )
    console = boot("ram", image, "", [])
    try:
        found = booted_root(console)
        assert found["root"] == "rootfs" and found["writable"] == "yes"
        assert found["private"] == "gone" and found["pid"] == "1"
        assert "RAM mode: starting /sbin/init" in console.text()
    finally:
        console.close()


def test_a_relabelled_medium_with_an_erofs_image_copied_to_ram(
    initramfs: Path, work: Path, erofs: Path
) -> None:
    # Three features, one boot (each boot costs ~30 s under TCG): the volume label differs
    # from livesmith.label, so only the ID file can find the medium; the root image is
    # EROFS; copy-to-RAM lets the medium go.
    medium = make_iso(work, "relabelled-erofs", "SOMETHING_ELSE", erofs)
    console = boot(
        "relabelled-erofs-copytoram",
        initramfs,
        medium_args(extra="livesmith.image=/live/rootfs.erofs livesmith.copytoram"),
        ["-cdrom", str(medium)],
    )
    try:
        found = booted_root(console)
        assert_overlay_root(found, lower="erofs")
        assert found["medium"] == "none"  # unmounted: the image runs from RAM
        text = console.text()
        assert "found the live medium on /dev/sr0 by its ID file" in text
        assert "copying the root image" in text
        assert "the medium /dev/sr0 may be removed" in text
    finally:
        console.close()


@pytest.mark.parametrize("kind", ["ext4", "fat-medium", "toram", "not-ext4", "turned-off"])
def test_a_livesmith_rw_file_system_holds_the_writable_layer(
    initramfs: Path, iso: Path, squashfs: Path, work: Path, kind: str
) -> None:
    """A CD boot with a second disk labelled LIVESMITH-RW: ext4 is used for the overlay's
    upper layer (what the system writes lands on the disk); another file system with that
    label is reported and the tmpfs is used; so is livesmith.persistence=no. fat-medium:
    the medium is a whole-disk FAT stick, mounted again through a loop device as FAT;
    toram: the root image is copied to RAM, the changes still go to the disk."""
    disk = work / f"persist-{kind}.img"
    disk.unlink(missing_ok=True)
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    if kind == "not-ext4":
        subprocess.run(["mkswap", "-q", "-L", "LIVESMITH-RW", str(disk)], check=True)
    else:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "LIVESMITH-RW", str(disk)], check=True)
    extra = {"turned-off": "livesmith.persistence=no", "toram": "livesmith.copytoram"}.get(kind, "")
    medium = ["-cdrom", str(iso)]
    if kind == "fat-medium":
        id_file = work / "persist-id"
        id_file.write_text(f"{BUILD_ID}\n{LABEL}\n")
        stick = make_fat(
            work,
            "persist-fat",
            LABEL,
            {"live/rootfs.sfs": squashfs, f"live/{BUILD_ID}.id": id_file},
        )
        medium = [
            "-device",
            "qemu-xhci",
            "-device",
            "usb-storage,drive=stick",
            "-drive",
            f"if=none,id=stick,format=raw,readonly=on,file={stick}",
        ]
    console = boot(
        f"persist-{kind}",
        initramfs,
        medium_args(extra=extra),
        [*medium, "-drive", f"if=virtio,format=raw,file={disk}"],
    )
    try:
        found = booted_root(console)
        assert_overlay_root(found)
        if kind == "fat-medium":
            assert found["medium"] == "vfat"
        text = console.text()
        console.proc.wait(timeout=60)  # the marker init powers off (busybox syncs first)
    finally:
        console.close()
    if kind != "not-ext4":  # replay the journal (debugfs does not), and check the rest
        fsck = subprocess.run(["e2fsck", "-fy", str(disk)], capture_output=True, text=True)
        assert fsck.returncode in (0, 1), fsck.stdout + fsck.stderr
    written = subprocess.run(
        ["debugfs", "-R", "cat /livesmith/upper/written", str(disk)],
        capture_output=True,
        text=True,
    )
    if kind in ("ext4", "fat-medium", "toram"):
        assert "persistence: changes are kept on /dev/vda (LIVESMITH-RW)" in text
        if kind == "toram":
            assert "the root image runs from RAM; changes still go to /dev/vda" in text
        assert written.stdout == "ok\n", written.stderr
    elif kind == "not-ext4":
        assert "cannot mount /dev/vda (LIVESMITH-RW) as ext4; changes stay in RAM" in text
    else:
        assert "/dev/vda (LIVESMITH-RW) left alone (livesmith.persistence=no)" in text
        assert written.stdout == "", written.stdout

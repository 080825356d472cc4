"""Sticks that hold a real hybrid ISO, and what a restored stick must look like (root only).

The ISO is mastered by xorriso like a distribution's: an isohybrid MBR, a GPT whose backup
header is in the image's last sector, ISO 9660 with Joliet, BIOS and EFI El Torito entries.
It is padded to 63 MiB (room for FAT32) and becomes the loop device's whole backing file,
so the backup GPT sits at the device's end, as on a stick the ISO was written to.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from app.usb.restore import FileSystem
from tests.app.iso.test_inspect import BIOS_BOOT, ISOHDPFX, make_boot_tree, mkisofs
from tests.app.usb.writer_support import MiB, loop_device, run

ISO_PAD = 60 * MiB
GPT_SIGNATURE = b"EFI PART"


def make_hybrid_iso(work: Path) -> Path:
    tree = make_boot_tree(work / "hybrid-tree")
    with open(tree / "pad.bin", "wb") as fh:
        fh.truncate(ISO_PAD)  # zeros: costs xorriso a write, not a random source
    iso = mkisofs(
        tree,
        work / "hybrid.iso",
        "-R",
        "-J",
        "-V",
        "LIVE_HYBRID",
        *BIOS_BOOT,
        "-isohybrid-mbr",
        str(ISOHDPFX),
        "-eltorito-alt-boot",
        "-e",
        "boot/efi.img",
        "-no-emul-boot",
        "-isohybrid-gpt-basdat",
    )
    types = {t for _offset, t in signatures(str(iso))}
    assert {"iso9660", "dos", "gpt"} <= types, types
    assert last_sector(str(iso))[:8] == GPT_SIGNATURE  # the backup GPT header at the end
    return iso


@contextlib.contextmanager
def hybrid_stick(iso: Path, backing: Path) -> Iterator[str]:
    """A loop device whose whole content is the hybrid ISO; its partitions (added by the
    restore through partx) are removed before it is detached."""
    shutil.copyfile(iso, backing)
    with loop_device(backing) as node:
        drop_partitions(node)  # left by an earlier run
        try:
            yield node
        finally:
            drop_partitions(node)


def drop_partitions(node: str, timeout: float = 10.0) -> None:
    """Remove the kernel's partitions of a loop device (`partx -d`; a detached loop device
    keeps those added by BLKPG, and the next one attached under its name inherits them).
    udev may hold a partition open for a moment after a write: retried until gone."""
    sys_block = Path("/sys/block", Path(node).name)
    deadline = time.monotonic() + timeout
    while True:
        subprocess.run(["partx", "-d", node], capture_output=True)
        left = [p.name for p in sys_block.iterdir() if (p / "partition").exists()]
        if not left:
            return
        assert time.monotonic() < deadline, f"{node} keeps its partitions {left}"
        subprocess.run(["udevadm", "settle", "--timeout=5"], capture_output=True)
        time.sleep(0.1)


def signatures(path: str) -> list[tuple[int, str]]:
    """(offset, type) of every signature wipefs finds on `path` (nothing is erased)."""
    out = run("wipefs", "--no-act", "--json", path)
    if not out.strip():
        return []
    return [(int(s["offset"], 16), s["type"]) for s in json.loads(out)["signatures"]]


def last_sector(path: str) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(-512, 2)
        return fh.read(512)


def sector(path: str, number: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(number * 512)
        return fh.read(512)


def partition_table(node: str) -> dict[str, object]:
    return json.loads(run("sfdisk", "--json", node))["partitiontable"]  # type: ignore[no-any-return]


def probe(path: str) -> dict[str, str]:
    """blkid's low-level probe (no cache) as udev properties."""
    out = subprocess.run(["blkid", "-p", "-o", "udev", path], capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def udev_decoded(text: str) -> str:
    """A udev *_ENC value: every byte kept, unsafe ones written as \\xNN."""
    raw = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode())
    return raw.decode()


def kernel_has(fstype: str) -> bool:
    return any(
        line.split()[-1] == fstype for line in Path("/proc/filesystems").read_text().splitlines()
    )


@contextlib.contextmanager
def mounted_fs(partition: str, fs: FileSystem, where: Path) -> Iterator[Path]:
    """Mount the file system read-write: the kernel's driver where it has one, else FUSE
    (exfat-fuse, fusefat: test kernels often come without exfat and vfat)."""
    where.mkdir(exist_ok=True)
    if fs is FileSystem.EXT4 or kernel_has(fs.blkid_type):
        run("mount", "-t", fs.blkid_type, partition, str(where))
    elif fs is FileSystem.EXFAT:
        run("mount.exfat-fuse", partition, str(where))
    else:
        run("fusefat", "-o", "rw+", partition, str(where))
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True)


def assert_restored(node: str, partition: str, fs: FileSystem, label: str, work: Path) -> None:
    """One partition over ≥ 95% of the device with the file system and label asked for, no
    old signature anywhere, and a file written to it is there after mounting it again."""
    size = int(run("blockdev", "--getsize64", node))
    table = partition_table(node)
    assert table["label"] == "dos"
    parts = table["partitions"]
    assert isinstance(parts, list) and len(parts) == 1
    assert parts[0]["type"] == f"{fs.mbr_type:x}"
    assert parts[0]["size"] * 512 >= 0.95 * size, (parts[0], size)
    # The whole device: a partition table and nothing else; the partition: the new fs only.
    assert signatures(node) == [(0x1FE, "dos")]
    assert {t for _o, t in signatures(partition)} <= {fs.blkid_type, "dos"}
    whole = probe(node)
    assert "ID_FS_TYPE" not in whole and whole.get("ID_PART_TABLE_TYPE") == "dos", whole
    found = probe(partition)
    assert found["ID_FS_TYPE"] == fs.blkid_type
    if label:
        assert udev_decoded(found["ID_FS_LABEL_ENC"]) == label
    # Neither GPT header survives: the primary (LBA 1) nor the backup (the last sector).
    assert sector(node, 1)[:8] != GPT_SIGNATURE
    assert last_sector(node)[:8] != GPT_SIGNATURE
    content = b"a file on the restored stick\n" * 1000
    with mounted_fs(partition, fs, work / "mnt") as mnt:
        (mnt / "hello.txt").write_bytes(content)
    with mounted_fs(partition, fs, work / "mnt") as mnt:
        assert (mnt / "hello.txt").read_bytes() == content

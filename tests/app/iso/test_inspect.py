"""inspect_iso against real ISOs: Debian's ipxe and grub-rescue images and xorriso-made ones.

Every expectation comes from an independent reader: xorriso's own listing
(`-find / -exec lsdl`) and boot reports (`-report_el_torito`, `-report_system_area`),
and the source trees the images were made from. The helpers here are shared with
the other inspection and extraction tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pycdlib
import pytest

from app.errors import Cancelled, InputError
from app.iso.inspect import IsoReport, hybrid_verdict, inspect_iso
from app.iso.partitions import SystemArea, read_system_area
from app.reporter import NullReporter
from tests.app.iso.test_partitions import mbr_disk
from tests.conftest import is_root, needs_root
from tests.support.debian import packaged_file

ISOHDPFX = Path("/usr/lib/ISOLINUX/isohdpfx.bin")
ISOLINUX_BIN = Path("/usr/lib/ISOLINUX/isolinux.bin")
LDLINUX = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
ESP_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
EPOCH = 1_700_000_000


# -- independent readers: xorriso ----------------------------------------------------------


@dataclass(frozen=True)
class XEntry:
    path: str
    type: str
    size: int
    mode: int
    uid: int
    gid: int
    target: str | None


LSDL = re.compile(
    r"^(?P<perm>\S{10})\s+\d+\s+(?P<uid>\d+)\s+(?P<gid>\d+)\s+(?P<size>\d+|\d+,\d+)\s+"
    r"\w{3}\s+\d+\s+[\d:]+\s+'(?P<path>.*?)'(?: -> '(?P<target>.*)')?$"
)
XORRISO_TYPES = {
    "d": "dir",
    "-": "file",
    "e": "file",
    "l": "symlink",
    "p": "other",
    "c": "other",
    "b": "other",
    "s": "other",
}


def perm_bits(perm: str) -> int:
    """The numeric mode of an `ls -l` permission string such as 'rwsr-xr-t'."""
    bits = 0
    for index, char in enumerate(perm):
        shift = 8 - index
        if char in "rwxst":
            bits |= 1 << shift
        if char in "sS":
            bits |= stat.S_ISUID if index == 2 else stat.S_ISGID
        if char in "tT":
            bits |= stat.S_ISVTX
    return bits


def xorriso(*args: str) -> str:
    out = subprocess.run(["xorriso", *args], capture_output=True, check=True)
    return (out.stdout + out.stderr).decode("utf-8", "surrogateescape")


def xorriso_listing(iso: Path) -> dict[str, XEntry]:
    entries = {}
    for line in xorriso("-indev", str(iso), "-find", "/", "-exec", "lsdl").splitlines():
        m = LSDL.match(line)
        if not m:
            continue
        kind = XORRISO_TYPES[m["perm"][0]]
        size = int(m["size"]) if kind == "file" else 0
        entries[m["path"]] = XEntry(
            m["path"],
            kind,
            size,
            perm_bits(m["perm"][1:]),
            int(m["uid"]),
            int(m["gid"]),
            m["target"],
        )
    assert "/" in entries, "xorriso listed nothing"
    return entries


@dataclass
class XBoot:
    eltorito: dict[int, dict[str, object]]
    mbr: list[tuple[int, bool, str, int, int]]  # number, bootable, type, start, size (bytes)
    gpt: dict[int, dict[str, object]]
    lines: list[str]


def xorriso_boot(iso: Path) -> XBoot:
    text = xorriso("-indev", str(iso), "-report_el_torito", "plain", "-report_system_area", "plain")
    boot = XBoot({}, [], {}, text.splitlines())
    for line in boot.lines:
        key, _, value = line.partition(" : ")
        key, fields = key.strip(), value.split()
        if key == "El Torito boot img":
            n, pltf, b, emul, _seg, _hdpt, ldsiz, lba = fields
            boot.eltorito[int(n)] = {
                "platform_name": pltf,
                "bootable": b == "y",
                "emulation": emul,
                "load_size": int(ldsiz),
                "load_rba": int(lba),
                "boot_file": None,
            }
        elif key == "El Torito img path":
            boot.eltorito[int(fields[0])]["boot_file"] = value.split(None, 1)[1].strip()
        elif key == "MBR partition":
            n, status, ptype, start, blocks = fields
            boot.mbr.append((int(n), status == "0x80", ptype, int(start) * 512, int(blocks) * 512))
        elif key == "GPT type GUID":
            raw = bytes.fromhex(fields[1])
            guid = str(uuid.UUID(bytes_le=raw)).upper()
            boot.gpt.setdefault(int(fields[0]), {})["type_id"] = guid
        elif key == "GPT start and size":
            part = boot.gpt.setdefault(int(fields[0]), {})
            part["start"], part["size"] = int(fields[1]) * 512, int(fields[2]) * 512
        elif key == "GPT partname local":
            boot.gpt.setdefault(int(fields[0]), {})["name"] = value.split(None, 1)[1].strip()
    return boot


def assert_tree_matches_xorriso(report: IsoReport, iso: Path, *, rock_ridge: bool) -> None:
    expected = xorriso_listing(iso)
    ours = {f.path: f for f in report.files}
    assert sorted(ours) == sorted(expected)
    for path, x in expected.items():
        f = ours[path]
        assert (f.type, f.size, f.target) == (x.type, x.size, x.target), path
        if rock_ridge:
            assert (f.mode, f.uid, f.gid) == (x.mode, x.uid, x.gid), path
        else:
            assert (f.mode, f.uid, f.gid) == (None, None, None), path


def assert_boot_matches_xorriso(report: IsoReport, iso: Path) -> XBoot:
    boot = xorriso_boot(iso)
    ours = {
        e.index: {
            "platform_name": e.platform_name,
            "bootable": e.bootable,
            "emulation": e.emulation,
            "load_size": e.load_size,
            "load_rba": e.load_rba,
            "boot_file": e.boot_file,
        }
        for e in report.eltorito
    }
    assert ours == boot.eltorito
    mbr = [
        (p.number, p.bootable, p.type_id, p.start, p.size)
        for p in report.partitions
        if p.scheme == "mbr"
    ]
    assert mbr == boot.mbr
    gpt = {
        p.number: {"type_id": p.type_id, "start": p.start, "size": p.size, "name": p.name}
        for p in report.partitions
        if p.scheme == "gpt"
    }
    assert gpt == boot.gpt
    return boot


# -- images ----------------------------------------------------------------------------------


def debian_iso(package: str, name: str) -> Path:
    """The ISO a Debian package ships (the package is downloaded and unpacked, not installed)."""
    return packaged_file(package, name)


def write(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return path


def make_sample_tree(root: Path) -> Path:
    """Regular files with many modes, symlinks, empty and deep dirs, odd names, special files."""
    root.mkdir(parents=True)
    write(root / "boot/grub/grub.cfg", "set timeout=5\n")
    write(root / "bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
    write(root / "bin/private", "secret", 0o600)
    write(root / "bin/readonly", "ro", 0o444)
    write(root / "bin/setuid", b"\x7fELF" + os.urandom(3000), 0o755)
    write(root / "data/exactly-one-block", bytes(range(256)) * 8)
    write(root / "data/random.bin", os.urandom(300_000))
    write(root / "data/empty", b"")
    write(root / ("n" * 200), "a 200-character name")
    write(root / "Ünïcødé – naïve ☃.txt", "non-ASCII")
    deep = root.joinpath(*"abcdefghijkl")
    write(deep / "deep.txt", "12 levels down")
    (root / "empty-dir").mkdir()
    (root / "locked").mkdir()
    write(root / "locked/inside", "in a read-only dir")
    (root / "locked").chmod(0o555)
    (root / "sticky").mkdir()
    (root / "sticky").chmod(0o1777)
    (root / "boot/link-rel").symlink_to("grub/grub.cfg")
    (root / "link-abs").symlink_to("/etc/hostname")
    (root / "data/dangling").symlink_to("../does/not/exist")
    (root / "link-dir").symlink_to("boot")
    os.mkfifo(root / "fifo")
    if is_root():
        os.mknod(root / "null", 0o640 | stat.S_IFCHR, os.makedev(1, 3))
        os.chown(root / "bin/tool", 1234, 5678)
        os.lchown(root / "link-abs", 42, 43)
    (root / "bin/setuid").chmod(0o4755)  # after chown, which clears set-user-ID
    return root


def source_entries(root: Path) -> dict[str, tuple]:
    """(type, size, mode, uid, gid, target) of each entry of a source tree, keyed by ISO path."""
    entries = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        rel = "/" + str(path.relative_to(root)) if path != root else "/"
        if stat.S_ISDIR(st.st_mode):
            kind, size, target = "dir", 0, None
        elif stat.S_ISLNK(st.st_mode):
            kind, size, target = "symlink", 0, os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            kind, size, target = "file", st.st_size, None
        else:
            kind, size, target = "other", 0, None
        entries[rel] = (kind, size, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, target)
    return entries


def mkisofs(tree: Path, out: Path, *options: str, env: dict[str, str] | None = None) -> Path:
    subprocess.run(
        ["xorriso", "-as", "mkisofs", *options, "-o", str(out), str(tree)],
        capture_output=True,
        check=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH), **(env or {})},
    )
    return out


def make_efi_image(path: Path) -> Path:
    """A FAT image with /EFI/BOOT/BOOTX64.EFI, made with mtools like a real ESP image."""
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    path.parent.mkdir(parents=True, exist_ok=True)
    loader = path.parent / "BOOTX64.EFI"
    loader.write_bytes(b"MZ" + os.urandom(20_000))
    for cmd in (
        ["mformat", "-i", str(path), "-C", "-f", "1440", "::"],
        ["mmd", "-i", str(path), "::/EFI", "::/EFI/BOOT"],
        ["mcopy", "-i", str(path), str(loader), "::/EFI/BOOT/BOOTX64.EFI"],
    ):
        subprocess.run(cmd, capture_output=True, check=True, env=env)
    loader.unlink()
    return path


def make_boot_tree(root: Path) -> Path:
    write(root / "isolinux/isolinux.bin", ISOLINUX_BIN.read_bytes())
    write(root / "isolinux/ldlinux.c32", LDLINUX.read_bytes())
    write(root / "isolinux/isolinux.cfg", "default live\nlabel live\n  kernel /live/vmlinuz\n")
    write(root / "live/vmlinuz", os.urandom(50_000))
    make_efi_image(root / "boot/efi.img")
    return root


BIOS_BOOT = [
    "-b",
    "isolinux/isolinux.bin",
    "-c",
    "isolinux/boot.cat",
    "-no-emul-boot",
    "-boot-load-size",
    "4",
    "-boot-info-table",
]


def make_isohybrid_gpt_iso(work: Path) -> Path:
    """isohybrid MBR + GPT (`-isohybrid-gpt-basdat`), BIOS and EFI El Torito entries."""
    tree = make_boot_tree(work / "hybrid-tree")
    return mkisofs(
        tree,
        work / "hybrid.iso",
        "-R",
        "-J",
        "-V",
        "HYBRID",
        *BIOS_BOOT,
        "-isohybrid-mbr",
        str(ISOHDPFX),
        "-eltorito-alt-boot",
        "-e",
        "boot/efi.img",
        "-no-emul-boot",
        "-isohybrid-gpt-basdat",
    )


def make_appended_esp_iso(work: Path) -> Path:
    """Protective MBR + GPT whose ESP is an appended partition outside the ISO tree."""
    tree = make_boot_tree(work / "esp-tree")
    efi = tree / "boot/efi.img"
    shutil.move(efi, work / "efi.img")
    return mkisofs(
        tree,
        work / "appended.iso",
        "-R",
        "-J",
        "-V",
        "APPENDED",
        *BIOS_BOOT,
        "-isohybrid-mbr",
        str(ISOHDPFX),
        "-eltorito-alt-boot",
        "-e",
        "--interval:appended_partition_2:all::",
        "-no-emul-boot",
        "-append_partition",
        "2",
        ESP_GUID,
        str(work / "efi.img"),
        "-appended_part_as_gpt",
    )


def make_pycdlib_hybrid(work: Path) -> Path:
    """What pycdlib's own add_isohybrid(efi=True) writes (an invalid GPT, see probes.md)."""
    tree = make_boot_tree(work / "pyc-tree")
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", joliet=3, vol_ident="PYCDLIB")
    iso.add_directory("/ISOLINUX", rr_name="isolinux", joliet_path="/isolinux")
    iso.add_file(
        str(tree / "isolinux/isolinux.bin"),
        "/ISOLINUX/ISOLINUX.BIN;1",
        rr_name="isolinux.bin",
        joliet_path="/isolinux/isolinux.bin",
    )
    iso.add_directory("/BOOT", rr_name="boot", joliet_path="/boot")
    iso.add_file(
        str(tree / "boot/efi.img"),
        "/BOOT/EFI.IMG;1",
        rr_name="efi.img",
        joliet_path="/boot/efi.img",
    )
    iso.add_eltorito(
        "/ISOLINUX/ISOLINUX.BIN;1", "/BOOT.CAT;1", boot_load_size=4, boot_info_table=True
    )
    iso.add_eltorito("/BOOT/EFI.IMG;1", "/BOOT.CAT;1", efi=True, platform_id=0xEF)
    iso.add_isohybrid(efi=True)
    out = work / "pycdlib.iso"
    iso.write(str(out))
    iso.close()
    return out


def fresh_dir(path: Path) -> Path:
    path.mkdir()
    return path


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inspect")


@pytest.fixture(scope="module")
def sample_tree(work: Path) -> Path:
    return make_sample_tree(work / "tree")


@pytest.fixture(scope="module")
def sample_iso(work: Path, sample_tree: Path) -> Path:
    return mkisofs(
        sample_tree,
        work / "sample.iso",
        "-R",
        "-J",
        "-joliet-long",
        "-V",
        "SAMPLE_TREE",
        "-publisher",
        "Livesmith tests",
        "-A",
        "livesmith test suite",
        "-p",
        "pytest",
        "-sysid",
        "LINUX",
    )


# -- third-party ISOs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("package", "name"), [("ipxe", "ipxe.iso"), ("grub-rescue-pc", "grub-rescue-cdrom.iso")]
)
def test_debian_isos_match_xorriso(package: str, name: str) -> None:
    iso = debian_iso(package, name)
    report = inspect_iso(iso)
    assert report.name_source == "rock_ridge"
    assert_tree_matches_xorriso(report, iso, rock_ridge=True)
    boot = assert_boot_matches_xorriso(report, iso)
    assert boot.eltorito and boot.mbr  # both images have El Torito entries and an MBR
    assert report.label == "ISOIMAGE"
    assert report.created is not None


def test_ipxe_verdict_bios_only() -> None:
    # ipxe.iso: isohybrid MBR with boot code, one 0x17 partition, no EFI System partition;
    # its UEFI image is reachable only through El Torito (as a CD).
    report = inspect_iso(debian_iso("ipxe", "ipxe.iso"))
    assert [(e.platform_name, e.boot_file) for e in report.eltorito] == [
        ("BIOS", "/isolinux.bin"),
        ("UEFI", "/efi.img"),
    ]
    assert [(p.scheme, p.type_id) for p in report.partitions] == [("mbr", "0x17")]
    assert report.partition_problems == []
    assert report.hybrid is True
    assert report.hybrid_reason == (
        "MBR with boot code but no EFI System partition: boots from USB on BIOS only "
        "(its UEFI El Torito image is used only when it boots as a CD)"
    )


def test_grub_rescue_verdict_bios_only() -> None:
    # grub-mkrescue: GRUB's boot code in the MBR and one 0xCD partition covering the ISO.
    report = inspect_iso(debian_iso("grub-rescue-pc", "grub-rescue-cdrom.iso"))
    assert [e.platform_name for e in report.eltorito] == ["BIOS"]
    assert report.eltorito[0].boot_file == "/boot/grub/i386-pc/eltorito.img"
    assert [(p.type_id, p.type_name) for p in report.partitions] == [
        ("0xcd", "ISO 9660 (grub-mkrescue)")
    ]
    assert report.hybrid is True
    assert report.hybrid_reason == (
        "MBR with boot code but no EFI System partition: boots from USB on BIOS only"
    )


# -- xorriso-made ISOs -----------------------------------------------------------------------


def test_rock_ridge_tree_equals_source_and_xorriso(sample_iso: Path, sample_tree: Path) -> None:
    report = inspect_iso(sample_iso)
    assert report.name_source == "rock_ridge"
    assert_tree_matches_xorriso(report, sample_iso, rock_ridge=True)
    ours = {f.path: (f.type, f.size, f.mode, f.uid, f.gid, f.target) for f in report.files}
    assert ours == source_entries(sample_tree)
    by_path = {f.path: f for f in report.files}
    assert by_path["/bin/setuid"].mode == 0o4755
    assert by_path["/sticky"].mode == 0o1777
    assert by_path["/link-abs"].target == "/etc/hostname"
    assert by_path["/fifo"].type == "other"
    assert by_path["/a/b/c/d/e/f/g/h/i/j/k/l/deep.txt"].size == len("12 levels down")


def test_tree_order_is_depth_first_by_name(sample_iso: Path) -> None:
    paths = [f.path for f in inspect_iso(sample_iso).files]
    assert paths[0] == "/"
    assert paths.index("/boot") < paths.index("/boot/grub") < paths.index("/boot/grub/grub.cfg")
    assert paths.index("/boot/grub/grub.cfg") < paths.index("/boot/link-rel")
    assert paths == [x for x in xorriso_listing(sample_iso)]  # xorriso's order too


def xorriso_pvd(iso: Path) -> dict[str, str]:
    info = {}
    for line in xorriso("-indev", str(iso), "-pvd_info").splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            info[key.strip()] = value.strip()
    return info


@pytest.mark.parametrize("which", ["ipxe", "sample"])
def test_volume_ids_match_xorriso(which: str, sample_iso: Path) -> None:
    iso = debian_iso("ipxe", "ipxe.iso") if which == "ipxe" else sample_iso
    report, pvd = inspect_iso(iso), xorriso_pvd(iso)
    assert report.label == pvd["Volume Id"]
    assert report.publisher == pvd["Publisher Id"]
    assert report.preparer == pvd["Preparer Id"]
    assert report.application == pvd["App Id"]
    assert report.system_id == pvd["System Id"]
    assert report.created is not None
    assert report.created.strftime("%Y%m%d%H%M%S") + "00" == pvd["Creation Time"]


def test_volume_ids_and_creation_date(sample_iso: Path) -> None:
    report = inspect_iso(sample_iso)
    assert report.label == "SAMPLE_TREE"
    assert report.publisher == "LIVESMITH TESTS"  # xorriso upper-cases a-characters
    assert report.application == "LIVESMITH TEST SUITE"
    assert report.preparer == "PYTEST"
    assert report.system_id == "LINUX"
    assert report.created == datetime.fromtimestamp(EPOCH, UTC)  # xorriso: SOURCE_DATE_EPOCH
    assert report.block_size == 2048
    assert report.size == sample_iso.stat().st_size
    assert report.volume_size <= report.size


def test_plain_iso_is_cd_only(sample_iso: Path) -> None:
    report = inspect_iso(sample_iso)
    assert report.eltorito == [] and report.partitions == [] and report.partition_problems == []
    assert report.hybrid is False
    assert report.hybrid_reason == "no partition table: CD only, will not boot from a USB stick"


def test_joliet_only_names(work: Path, sample_tree: Path) -> None:
    iso = mkisofs(sample_tree, work / "joliet.iso", "--norock", "-J", "-joliet-long")
    report = inspect_iso(iso)
    assert report.name_source == "joliet"
    assert_tree_matches_xorriso(report, iso, rock_ridge=False)
    paths = {f.path for f in report.files}
    assert "/Ünïcødé – naïve ☃.txt" in paths and "/boot/grub/grub.cfg" in paths
    assert "/link-abs" not in paths  # Joliet has no symlinks


def test_iso9660_only_names(work: Path, sample_tree: Path) -> None:
    iso = mkisofs(sample_tree, work / "iso9660.iso", "--norock")
    report = inspect_iso(iso)
    assert report.name_source == "iso9660"
    assert_tree_matches_xorriso(report, iso, rock_ridge=False)
    assert "/BOOT/GRUB/GRUB.CFG" in {f.path for f in report.files}  # no ";1", no trailing "."


def test_rock_ridge_relocated_deep_directories(work: Path, sample_tree: Path) -> None:
    # genisoimage moves directories deeper than 8 levels to /rr_moved and links them back
    # with Rock Ridge CL/PL/RE entries; the tree must show them where they belong.
    iso = work / "genisoimage.iso"
    subprocess.run(
        ["genisoimage", "-quiet", "-R", "-J", "-o", str(iso), str(sample_tree)],
        capture_output=True,
        check=True,
    )
    report = inspect_iso(iso)
    assert_tree_matches_xorriso(report, iso, rock_ridge=True)
    paths = [f.path for f in report.files]
    assert "/a/b/c/d/e/f/g/h/i/j/k/l/deep.txt" in paths
    assert not any(p.startswith("/rr_moved/") for p in paths)


def test_isohybrid_gpt_iso(work: Path) -> None:
    iso = make_isohybrid_gpt_iso(work)
    report = inspect_iso(iso)
    assert_tree_matches_xorriso(report, iso, rock_ridge=True)
    assert_boot_matches_xorriso(report, iso)
    assert [(e.platform, e.boot_file) for e in report.eltorito] == [
        (0x00, "/isolinux/isolinux.bin"),
        (0xEF, "/boot/efi.img"),
    ]
    efi = next(f for f in report.files if f.path == "/boot/efi.img")
    esp = next(p for p in report.partitions if p.type_id == "0xef")
    assert esp.size == efi.size and esp.start == report.eltorito[1].load_rba * 2048
    assert report.hybrid is True
    assert report.hybrid_reason == (
        "MBR with boot code and an EFI System partition "
        "(MBR partition 2): boots from USB on BIOS and UEFI"
    )
    # xorriso's isohybrid GPT is announced by no 0xEE entry: said, not hidden.
    assert len(report.partition_problems) == 1
    assert "no protective 0xEE entry" in report.partition_problems[0]


def test_gpt_with_appended_esp(work: Path) -> None:
    iso = make_appended_esp_iso(work)
    report = inspect_iso(iso)
    assert_boot_matches_xorriso(report, iso)
    assert report.eltorito[1].boot_file is None  # the EFI image lives outside the tree
    assert report.partition_problems == []
    sgdisk = subprocess.run(["sgdisk", "-v", str(iso)], capture_output=True, text=True)
    assert "No problems found" in sgdisk.stdout
    assert report.hybrid_reason == (
        "MBR with boot code and an EFI System partition "
        "(GPT partition 2): boots from USB on BIOS and UEFI"
    )


def test_uefi_only_gpt_iso(work: Path, sample_tree: Path) -> None:
    # No isohybrid MBR: xorriso writes a protective MBR without boot code.
    efi = make_efi_image(work / "uefi-only" / "efi.img")
    iso = mkisofs(
        sample_tree,
        work / "uefi-only.iso",
        "-R",
        "-J",
        "-e",
        "--interval:appended_partition_2:all::",
        "-no-emul-boot",
        "-append_partition",
        "2",
        ESP_GUID,
        str(efi),
        "-appended_part_as_gpt",
    )
    report = inspect_iso(iso)
    assert_boot_matches_xorriso(report, iso)
    assert [e.platform_name for e in report.eltorito] == ["UEFI"]
    assert report.partition_problems == []
    assert report.hybrid is True
    assert report.hybrid_reason == (
        "GPT with an EFI System partition (GPT partition 2) but no "
        "MBR boot code: boots from USB on UEFI only"
    )


def test_pycdlib_hybrid_gpt_problems_are_reported(work: Path) -> None:
    iso = make_pycdlib_hybrid(work)
    report = inspect_iso(iso)
    boot = assert_boot_matches_xorriso(report, iso)
    text = "\n".join(report.partition_problems)
    # xorriso finds the same faults; we say them in words instead of failing.
    assert any("GPT array CRC wrong" in line for line in boot.lines)
    assert any("Disk GUID differs" in line for line in boot.lines)
    assert "GPT entry array CRC wrong" in text
    assert "backup GPT: disk GUID" in text and "differs from the primary's" in text
    assert "no protective 0xEE entry" in text
    assert report.hybrid is True  # its MBR (boot code + 0xEF entry) still boots from USB


@pytest.mark.root
@needs_root
def test_inspects_an_iso_on_a_block_device(work: Path) -> None:
    iso = make_isohybrid_gpt_iso(fresh_dir(work / "device"))
    device = subprocess.run(
        ["losetup", "--find", "--show", "--read-only", str(iso)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        on_device = inspect_iso(Path(device))
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
    from_file = inspect_iso(iso)
    assert on_device.files == from_file.files
    assert on_device.eltorito == from_file.eltorito
    assert on_device.partitions == from_file.partitions
    assert on_device.hybrid_reason == from_file.hybrid_reason


# -- verdict rules ---------------------------------------------------------------------------


def area(**kw: object) -> SystemArea:
    base: dict[str, object] = {
        "sector_size": 512,
        "mbr_signature": True,
        "mbr_boot_code": False,
        "mbr_protective": False,
        "gpt_found": False,
        "gpt_valid": False,
    }
    base.update(kw)
    return SystemArea(**base)  # type: ignore[arg-type]


def test_verdict_for_a_damaged_gpt_without_mbr_entries(work: Path) -> None:
    iso = make_appended_esp_iso(fresh_dir(work / "damaged"))
    with open(iso, "r+b") as f:
        f.seek(446)
        f.write(bytes(16))  # remove the protective entry
        f.seek(512 + 24)
        f.write(b"\xff")  # and damage the primary header
        size = f.seek(0, os.SEEK_END)
        f.seek(size - 512 + 24)
        f.write(b"\xff")  # and the backup header
    verdict = hybrid_verdict(read_system_area(iso))
    assert verdict == (
        False,
        "a GPT that is damaged and no MBR partition entries: CD only, "
        "will not boot from a USB stick",
    )


def test_verdict_for_a_data_disk_without_boot_code(tmp_path: Path) -> None:
    disk = mbr_disk(tmp_path / "data.img")  # sfdisk leaves the boot code area empty
    assert hybrid_verdict(read_system_area(disk)) == (
        False,
        "MBR partition table without MBR boot code or an EFI System partition: will "
        "not boot from a USB stick",
    )


def test_verdict_mbr_signature_without_entries() -> None:
    assert hybrid_verdict(area(mbr_boot_code=True)) == (
        False,
        "an MBR signature but no partition entries: CD only, will not boot from a USB stick",
    )


# -- errors ----------------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.iso"
    with pytest.raises(InputError, match="does not exist") as info:
        inspect_iso(missing)
    assert info.value.where == str(missing)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory, not an ISO image"):
        inspect_iso(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"just some text\n" * 5000, os.urandom(2 * 1024 * 1024), b"tiny"],
    ids=["text", "random", "tiny"],
)
def test_not_an_iso(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path / "fake.iso", content)
    with pytest.raises(InputError, match="not an ISO 9660 image") as info:
        inspect_iso(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("package", "name"), [("ipxe", "ipxe.iso"), ("grub-rescue-pc", "grub-rescue-cdrom.iso")]
)
def test_truncated_iso(tmp_path: Path, package: str, name: str) -> None:
    data = debian_iso(package, name).read_bytes()
    half = write(tmp_path / name, data[: len(data) // 2])
    with pytest.raises(
        InputError,
        match=r"truncated: the ISO 9660 volume is \d+ bytes but the "
        rf"file has only {len(data) // 2} bytes",
    ):
        inspect_iso(half)


def test_damaged_directory_is_an_input_error(tmp_path: Path, sample_iso: Path) -> None:
    data = bytearray(sample_iso.read_bytes())
    root_extent = int.from_bytes(data[16 * 2048 + 156 + 2 : 16 * 2048 + 156 + 6], "little")
    data[root_extent * 2048 : root_extent * 2048 + 2048] = b"\xff" * 2048  # garbage records
    broken = write(tmp_path / "broken.iso", bytes(data))
    with pytest.raises(InputError, match="not a valid ISO 9660 image"):
        inspect_iso(broken)


def test_permission_denied(tmp_path: Path, sample_iso: Path) -> None:
    locked = tmp_path / "locked.iso"
    shutil.copyfile(sample_iso, locked)
    locked.chmod(0)
    tmp_path.chmod(0o755)
    if not is_root():
        with pytest.raises(InputError, match="cannot be read: permission denied"):
            inspect_iso(locked)
        return
    # root reads anything: drop to "nobody" in a child process, as a normal user would be.
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        message = b"no error"
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            inspect_iso(locked)
        except InputError as exc:
            message = str(exc).encode()
        except BaseException as exc:  # report anything else to the parent
            message = repr(exc).encode()
        finally:
            os.write(writer, message)
            os._exit(0)
    os.close(writer)
    os.waitpid(pid, 0)
    with os.fdopen(reader, "rb") as pipe:
        message = pipe.read().decode()
    assert message.startswith(f"{locked}: cannot be read: permission denied"), message


def test_cancelled_before_start(sample_iso: Path) -> None:
    reporter = NullReporter()
    reporter.cancel()
    with pytest.raises(Cancelled):
        inspect_iso(sample_iso, reporter)


def test_to_json_has_the_contract_keys(sample_iso: Path) -> None:
    data = inspect_iso(sample_iso).to_json()
    for key in (
        "label",
        "files",
        "eltorito",
        "partitions",
        "hybrid",
        "hybrid_reason",
        "partition_problems",
        "publisher",
        "application",
        "created",
        "system_id",
    ):
        assert key in data
    assert data["created"] == "2023-11-14T22:13:20+00:00"
    files = data["files"]
    assert isinstance(files, list)
    entry = next(f for f in files if f["path"] == "/boot/link-rel")
    assert set(entry) == {"path", "type", "size", "mode", "uid", "gid", "target"}
    assert (entry["type"], entry["target"], entry["mode"]) == ("symlink", "grub/grub.cfg", 0o777)
    assert json.loads(json.dumps(data)) == data

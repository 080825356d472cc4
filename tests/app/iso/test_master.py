"""Mastering real trees, read back with xorriso, isoinfo and pycdlib."""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import time
from pathlib import Path

import pycdlib
import pytest

from app.errors import Cancelled, StageError
from app.iso.imageio import ImageWriter
from app.iso.master import BootSpec, MasterSpec, master_iso
from app.reporter import NullReporter, RecordingReporter
from tests.app.iso.mastering_helpers import (
    BIOS_BOOT,
    EFI_IMAGE,
    make_boot_tree,
    run,
    tree_listing,
    xorriso_listing,
    xorriso_report,
)

BOOT = BootSpec(bios_boot=BIOS_BOOT, efi_image=EFI_IMAGE)
DEEP = "/".join(f"level{i}" for i in range(1, 13))
COLLIDING = [f"a-very-long-common-prefix-for-names-{i:03d}.txt" for i in range(40)]
AMBIGUOUS = ["README", "readme", "ReadMe", "read.me", "READ_ME", "read_me."]
NON_ASCII = "Grüße, 世界 😀.txt"
LONG_ASCII = "L" * 255
LONG_UTF8 = "ü" * 127  # 254 bytes


def build_rich_tree(root: Path) -> Path:
    """Everything a live tree can hold: modes, owners, links, depth, awkward names."""
    make_boot_tree(root)
    files = {
        "plain.txt": 0o644,
        "tool": 0o755,
        "secret": 0o600,
        "suid-tool": 0o4755,
        "empty-file": 0o644,
        NON_ASCII: 0o644,
        LONG_ASCII: 0o640,
        LONG_UTF8: 0o444,
    }
    for name, mode in files.items():
        path = root / name
        path.write_bytes(b"" if name == "empty-file" else f"content of {name}\n".encode())
        if os.geteuid() == 0 and name == "suid-tool":
            os.chown(path, 1000, 100)  # before chmod: chown clears set-uid
        path.chmod(mode)
    (root / "sticky").mkdir(mode=0o755)
    (root / "sticky").chmod(0o1777)
    (root / "setgid").mkdir()
    (root / "setgid").chmod(0o2755)
    (root / "empty" / "inner").mkdir(parents=True)
    (root / "empty").chmod(0o700)
    (root / "Ωmega").mkdir()
    (root / "link-rel").symlink_to("plain.txt")
    (root / "link-abs-dangling").symlink_to("/nonexistent/target")
    (root / "link-dir").symlink_to("boot")
    (root / "link-long").symlink_to("x/" * 150 + "end")
    os.link(root / "plain.txt", root / "hardlink.txt")
    deep = root / DEEP
    deep.mkdir(parents=True)
    (deep / "deep.txt").write_text("deep\n")
    collide = root / "collide"
    collide.mkdir()
    for name in COLLIDING + AMBIGUOUS:
        (collide / name).write_text(name)
    if os.geteuid() == 0:
        os.chown(root / "setgid", 1234, 5678)
        os.lchown(root / "link-rel", 42, 43)
    return root


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    base = tmp_path_factory.mktemp("rich")
    tree = build_rich_tree(base / "tree")
    iso = base / "rich.iso"
    result = master_iso(
        MasterSpec(tree=tree, output=iso, label="RICH_TREE", boot=BOOT, publisher="LIVESMITH TESTS")
    )
    assert result.path == iso and result.size == iso.stat().st_size
    return tree, iso, result.warnings


def test_every_entry_keeps_name_type_size_mode_owner_and_target(rich) -> None:
    tree, iso, _ = rich
    on_disk = tree_listing(tree)
    in_iso = xorriso_listing(iso)
    # Mastering adds exactly two entries: the boot catalog and the hidden relocation dir.
    assert in_iso.pop("/boot/boot.cat").kind == "file"
    assert in_iso.pop("/.rr_moved").kind == "dir"
    assert in_iso == on_disk
    # Spot checks, so a broken comparison cannot pass unnoticed.
    assert in_iso["/suid-tool"].mode == 0o104755
    assert in_iso["/sticky"].mode == 0o41777
    assert in_iso[f"/{DEEP}/deep.txt"].size == 5
    assert in_iso["/link-long"].target == "x/" * 150 + "end"
    assert in_iso[f"/{NON_ASCII}"].kind == "file"
    if os.geteuid() == 0:
        assert (in_iso["/setgid"].uid, in_iso["/setgid"].gid) == (1234, 5678)
        assert (in_iso["/link-rel"].uid, in_iso["/link-rel"].gid) == (42, 43)


def test_deep_directories_are_relocated_with_a_warning(rich) -> None:
    _, iso, warnings = rich
    assert any(
        "nested deeper than the 8 levels ISO 9660 allows" in w
        and "level8" in w
        and "/.rr_moved" in w
        for w in warnings
    ), warnings
    plain = run("isoinfo", "-f", "-i", iso).split()
    assert "/RR_MOVED/LEVEL8" in plain  # the ISO 9660 tree has at most 8 levels
    assert max(p.count("/") for p in plain) <= 8


def test_iso9660_and_joliet_names_are_valid_unique_and_complete(rich) -> None:
    tree, iso, _ = rich
    reader = pycdlib.PyCdlib()
    reader.open(str(iso))
    try:
        iso_names: list[str] = []
        for _, dirs, files in reader.walk(iso_path="/"):
            names = dirs + files
            assert len(names) == len({n.split(";")[0].rstrip(".") for n in names})
            iso_names += names
        joliet: list[str] = []
        for path, dirs, files in reader.walk(joliet_path="/"):
            assert len(dirs + files) == len(set(dirs + files)), path
            joliet += [f"{path.rstrip('/')}/{n}" for n in dirs + files]
    finally:
        reader.close()
    for name in iso_names:
        ident = name.split(";")[0]
        assert re.fullmatch(r"[A-Z0-9_]+(\.[A-Z0-9_]*)?", ident), name
        stem, _, ext = ident.partition(".")
        assert len(stem) + len(ext) <= 31
    for path in joliet:
        name = path.rsplit("/", 1)[1]
        assert len(name.encode()) <= 64 and not set(name) & set("*/:;?\\"), name
    # Joliet has no symlinks; every other entry is there (plus the boot catalog).
    expected = {p for p, e in tree_listing(tree).items() if e.kind != "symlink" and p != "/"}
    assert len(joliet) == len(expected) + 1
    assert f"/{NON_ASCII.replace('😀', '_')}" in joliet  # UCS-2 has no emoji
    assert "/" + "L" * 64 in joliet  # cut to 64 characters
    assert "/" + "ü" * 32 in joliet  # cut to 64 bytes of UTF-8
    assert len([p for p in joliet if p.startswith("/collide/a-very-long")]) == len(COLLIDING)


def test_pycdlib_reads_back_the_rock_ridge_tree(rich) -> None:
    tree, iso, _ = rich
    reader = pycdlib.PyCdlib()
    reader.open(str(iso))
    try:
        for rel in ("plain.txt", "secret", "suid-tool", NON_ASCII, LONG_UTF8, "setgid"):
            record = reader.get_record(rr_path=f"/{rel}")
            st = (tree / rel).lstat()
            assert reader.file_mode(rr_path=f"/{rel}") == st.st_mode
            entries = record.rock_ridge.dr_entries, record.rock_ridge.ce_entries
            px = next(e.px_record for e in entries if e is not None and e.px_record)
            assert (px.posix_user_id, px.posix_group_id) == (st.st_uid, st.st_gid)
        link = reader.get_record(rr_path="/link-abs-dangling")
        assert link.rock_ridge.symlink_path() == b"/nonexistent/target"
        with reader.open_file_from_iso(rr_path=f"/{DEEP}/deep.txt") as f:
            assert f.read() == b"deep\n"
    finally:
        reader.close()


def test_isoinfo_sees_rock_ridge_names_and_modes(rich) -> None:
    _, iso, _ = rich
    listing = run("isoinfo", "-R", "-l", "-i", iso)
    assert re.search(r"-rw-------\s+1\s+\d+\s+\d+\s+\d+ .* secret\s*$", listing, re.M)
    assert re.search(rf"\s{re.escape(NON_ASCII)}\s*$", listing, re.M)
    assert re.search(rf"\s{LONG_ASCII}\s*$", listing, re.M)


def test_el_torito_has_bios_and_uefi_entries(rich) -> None:
    _, iso, _ = rich
    report = xorriso_report(iso)
    assert re.search(r"El Torito boot img :\s+1\s+BIOS\s+y\s+none\s+0x0000\s+0x00\s+4\s", report)
    assert re.search(r"El Torito boot img :\s+2\s+UEFI\s+y\s+none\s+0x0000\s+0x00\s+4096\s", report)
    assert "El Torito img path :   1  /boot/syslinux/isolinux.bin" in report
    assert "El Torito img opts :   1  boot-info-table isohybrid-suitable" in report
    assert "El Torito img path :   2  /boot/grub/efi.img" in report
    assert "El Torito cat path : /boot/boot.cat" in report


def _boot_only_tree(tmp_path: Path) -> Path:
    return make_boot_tree(tmp_path / "tree")


def test_bios_only_image(tmp_path: Path) -> None:
    tree = _boot_only_tree(tmp_path)
    iso = tmp_path / "bios.iso"
    master_iso(
        MasterSpec(tree=tree, output=iso, label="BIOS_ONLY", boot=BootSpec(bios_boot=BIOS_BOOT))
    )
    report = xorriso_report(iso)
    assert "El Torito boot img :   1  BIOS" in report
    assert "UEFI" not in report
    assert "MBR partition      :   1   0x00  0xee" in report
    assert "EFI System" not in run("fdisk", "-l", iso)


def test_uefi_only_image(tmp_path: Path) -> None:
    tree = _boot_only_tree(tmp_path)
    iso = tmp_path / "uefi.iso"
    master_iso(
        MasterSpec(tree=tree, output=iso, label="UEFI_ONLY", boot=BootSpec(efi_image=EFI_IMAGE))
    )
    report = xorriso_report(iso)
    assert re.search(r"El Torito boot img :\s+1\s+UEFI", report)
    assert "BIOS" not in report.split("El Torito images")[1].split("System area")[0]
    assert iso.read_bytes()[:432] == bytes(432)  # no BIOS boot code without ISOLINUX
    assert "EFI System" in run("fdisk", "-l", iso)


def test_any_boot_image_without_hybrid(tmp_path: Path) -> None:
    # The mkisofs role: a tree with its own (non-ISOLINUX) no-emulation boot image.
    tree = tmp_path / "tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "boot" / "loader.bin").write_bytes(b"\xeb\xfe" + bytes(2046))
    iso = tmp_path / "cd.iso"
    master_iso(
        MasterSpec(
            tree=tree,
            output=iso,
            label="CD_ONLY",
            boot=BootSpec(bios_boot="boot/loader.bin", hybrid=False),
        )
    )
    assert iso.read_bytes()[:512] == bytes(512)  # no MBR
    assert "El Torito img path :   1  /boot/loader.bin" in xorriso_report(iso)


def test_plain_data_image_without_boot(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "data.txt").write_text("data\n")
    iso = tmp_path / "data.iso"
    master_iso(MasterSpec(tree=tree, output=iso, label="DATA"))
    assert iso.read_bytes()[:32768] == bytes(32768)
    assert "/data.txt" in xorriso_listing(iso)


EPOCH = 1_700_000_000


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_source_date_epoch_gives_identical_bytes(tmp_path: Path, monkeypatch) -> None:
    tree = build_rich_tree(tmp_path / "tree")
    first, second, other = tmp_path / "1.iso", tmp_path / "2.iso", tmp_path / "3.iso"
    master_iso(MasterSpec(tree, first, "REPRO", BOOT, source_date_epoch=EPOCH))
    # A rebuilt tree has new mtimes (later than the epoch): they are clamped. Another
    # time zone changes nothing either (pycdlib itself stamps local time).
    os.utime(tree / "plain.txt")
    os.utime(tree / "collide")
    monkeypatch.setenv("TZ", "America/St_Johns")
    time.tzset()
    try:
        master_iso(MasterSpec(tree, second, "REPRO", BOOT, source_date_epoch=EPOCH))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert _sha256(first) == _sha256(second)
    master_iso(MasterSpec(tree, other, "REPRO2", BOOT, source_date_epoch=EPOCH))
    assert _sha256(first) != _sha256(other)
    # The volume dates are the epoch (2023-11-14 22:13:20 UTC) in every descriptor.
    data = first.read_bytes()
    for sector in (16, 18):  # PVD, Joliet SVD (17 is the El Torito boot record)
        assert data[sector * 2048 + 813 : sector * 2048 + 830] == b"2023111422132000\0"


def test_the_epoch_pins_the_bytes_and_older_mtimes_are_kept(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    old = tree / "old.txt"
    old.write_text("old\n")
    os.utime(old, (981173106, 981173106))  # 2001-02-03 04:05:06 UTC
    (tree / "new.txt").write_text("new\n")
    isos = [tmp_path / "a.iso", tmp_path / "b.iso"]
    for iso in isos:
        master_iso(MasterSpec(tree=tree, output=iso, label="EPOCH", source_date_epoch=EPOCH))
    assert _sha256(isos[0]) == _sha256(isos[1])
    reader = pycdlib.PyCdlib()
    reader.open(str(isos[0]))
    try:
        old_date = reader.get_record(rr_path="/old.txt").date
        new_date = reader.get_record(rr_path="/new.txt").date
    finally:
        reader.close()
    assert (
        old_date.years_since_1900,
        old_date.month,
        old_date.day_of_month,
        old_date.hour,
        old_date.gmtoffset,
    ) == (101, 2, 3, 4, 0)
    assert (new_date.years_since_1900, new_date.month, new_date.day_of_month) == (123, 11, 14)


def _small_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (tree / "b.txt").write_text("b\n")
    return tree


def _leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def test_success_leaves_only_the_output_and_reports_progress(tmp_path: Path) -> None:
    tree = _small_tree(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    reporter = RecordingReporter()
    result = master_iso(MasterSpec(tree=tree, output=out_dir / "x.iso", label="X"), reporter)
    assert os.listdir(out_dir) == ["x.iso"]
    assert reporter.steps[:3] == [
        "Checking the tree",
        "Laying out the ISO image",
        "Writing the ISO image",
    ]
    assert reporter.last_progress is not None
    done, total = reporter.last_progress
    assert done == total >= 3 * 1024 * 1024
    assert result.warnings == []


class CancelWhileWriting(NullReporter):
    def __init__(self) -> None:
        super().__init__()
        self.writing = False
        self.calls = 0

    def step(self, name: str) -> None:
        self.writing = name == "Writing the ISO image"

    def progress(self, done: int, total: int) -> None:
        if self.writing:
            self.calls += 1
            if done > 0:
                self.cancel()


def test_cancel_removes_the_partial_file_and_keeps_an_old_output(tmp_path: Path) -> None:
    tree = _small_tree(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = out_dir / "x.iso"
    output.write_bytes(b"previous image")
    reporter = CancelWhileWriting()
    with pytest.raises(Cancelled):
        master_iso(MasterSpec(tree=tree, output=output, label="X"), reporter)
    assert reporter.calls > 0
    assert os.listdir(out_dir) == ["x.iso"]
    assert output.read_bytes() == b"previous image"


class DeleteBeforeWriting(NullReporter):
    def __init__(self, victim: Path) -> None:
        super().__init__()
        self.victim = victim

    def step(self, name: str) -> None:
        if name == "Writing the ISO image":
            self.victim.unlink()


def test_a_failure_while_writing_leaves_nothing(tmp_path: Path) -> None:
    tree = _small_tree(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(StageError) as info:
        master_iso(
            MasterSpec(tree=tree, output=out_dir / "x.iso", label="X"),
            DeleteBeforeWriting(tree / "a.bin"),
        )
    assert "could not write the image" in str(info.value)
    assert str(tree / "a.bin") in str(info.value)
    assert os.listdir(out_dir) == []


@pytest.mark.slow
def test_a_sparse_file_over_4_gib_is_mastered_in_several_extents(tmp_path: Path) -> None:
    size = 4 * 1024**3 + 3 * 1024**2 + 123
    if shutil.disk_usage(tmp_path).free < 2 * 1024**3:
        pytest.skip("needs ~1 GiB free in the temporary directory (the ISO stays sparse)")
    tree = tmp_path / "tree"
    tree.mkdir()
    big = tree / "big.img"
    with open(big, "wb") as f:  # sparse: only the ends hold data
        f.write(b"HEAD")
        f.seek(size - 4)
        f.write(b"TAIL")
    (tree / "small.txt").write_text("small\n")
    iso = tmp_path / "big.iso"
    result = master_iso(MasterSpec(tree=tree, output=iso, label="BIG"))
    assert any(
        "big.img is 4.0 GiB" in w and "several ISO 9660 extents" in w for w in result.warnings
    )
    listing = xorriso_listing(iso)
    assert listing["/big.img"].size == size
    assert listing["/small.txt"].size == 6
    extents = [line for line in run("isoinfo", "-l", "-i", iso).splitlines() if "BIG.IMG" in line]
    assert len(extents) == 2
    first_block = min(int(re.search(r"\[\s*(\d+)", line).group(1)) for line in extents)
    with open(iso, "rb") as f:  # the data of both extents is in place
        f.seek(first_block * 2048)
        assert f.read(4) == b"HEAD"
        f.seek(first_block * 2048 + size - 4)
        assert f.read(4) == b"TAIL"
    assert iso.stat().st_blocks * 512 < 1024**3  # zeros were not written: still sparse


def test_image_writer_gives_the_same_bytes_as_a_plain_file(tmp_path: Path) -> None:
    # pycdlib's write pattern: jumps between path tables and directories, file data in
    # order, padding by seek + one byte, a boot info table patched back in, big zeros.
    rng = random.Random(3)
    ops: list[tuple[int, bytes]] = []
    for block in range(40):
        ops.append((19 * 2048 + block * 12, rng.randbytes(12)))  # LE path table
        ops.append((21 * 2048 + block * 12, rng.randbytes(12)))  # BE path table
        ops.append(((30 + block) * 2048, rng.randbytes(rng.randrange(34, 2048))))
    position = 80 * 2048
    for _ in range(30):
        data = rng.choice([rng.randbytes(rng.randrange(1, 5000)), bytes(128 * 1024)])
        ops.append((position, data))
        position += len(data) + rng.randrange(0, 3000)
        ops.append((position - 1, b"\0"))
    ops.append((80 * 2048 + 8, rng.randbytes(56)))  # boot info table
    ops.append((position, rng.randbytes(100 * 1024)))
    ops.append((position + 1000, bytes(64 * 1024)))  # zeros over data
    ops.append((position + 200 * 1024, bytes(70 * 1024)))  # ends in a hole
    expected = bytearray()
    for offset, data in ops:
        expected[len(expected) : offset + len(data)] = bytes(
            max(0, offset + len(data) - len(expected))
        )
        expected[offset : offset + len(data)] = data
    path = tmp_path / "out"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        writer = ImageWriter(fd)
        for offset, data in ops:
            writer.seek(offset)
            assert writer.write(data) == len(data)
        assert writer.finish() == len(expected)
    finally:
        os.close(fd)
    assert path.read_bytes() == bytes(expected)
    assert path.stat().st_blocks * 512 < len(expected)  # zeros left as holes


class TruncateBeforeWriting(NullReporter):
    def __init__(self, victim: Path) -> None:
        super().__init__()
        self.victim = victim

    def step(self, name: str) -> None:
        if name == "Writing the ISO image":
            os.truncate(self.victim, 1000)


def test_a_file_that_shrinks_while_mastering_is_an_error_not_zeros(tmp_path: Path) -> None:
    tree = _small_tree(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(StageError) as info:
        master_iso(
            MasterSpec(tree=tree, output=out_dir / "x.iso", label="X"),
            TruncateBeforeWriting(tree / "a.bin"),
        )
    assert str(info.value) == (f"{tree}/a.bin: the file became shorter while it was being mastered")
    assert os.listdir(out_dir) == []


def test_a_32_character_label_is_kept_whole_in_the_primary_descriptor(tmp_path: Path) -> None:
    # Joliet has room for 16 UCS-2 characters; the primary volume id holds all 32.
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "hello.txt").write_text("hi\n")
    label = "LIVESMITH_LONG_LABEL_OF_32_CHARS"
    assert len(label) == 32
    out = tmp_path / "long.iso"
    master_iso(MasterSpec(tree=tree, output=out, label=label), NullReporter())
    assert run("isoinfo", "-d", "-i", out).count(f"Volume id: {label}") == 1
    read = pycdlib.PyCdlib()
    read.open(str(out))
    try:
        assert read.joliet_vd.volume_identifier.decode("utf-16-be").rstrip() == label[:16]
    finally:
        read.close()
    blkid = run("blkid", "-o", "value", "-s", "LABEL", out).strip()
    assert blkid == label

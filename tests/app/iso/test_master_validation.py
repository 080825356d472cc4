"""Every validation problem of mastering, with the message the user sees.

Validation reads the tree and writes nothing; all problems come together.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import app.iso.master as master_module
from app.errors import ValidationError
from app.iso.master import BootSpec, MasterSpec, check_master, master_iso, validate_master
from tests.app.iso.mastering_helpers import (
    BIOS_BOOT,
    EFI_IMAGE,
    ISOLINUX_BIN,
    make_boot_tree,
    make_efi_image,
)
from tests.conftest import ROOT, needs_root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "file.txt").write_text("x\n")
    return root


def spec(tree: Path, **changes) -> MasterSpec:
    values = dict(tree=tree, output=tree.parent / "out.iso", label="LIVE")
    values.update(changes)
    return MasterSpec(**values)


def messages(problems) -> list[str]:
    return [str(p) for p in problems]


def only(problems) -> str:
    assert len(problems) == 1, messages(problems)
    return str(problems[0])


def test_a_valid_spec_has_no_problems(tree: Path) -> None:
    assert validate_master(spec(tree)) == []


def test_lower_case_label_offers_the_upper_case_form(tree: Path) -> None:
    text = only(validate_master(spec(tree, label="my-live 1")))
    assert "label: the volume label 'my-live 1' may only contain upper-case A-Z" in text
    assert "(use 'MY_LIVE_1')" in text


def test_too_long_and_empty_labels(tree: Path) -> None:
    assert "has 33 characters; at most 32 are allowed" in only(
        validate_master(spec(tree, label="A" * 33))
    )
    assert "the volume label is empty" in only(validate_master(spec(tree, label="")))


def test_identifiers_must_fit_their_fields(tree: Path) -> None:
    problems = validate_master(spec(tree, publisher="P" * 129, preparer="Zoë"))
    assert messages(problems) == [
        "publisher: the publisher identifier must be at most 128 printable ASCII characters",
        "preparer: the preparer identifier must be at most 128 printable ASCII characters",
    ]


def test_a_name_that_is_not_utf8_is_rejected(tree: Path) -> None:
    bad = os.path.join(os.fsencode(tree), b"caf\xe9.txt")
    with open(bad, "wb") as f:
        f.write(b"latin-1 name")
    text = only(validate_master(spec(tree)))
    assert text.startswith(f"{tree}/caf\\xe9.txt: the name is not valid UTF-8")
    assert "(rename it)" in text


def test_a_symlink_target_that_is_not_utf8_is_rejected(tree: Path) -> None:
    os.symlink(b"caf\xe9", os.path.join(os.fsencode(tree), b"link"))
    assert only(validate_master(spec(tree))) == (
        f"{tree}/link: the symlink target is not valid UTF-8"
    )


def test_special_files_cannot_go_into_an_iso(tree: Path) -> None:
    os.mkfifo(tree / "pipe")
    text = only(validate_master(spec(tree)))
    assert text == (
        f"{tree}/pipe: is a FIFO (named pipe); an ISO image can only hold files, "
        "directories and symlinks (remove it from the tree)"
    )


def test_an_unreadable_file_is_reported() -> None:
    # Root reads every file, so as root the check runs as user nobody (setpriv).
    base = Path(tempfile.mkdtemp(prefix="livesmith-unreadable-"))
    try:
        base.chmod(0o755)
        tree, out = base / "tree", base / "out"
        tree.mkdir(mode=0o755)
        out.mkdir()
        out.chmod(0o777)
        (tree / "file.txt").write_text("x\n")
        (tree / "file.txt").chmod(0)
        script = (
            "import sys; from pathlib import Path; "
            "from app.iso.master import MasterSpec, validate_master; "
            "[print(p) for p in validate_master(MasterSpec(tree=Path(sys.argv[1]), "
            "output=Path(sys.argv[2]), label='X'))]"
        )
        as_user = (
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            if os.geteuid() == 0
            else []
        )
        result = subprocess.run(
            [*as_user, sys.executable, "-c", script, str(tree), str(out / "x.iso")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.splitlines() == [
            f"{tree}/file.txt: cannot read this file: permission denied"
        ]
    finally:
        shutil.rmtree(base)


def test_too_many_directories_for_the_path_table(tree: Path, monkeypatch) -> None:
    monkeypatch.setattr(master_module, "MAX_DIRECTORIES", 3)
    for name in ("a", "b", "c"):
        (tree / name).mkdir()
    assert only(validate_master(spec(tree))) == (
        f"{tree}: the tree has 4 directories; an ISO 9660 path table can hold at most 3"
    )


def test_deep_directories_are_a_warning_not_an_error(tree: Path) -> None:
    (tree / "1/2/3/4/5/6/7/8/9").mkdir(parents=True)
    check = check_master(spec(tree))
    assert check.problems == []
    assert check.warnings == [
        f"1 directory is nested deeper than the 8 levels ISO 9660 allows (first: "
        f"{tree}/1/2/3/4/5/6/7/8); they are relocated to /.rr_moved in the ISO 9660 tree. "
        "Rock Ridge readers (Linux, xorriso) show the real tree plus a hidden /.rr_moved"
    ]


def test_the_relocation_name_must_be_free_when_needed(tree: Path) -> None:
    (tree / "1/2/3/4/5/6/7/8").mkdir(parents=True)
    (tree / ".rr_moved").mkdir()
    assert only(validate_master(spec(tree))) == (
        f"{tree}/.rr_moved: this name is needed for relocating deep directories (rename it)"
    )


def test_files_of_4_gib_are_a_warning(tree: Path) -> None:
    with open(tree / "huge.img", "wb") as f:
        f.truncate(4 * 1024**3)  # sparse; never read by validation
    check = check_master(spec(tree))
    assert check.problems == []
    assert check.warnings == [
        f"{tree}/huge.img is 4.0 GiB: files of 4 GiB or more are stored in several ISO 9660 "
        "extents; Linux and xorriso read them, some other systems do not"
    ]


def test_missing_boot_files(tree: Path) -> None:
    (tree / "boot").mkdir()
    problems = validate_master(spec(tree, boot=BootSpec(bios_boot=BIOS_BOOT, efi_image=EFI_IMAGE)))
    assert messages(problems) == [
        f"{tree}/{BIOS_BOOT}: the BIOS boot file is missing from the tree",
        f"{tree}/{EFI_IMAGE}: the EFI boot image is missing from the tree",
    ]


def test_boot_paths_must_stay_inside_the_tree_and_be_files(tree: Path) -> None:
    (tree / "boot").mkdir()
    problems = validate_master(
        spec(tree, boot=BootSpec(bios_boot="../isolinux.bin", efi_image="boot"))
    )
    assert messages(problems) == [
        "BIOS boot file: '../isolinux.bin' is not a path inside the tree",
        f"{tree}/boot: the EFI boot image must be a regular file, not a dir",
    ]


def test_hybrid_needs_isolinux_or_grub_as_bios_boot_file(tree: Path) -> None:
    (tree / "boot").mkdir()
    (tree / "boot" / "loader.img").write_bytes(bytes(4096))
    boot = BootSpec(bios_boot="boot/loader.img")
    text = only(validate_master(spec(tree, boot=boot)))
    assert text == (
        f"{tree}/boot/loader.img: the BIOS boot file is not ISOLINUX (isolinux.bin) or "
        "GRUB's eltorito.img: a hybrid image's MBR can only start ISOLINUX or GRUB (use "
        "isolinux.bin or GRUB's eltorito.img, or master without hybrid)"
    )
    no_hybrid = BootSpec(bios_boot="boot/loader.img", hybrid=False)
    assert validate_master(spec(tree, boot=no_hybrid)) == []


def test_the_isohybrid_mbr_code_must_be_installed(tree: Path, monkeypatch) -> None:
    (tree / "boot").mkdir()
    shutil.copy(ISOLINUX_BIN, tree / "boot" / "isolinux.bin")
    monkeypatch.setattr(master_module, "ISOHDPFX", tree / "no-such-isohdpfx.bin")
    text = only(validate_master(spec(tree, boot=BootSpec(bios_boot="boot/isolinux.bin"))))
    assert text == (
        f"{tree}/no-such-isohdpfx.bin: the isohybrid MBR boot code is missing "
        "(install it with: sudo apt-get install isolinux)"
    )


def test_the_efi_image_must_stay_below_32_mib(tree: Path) -> None:
    (tree / "boot").mkdir()
    image = tree / "boot" / "efi.img"
    subprocess.run(["mformat", "-C", "-T", str(65536), "-i", str(image), "::"], check=True)
    text = only(validate_master(spec(tree, boot=BootSpec(efi_image="boot/efi.img"))))
    assert text == (
        f"{image}: the EFI boot image is 32.0 MiB; El Torito can describe at most "
        "32.0 MiB (a 16-bit count of 512-byte sectors) (make the FAT image "
        "smaller than 32 MiB)"
    )
    make_efi_image(image.with_name("small.img"), ISOLINUX_BIN, sectors=65535)
    assert validate_master(spec(tree, boot=BootSpec(efi_image="boot/small.img"))) == []


def test_the_efi_image_must_be_a_fat_image(tree: Path) -> None:
    (tree / "efi.img").write_bytes(bytes(1024 * 1024))
    boot = BootSpec(efi_image="efi.img", boot_catalog="boot.cat")
    assert only(validate_master(spec(tree, boot=boot))) == (
        f"{tree}/efi.img: the EFI boot image is not a FAT file system image (no boot sector "
        "signature)"
    )


def test_bios_boot_and_efi_image_must_differ(tree: Path) -> None:
    make_efi_image(tree / "efi.img", ISOLINUX_BIN)
    boot = BootSpec(bios_boot="efi.img", efi_image="efi.img", hybrid=False, boot_catalog="boot.cat")
    assert only(validate_master(spec(tree, boot=boot))) == (
        "boot: the BIOS boot file and the EFI image are the same file"
    )


def test_boot_catalog_needs_its_directory_and_a_free_name(tmp_path: Path) -> None:
    tree = make_boot_tree(tmp_path / "tree")
    boot = BootSpec(bios_boot=BIOS_BOOT, boot_catalog="isolinux/boot.cat")
    assert only(validate_master(spec(tree, boot=boot))) == (
        f"{tree}/isolinux/boot.cat: the directory for the El Torito boot catalog does not "
        "exist in the tree (create it, or choose another boot catalog path)"
    )
    boot = BootSpec(bios_boot=BIOS_BOOT, boot_catalog="boot/syslinux/isolinux.cfg")
    assert only(validate_master(spec(tree, boot=boot))) == (
        f"{tree}/boot/syslinux/isolinux.cfg: the boot catalog path is already taken by an "
        "entry of the tree (remove it, or choose another boot catalog path)"
    )


def test_output_location_problems(tree: Path) -> None:
    assert only(validate_master(spec(tree, output=tree.parent / "nope" / "x.iso"))) == (
        f"{tree.parent}/nope/x.iso: the output directory {tree.parent}/nope does not exist"
    )
    assert only(validate_master(spec(tree, output=tree))) == (
        f"{tree}: the output path is a directory"
    )
    assert only(validate_master(spec(tree, output=tree / "self.iso"))) == (
        f"{tree}/self.iso: the output file is inside the tree being mastered (write the ISO "
        "somewhere outside the tree)"
    )


def test_the_tree_must_be_a_directory(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert only(validate_master(spec(missing))) == (
        f"{missing}: the tree to master is not a directory"
    )


def test_mastering_does_not_read_source_date_epoch(tree: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")  # `livesmith master` reads it
    assert validate_master(spec(tree)) == []


@needs_root
def test_not_enough_free_space(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        tree = tmp_path / "tree"
        tree.mkdir()
        (tree / "data.bin").write_bytes(os.urandom(2 * 1024 * 1024))
        text = only(validate_master(spec(tree, output=small / "x.iso")))
        assert text.startswith(f"{small}: not enough free space: the ISO needs about 3.")
        assert "MiB, only 1.0 MiB are free (free some space or choose another output)" in text
        with pytest.raises(ValidationError):
            master_iso(spec(tree, output=small / "x.iso"))
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_all_problems_come_together_and_nothing_is_written(tree: Path) -> None:
    os.mkfifo(tree / "pipe")
    out = tree.parent / "out"
    out.mkdir()
    bad = spec(
        tree,
        label="bad label",
        output=out / "x.iso",
        boot=BootSpec(bios_boot="missing.bin", efi_image="missing.img"),
    )
    with pytest.raises(ValidationError) as info:
        master_iso(bad)
    assert len(info.value.problems) == 5
    text = str(info.value)
    assert text.startswith("5 problems found:")
    for part in (
        "volume label 'bad label'",
        "pipe: is a FIFO",
        "missing.bin: the BIOS boot",
        "missing.img: the EFI boot image is missing",
        "boot/boot.cat: the directory for the El Torito boot catalog does not exist",
    ):
        assert part in text
    assert os.listdir(out) == []

"""isolinux and GRUB EFI installation into a stage directory (real tools, no boots)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from app.compose import bootloader
from app.compose.bootloader import (
    BootEntry,
    BootFiles,
    BootMenu,
    default_menu,
    grub_config,
    grub_early_config,
    install_grub_efi,
    install_isolinux,
    syslinux_config,
    validate_bootloaders,
    validate_menu,
)
from app.errors import Cancelled, ValidationError
from app.reporter import NullReporter, RecordingReporter

BUILD_ID = "0123456789abcdef"
LABEL = "LIVESMITH_TEST"
EPOCH = 1_700_000_000
BASE = (
    f"livesmith.id={BUILD_ID} livesmith.label={LABEL} livesmith.image=/live/rootfs.sfs "
    "console=tty0 console=ttyS0,115200"
)


def _menu(**kwargs: object) -> BootMenu:
    return default_menu(title="Test Live", build_id=BUILD_ID, label=LABEL, **kwargs)


# ----------------------------------------------------------------------------- the menu


def test_default_menu_follows_the_medium_contract() -> None:
    menu = _menu(extra_cmdline="quiet splash")
    assert [e.key for e in menu.entries] == ["live", "toram", "safe", "nopersist"]
    live, toram, safe, nopersist = menu.entries
    assert live.cmdline == f"{BASE} quiet splash"
    assert toram.cmdline == f"{BASE} livesmith.copytoram quiet splash"
    assert safe.cmdline == f"{BASE} nomodeset quiet splash"
    assert nopersist.cmdline == f"{BASE} livesmith.persistence=no quiet splash"
    assert nopersist.title == "Test Live (without persistence)"
    assert (live.kernel, live.initrd) == ("/live/vmlinuz", "/live/initramfs.img")
    assert menu.default == 0 and menu.timeout_s == 5 and menu.serial
    assert validate_menu(menu) == []


def test_ram_mode_menu_has_no_copy_to_ram_entry() -> None:
    # (nor one without persistence: in RAM mode there is no overlay to keep)
    menu = _menu(image_path="none", safe=False)
    assert [e.key for e in menu.entries] == ["live"]
    assert "livesmith.image=none" in menu.entries[0].cmdline.split()


def test_validate_menu_lists_every_problem() -> None:
    bad = BootMenu(
        title="",
        build_id="XYZ",
        label="lower case",
        default=3,
        timeout_s=9,
        entries=(
            BootEntry("live", "A", 'quiet x="a b"'),
            BootEntry("live", "B\n", "quiet", kernel="vmlinuz"),
        ),
    )
    text = "\n".join(str(p) for p in validate_menu(bad))
    for expected in (
        "build ID 'XYZ'",
        "volume label 'lower case'",
        "default entry 3",
        "timeout 9 s",
        "menu title",
        "two entries have this key",
        "the title is empty or has control characters",
        "kernel path 'vmlinuz'",
        'contains "',
    ):
        assert expected in text, expected


def test_install_refuses_an_invalid_menu(tmp_path: Path) -> None:
    menu = BootMenu(
        title="T", build_id="nothex", label=LABEL, entries=(BootEntry("live", "T", "quiet"),)
    )
    with pytest.raises(ValidationError, match="16 lowercase hex"):
        install_isolinux(tmp_path, menu, NullReporter())
    assert not (tmp_path / "boot").exists()


# ------------------------------------------------------------------------------ isolinux


def test_install_isolinux_writes_loader_modules_and_menu(tmp_path: Path) -> None:
    menu = _menu(extra_cmdline="quiet", timeout_s=3)
    boot_file = install_isolinux(tmp_path, menu, RecordingReporter())
    assert boot_file == "boot/syslinux/isolinux.bin"
    target = tmp_path / "boot" / "syslinux"
    assert sorted(p.name for p in target.iterdir()) == [
        "isolinux.bin",
        "ldlinux.c32",
        "libutil.c32",
        "menu.c32",
        "syslinux.cfg",
    ]
    assert (target / "isolinux.bin").read_bytes() == Path(
        "/usr/lib/ISOLINUX/isolinux.bin"
    ).read_bytes()
    cfg = (target / "syslinux.cfg").read_text()
    assert "SERIAL 0 115200\n" in cfg
    assert "UI menu.c32\n" in cfg
    assert "TIMEOUT 30\n" in cfg  # tenths of a second
    assert "DEFAULT live\n" in cfg
    for entry in menu.entries:
        block = (
            f"LABEL {entry.key}\n  MENU LABEL {entry.title}\n  KERNEL /live/vmlinuz\n"
            f"  INITRD /live/initramfs.img\n  APPEND {entry.cmdline}\n"
        )
        assert block in cfg
    assert f"APPEND {BASE} livesmith.copytoram quiet\n" in cfg


def test_syslinux_zero_timeout_boots_at_once_and_serial_can_be_off() -> None:
    menu = BootMenu(
        title="T",
        build_id=BUILD_ID,
        label=LABEL,
        timeout_s=0,
        serial=False,
        default=1,
        entries=(BootEntry("live", "L", "a"), BootEntry("safe", "S", "b")),
    )
    cfg = syslinux_config(menu)
    assert "TIMEOUT 1\n" in cfg  # 0 would mean "wait forever" to syslinux
    assert "SERIAL" not in cfg
    assert "DEFAULT safe\n" in cfg


# ---------------------------------------------------------------------------------- GRUB


@pytest.fixture(scope="module")
def grub_stage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    stage = tmp_path_factory.mktemp("stage")
    assert (
        install_grub_efi(stage, _menu(extra_cmdline="quiet"), NullReporter(), epoch=EPOCH)
        == "boot/grub/efi.img"
    )
    return stage


def _mtools(*argv: str) -> str:
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        check=True,
        env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
    ).stdout


def test_efi_image_is_a_small_fat_holding_bootx64(grub_stage: Path, tmp_path: Path) -> None:
    image = grub_stage / "boot" / "grub" / "efi.img"
    assert image.stat().st_size < 32 * 1024 * 1024
    assert image.stat().st_size % (1024 * 1024) == 0
    listing = _mtools("mdir", "-i", str(image), "::/EFI/BOOT")
    assert re.search(r"BOOTX64\s+EFI", listing), listing
    info = _mtools("minfo", "-i", str(image))
    assert "serial number: 01234567" in info  # from the build ID: reproducible
    extracted = tmp_path / "BOOTX64.EFI"
    _mtools("mcopy", "-i", str(image), "::/EFI/BOOT/BOOTX64.EFI", str(extracted))
    at_root = grub_stage / "EFI" / "BOOT" / "BOOTX64.EFI"
    assert extracted.read_bytes() == at_root.read_bytes()
    assert at_root.read_bytes()[:2] == b"MZ"  # a PE/COFF executable
    assert not [p for p in (grub_stage / "boot" / "grub").iterdir() if p.name.startswith(".")]


def test_grub_binary_embeds_the_id_file_search(grub_stage: Path) -> None:
    binary = (grub_stage / "EFI" / "BOOT" / "BOOTX64.EFI").read_bytes()
    early = grub_early_config(_menu()).encode()
    assert early in binary  # grub-mkimage stores the -c config verbatim
    assert f"search --no-floppy --file --set=root /live/{BUILD_ID}.id".encode() in early
    assert f"search --no-floppy --label --set=root {LABEL}".encode() in early
    assert early.index(b"--file") < early.index(b"--label")  # the ID file wins


def test_grub_cfg_has_the_same_entries(grub_stage: Path) -> None:
    menu = _menu(extra_cmdline="quiet")
    cfg = (grub_stage / "boot" / "grub" / "grub.cfg").read_text()
    assert cfg == grub_config(menu)
    assert (
        "if serial --unit=0 --speed=115200; then terminal_input console serial; "
        "terminal_output console serial; fi\n"
    ) in cfg
    assert "set default=live\n" in cfg and "set timeout=5\n" in cfg
    for entry in menu.entries:
        assert f"menuentry '{entry.title}' --id {entry.key} {{\n" in cfg
        assert f"  linux /live/vmlinuz {entry.cmdline}\n  initrd /live/initramfs.img\n" in cfg


def test_grub_quotes_words_it_would_otherwise_interpret() -> None:
    menu = BootMenu(
        title="T",
        build_id=BUILD_ID,
        label=LABEL,
        entries=(BootEntry("live", "It's live", "a=$HOME b;c {d}"),),
    )
    assert validate_menu(menu) == []
    cfg = grub_config(menu)
    assert "menuentry 'It'\\''s live' --id live {" in cfg
    assert "  linux /live/vmlinuz 'a=$HOME' 'b;c' '{d}'\n" in cfg


def test_grub_efi_is_reproducible(tmp_path: Path) -> None:
    outputs = []
    for run in ("a", "b"):
        stage = tmp_path / run
        install_grub_efi(stage, _menu(), NullReporter(), epoch=EPOCH)
        outputs.append(
            [
                (stage / rel).read_bytes()
                for rel in ("boot/grub/efi.img", "EFI/BOOT/BOOTX64.EFI", "boot/grub/grub.cfg")
            ]
        )
    assert outputs[0] == outputs[1]
    # and the epoch really is what dates the files (not a constant)
    other = tmp_path / "c"
    install_grub_efi(other, _menu(), NullReporter(), epoch=EPOCH + 86400 * 400)
    assert (other / "boot/grub/efi.img").read_bytes() != outputs[0][0]


def test_the_epoch_argument_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_grub_efi(tmp_path / "a", _menu(), NullReporter(), epoch=EPOCH)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH + 86400 * 400))
    install_grub_efi(tmp_path / "b", _menu(), NullReporter(), epoch=EPOCH)
    assert (tmp_path / "a/boot/grub/efi.img").read_bytes() == (
        tmp_path / "b/boot/grub/efi.img"
    ).read_bytes()


class _CancelAfterFirstCheck(NullReporter):
    def cancelled(self) -> bool:
        return True


def test_cancel_leaves_no_grub_output(tmp_path: Path) -> None:
    with pytest.raises(Cancelled):
        install_grub_efi(tmp_path, _menu(), _CancelAfterFirstCheck(), epoch=EPOCH)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


def test_a_failing_tool_is_reported_with_its_output(tmp_path: Path) -> None:
    files = BootFiles(grub_efi_modules=tmp_path / "modules")
    (tmp_path / "modules").mkdir()
    for module in bootloader.GRUB_MODULES:  # present but not GRUB modules at all
        (tmp_path / "modules" / f"{module}.mod").write_text("not an ELF file\n")
    with pytest.raises(Exception, match="grub-mkimage") as failure:
        install_grub_efi(tmp_path / "stage", _menu(), NullReporter(), files=files, epoch=EPOCH)
    assert "failed (exit status" in str(failure.value)
    assert not (tmp_path / "stage" / "boot" / "grub" / "efi.img").exists()


# ---------------------------------------------------------------------------- validation


def test_validate_bootloaders_is_clean_on_this_host() -> None:
    assert validate_bootloaders(True, True) == []


def test_missing_files_name_their_debian_packages(tmp_path: Path) -> None:
    files = BootFiles(
        isolinux_bin=tmp_path / "isolinux.bin",
        syslinux_modules=tmp_path / "bios",
        grub_efi_modules=tmp_path / "x86_64-efi",
    )
    problems = validate_bootloaders(True, True, files=files)
    text = "\n".join(str(p) for p in problems)
    assert "isolinux.bin" in text and "install the Debian package isolinux" in text
    assert f"missing {tmp_path / 'bios'} (install the Debian package syslinux-common)" in text
    assert (
        f"missing {tmp_path / 'x86_64-efi'} (install the Debian package grub-efi-amd64-bin)" in text
    )
    assert len(problems) == 3  # one per package, not one per file
    (tmp_path / "x86_64-efi").mkdir()
    text = "\n".join(str(p) for p in validate_bootloaders(False, True, files=files))
    assert "x86_64-efi/part_gpt.mod" in text and "and 25 more" in text
    (tmp_path / "bios").mkdir()
    (tmp_path / "bios" / "menu.c32").write_bytes(b"")
    text = "\n".join(str(p) for p in validate_bootloaders(True, False, files=files))
    assert "bios/ldlinux.c32" in text and "bios/libutil.c32" in text and "menu.c32" not in text
    assert validate_bootloaders(False, False, files=files) == []
    only_bios = "\n".join(str(p) for p in validate_bootloaders(True, False, files=files))
    assert "grub-efi-amd64-bin" not in only_bios


def test_missing_programs_name_their_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    # No program can be found: what the user sees on a machine without grub-common/mtools.
    monkeypatch.setattr("app.tools.shutil.which", lambda *args, **kwargs: None)
    text = "\n".join(str(p) for p in validate_bootloaders(False, True))
    assert "'grub-mkimage' is not installed (install the Debian package grub-common)" in text
    assert "'mformat' is not installed (install the Debian package mtools)" in text
    assert validate_bootloaders(True, False) == []  # BIOS needs no programs

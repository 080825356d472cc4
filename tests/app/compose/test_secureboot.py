"""Secure Boot: the profile option, what counts as signed, and the signed chain's EFI
image (the real signed Debian packages, checked with mtools; no boots: see
tests/integration/test_secure_boot.py)."""

from __future__ import annotations

import gzip
import lzma
import re
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import zstandard

from app.cli import EXIT_INPUT
from app.compose import bootloader, secureboot
from app.compose.bootloader import default_menu, install_signed_efi, signed_grub_config
from app.compose.pipeline import (
    check_signed_kernel,
    make_context,
    validate_build,
    validate_secure_boot,
)
from app.compose.profile import (
    BootOptions,
    InstallMethod,
    PackageOptions,
    Profile,
    SecureBoot,
    builtin_profile,
    profile_from_dict,
    profile_to_dict,
    with_settings,
)
from app.errors import StageError, ValidationError
from app.packages.model import SourceKind, SourceSpec
from app.reporter import Level, NullReporter, RecordingReporter
from tests.conftest import ROOT
from tests.support.debian import kernel_tree, packaged_file
from tests.support.live_fixtures import live_glaucus_repo, live_profile, refused_before_building

BUILD_ID = "0123456789abcdef"
LABEL = "LIVESMITH_TEST"
EPOCH = 1_700_000_000
MARKER = b"~Module signature appended~\n"


def _menu() -> bootloader.BootMenu:
    return default_menu(title="Test Live", build_id=BUILD_ID, label=LABEL)


# ----------------------------------------------------------------------------- the profile


def test_secure_boot_is_auto_by_default_and_round_trips_through_toml() -> None:
    profile = builtin_profile("rescue")
    assert profile.boot.secure_boot is SecureBoot.AUTO
    on = replace(profile, boot=replace(profile.boot, secure_boot=SecureBoot.ON))
    data = profile_to_dict(on)
    assert data["boot"]["secure_boot"] == "on"
    assert profile_from_dict(data) == on


def test_set_secure_boot_from_the_command_line() -> None:
    profile = with_settings(builtin_profile("rescue"), ["boot.secure_boot=off"])
    assert profile.boot.secure_boot is SecureBoot.OFF


def test_an_unknown_secure_boot_value_names_the_choices() -> None:
    with pytest.raises(ValidationError) as info:
        with_settings(builtin_profile("rescue"), ["boot.secure_boot=yes"])
    text = str(info.value.problems[0])
    assert "boot.secure_boot" in text and "auto, on, off" in text, text


def test_profile_problems_name_every_reason_at_once() -> None:
    profile = Profile(
        "p",
        packages=PackageOptions(SourceSpec(SourceKind.GLAUCUS, "/repo"), ("busybox",)),
        boot=BootOptions(uefi=False, secure_boot=SecureBoot.ON),
    )
    problems = [str(p) for p in secureboot.profile_problems(profile)]
    assert len(problems) == 2, problems
    assert "UEFI boot is off" in problems[0]
    assert "glaucus source" in problems[1]
    assert all(p.startswith("boot: secure_boot:") for p in problems)


@pytest.mark.parametrize(
    ("kind", "install", "debian"),
    [
        (SourceKind.APT, InstallMethod.AUTO, True),
        (SourceKind.APT, InstallMethod.UNPACK, True),
        (SourceKind.DEB, InstallMethod.MMDEBSTRAP, True),
        (SourceKind.DEB, InstallMethod.UNPACK, False),
        (SourceKind.ARCH, InstallMethod.AUTO, False),
    ],
)
def test_only_debian_archive_builds_can_use_the_signed_chain(
    kind: SourceKind, install: InstallMethod, debian: bool
) -> None:
    profile = Profile(
        "p", packages=PackageOptions(SourceSpec(kind, "/x"), ("bash",), install=install)
    )
    assert secureboot.from_debian_archive(profile) is debian
    assert (secureboot.profile_problems(profile) == []) is debian


def test_missing_signed_packages_are_named() -> None:
    assert secureboot.availability_problems({}, "bookworm")[0].message == (
        "the archive of bookworm has no shim-signed or grub-efi-amd64-signed, "
        "so there is no signed boot chain to install"
    )


# ------------------------------------------------------------------------- what is signed


def test_signed_efi_programs_and_kernels_are_told_from_unsigned_ones(tmp_path: Path) -> None:
    shim = packaged_file("shim-signed", "shimx64.efi.signed")
    gcd = packaged_file("grub-efi-amd64-signed", "gcdx64.efi.signed")
    vmlinuz, _, _ = kernel_tree()
    for signed in (shim, gcd, vmlinuz):  # Debian's kernel is signed too
        assert secureboot.pe_signed(signed), signed
    # Our own GRUB (grub-mkimage) is not signed.
    unsigned = tmp_path / "grub.efi"
    bootloader.build_grub_efi(unsigned, _menu())
    assert unsigned.read_bytes()[:2] == b"MZ"
    assert not secureboot.pe_signed(unsigned)
    # The same signed file with its certificate table zeroed.
    data = bytearray(shim.read_bytes())
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    struct.pack_into("<II", data, pe + 24 + 112 + 4 * 8, 0, 0)
    stripped = tmp_path / "stripped.efi"
    stripped.write_bytes(bytes(data))
    assert not secureboot.pe_signed(stripped)
    (tmp_path / "text").write_text("MZ but not a PE file")
    assert not secureboot.pe_signed(tmp_path / "text")
    assert not secureboot.pe_signed(tmp_path / "absent")


def test_debians_signed_grub_has_every_command_the_menus_use() -> None:
    gcd = packaged_file("grub-efi-amd64-signed", "gcdx64.efi.signed")
    assert secureboot.grub_missing_commands(gcd) == []
    used = set(re.findall(r"^\s*(?:if |elif )?([a-z_]+)", signed_grub_config(_menu()), re.M))
    used |= set(re.findall(r"^\s*([a-z_]+)", bootloader.grub_config(_menu()), re.M))
    scripting = {"if", "elif", "else", "fi", "then", "set", "menuentry", "true"}
    assert used - scripting <= {*secureboot.GRUB_COMMANDS, "terminal_input", "terminal_output"}


def test_a_grub_without_the_menus_commands_is_caught(tmp_path: Path) -> None:
    fake = tmp_path / "grub.efi"
    fake.write_bytes(b"MZ\0linux\0initrd\0search\0")
    assert "configfile" in secureboot.grub_missing_commands(fake)


def _module(tmp_path: Path, name: str, signed: bool) -> Path:
    image = b"\x7fELF" + bytes(200) + (b"sig" + MARKER if signed else b"")
    path = tmp_path / "kernel" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".xz"):
        image = lzma.compress(image)
    elif name.endswith(".zst"):
        image = zstandard.ZstdCompressor().compress(image)
    elif name.endswith(".gz"):
        image = gzip.compress(image)
    path.write_bytes(image)
    return path


@pytest.mark.parametrize("suffix", [".ko", ".ko.xz", ".ko.zst", ".ko.gz"])
def test_module_signatures_are_read_after_decompression(tmp_path: Path, suffix: str) -> None:
    assert secureboot.module_signed(_module(tmp_path, f"signed{suffix}", True))
    assert not secureboot.module_signed(_module(tmp_path, f"unsigned{suffix}", False))


def test_unsigned_modules_are_named_in_one_warning(tmp_path: Path) -> None:
    _module(tmp_path, "a.ko", True)
    _module(tmp_path, "b.ko.xz", False)
    _module(tmp_path, "c.ko.zst", False)
    (tmp_path / "kernel" / "modules.dep").write_text("no module\n")
    problem = secureboot.unsigned_module_problem(tmp_path)
    assert problem is not None
    assert problem.message.startswith(
        "2 kernel modules without a signature: kernel/b.ko.xz, kernel/c.ko.zst;"
    ), problem


def test_debians_own_modules_are_signed() -> None:
    _, modules, _ = kernel_tree()
    assert secureboot.unsigned_module_problem(modules) is None


# ----------------------------------------------------------------- the signed EFI image


def _mtools(*argv: str) -> bytes:
    return subprocess.run(
        list(argv), capture_output=True, check=True, env={"MTOOLS_SKIP_CHECK": "1"}
    ).stdout


@pytest.fixture(scope="module")
def programs() -> list[tuple[str, Path]]:
    return [
        (secureboot.SHIM_FILE, packaged_file("shim-signed", "shimx64.efi.signed")),
        (secureboot.GRUB_FILE, packaged_file("grub-efi-amd64-signed", "gcdx64.efi.signed")),
        (
            secureboot.MOK_MANAGER_FILE,
            packaged_file("shim-helpers-amd64-signed", "mmx64.efi.signed"),
        ),
    ]


def test_the_esp_holds_shim_signed_grub_mok_manager_and_the_stub(
    tmp_path: Path, programs: list[tuple[str, Path]]
) -> None:
    stage = tmp_path / "stage"
    assert install_signed_efi(stage, _menu(), programs, NullReporter(), epoch=EPOCH) == (
        "boot/grub/efi.img"
    )
    image = stage / "boot/grub/efi.img"
    assert image.stat().st_size >= 8 << 20  # shim and GRUB do not fit in 4 MiB
    listing = _mtools("mdir", "-i", str(image), "::/EFI/BOOT").decode()
    for name in (r"BOOTX64\s+EFI", r"grubx64\s+efi", r"mmx64\s+efi"):
        assert re.search(name, listing, re.I), listing
    for dest, source in programs:
        assert _mtools("mtype", "-i", str(image), f"::/{dest}") == source.read_bytes(), dest
        assert (stage / dest).read_bytes() == source.read_bytes(), dest
    # gcdx64 reads /boot/grub/grub.cfg on the device it came from: on the ESP, the stub
    # that finds the medium; on the ISO, the menu itself.
    stub = _mtools("mtype", "-i", str(image), "::/boot/grub/grub.cfg").decode()
    assert stub == signed_grub_config(_menu())
    assert (stage / "boot/grub/grub.cfg").read_text() == bootloader.grub_config(_menu())
    assert not [p for p in (stage / "boot/grub").iterdir() if p.name.startswith(".")]


def test_the_stub_finds_the_medium_and_never_reads_itself_again() -> None:
    stub = signed_grub_config(_menu())
    lines = stub.splitlines()
    assert lines[2] == f"if search --no-floppy --file --set=root /live/{BUILD_ID}.id; then"
    assert "elif search --no-floppy --label --set=root LIVESMITH_TEST; then" in lines
    # configfile only where the search succeeded (root is the medium, not the ESP)
    branches = stub.split("else\n")
    assert "configfile" not in branches[-1]
    assert stub.count("configfile ($root)/boot/grub/grub.cfg") == 2
    assert "insmod" not in stub and "eval" not in stub


def test_the_signed_esp_is_reproducible(tmp_path: Path, programs: list[tuple[str, Path]]) -> None:
    images = []
    for name in ("a", "b"):
        stage = tmp_path / name
        install_signed_efi(stage, _menu(), programs, NullReporter(), epoch=EPOCH)
        images.append((stage / "boot/grub/efi.img").read_bytes())
    assert images[0] == images[1]


def test_a_failure_leaves_no_signed_output(
    tmp_path: Path, programs: list[tuple[str, Path]]
) -> None:
    stage = tmp_path / "stage"
    missing = [*programs, ("EFI/BOOT/extra.efi", tmp_path / "absent.efi")]
    with pytest.raises(OSError):
        install_signed_efi(stage, _menu(), missing, NullReporter(), epoch=EPOCH)
    assert [p for p in stage.rglob("*") if p.is_file()] == []


# -------------------------------------------------------------------------- the pipeline


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return live_glaucus_repo(tmp_path_factory.mktemp("repo"))


def _secure(profile: Profile, mode: SecureBoot, **boot: bool) -> Profile:
    return replace(profile, boot=replace(profile.boot, secure_boot=mode, **boot))


def test_on_that_cannot_be_met_is_refused_with_every_reason(repo: Path, tmp_path: Path) -> None:
    profile = _secure(live_profile(repo), SecureBoot.ON, uefi=False, bios=True)
    assert refused_before_building(profile, tmp_path) == [
        "boot: secure_boot: Secure Boot is a UEFI feature, and UEFI boot is off",
        "boot: secure_boot: the signed boot chain comes from Debian or Ubuntu packages, and "
        "this profile's packages come from a glaucus source (use the apt source (or .deb "
        "files with install = mmdebstrap))",
    ]


def test_auto_without_the_signed_chain_is_off_and_says_why(repo: Path, tmp_path: Path) -> None:
    reporter = RecordingReporter()
    ctx = make_context(_secure(live_profile(repo), SecureBoot.AUTO), tmp_path / "o.iso", reporter)
    assert validate_build(ctx) == []
    assert not ctx.secure_boot
    assert any(
        "Secure Boot: off, as the signed boot chain comes from Debian or Ubuntu packages" in m
        for _, m in reporter.logs
    ), reporter.logs


def test_on_with_debian_packages_finds_the_signed_chain(
    tmp_path: Path, package_cache: Path
) -> None:
    reporter = RecordingReporter()
    profile = _secure(builtin_profile("rescue"), SecureBoot.ON)
    ctx = make_context(profile, tmp_path / "o.iso", reporter, cache_dir=package_cache)
    assert validate_secure_boot(ctx) == []
    assert ctx.secure_boot and ctx.secure_apt_options
    found = secureboot.archive_packages(ctx.secure_apt_options)
    assert set(found) == set(secureboot.PACKAGES)
    assert all(re.fullmatch(r"[0-9a-f]{64}", p.sha256) for p in found.values())
    # An archive without the signed packages: Debian's contrib component alone.
    contrib = replace(
        profile,
        packages=replace(
            profile.packages, mirror="http://deb.debian.org/debian", components=("contrib",)
        ),
    )
    ctx = make_context(contrib, tmp_path / "o.iso", reporter, cache_dir=package_cache)
    problems = [str(p) for p in validate_secure_boot(ctx)]
    assert not ctx.secure_boot
    assert len(problems) == 1 and "has no shim-signed or grub-efi-amd64-signed" in problems[0]


def test_the_command_line_refuses_on_that_cannot_be_met(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "build",
            "--profile",
            "minimal",
            "--set",
            "boot.secure_boot=on",
            "--set",
            "boot.uefi=false",
            "-o",
            str(tmp_path / "x.iso"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == EXIT_INPUT, out.stderr
    assert "boot: secure_boot: Secure Boot is a UEFI feature, and UEFI boot is off" in out.stderr
    assert not (tmp_path / "x.iso").exists()


def _kernel_context(tmp_path: Path, mode: SecureBoot, vmlinuz: bytes) -> tuple[Any, Path]:
    reporter = RecordingReporter()
    profile = _secure(builtin_profile("minimal"), mode)
    ctx = make_context(profile, tmp_path / "o.iso", reporter, work_dir=tmp_path / "work")
    kernel = ctx.root / "boot" / "vmlinuz-6.1.0-test"
    kernel.parent.mkdir(parents=True)
    kernel.write_bytes(vmlinuz)
    ctx.secure_boot = True
    return ctx, kernel


def test_an_unsigned_kernel_fails_on_and_turns_auto_off(tmp_path: Path) -> None:
    unsigned = tmp_path / "grub.efi"  # any PE image without a signature
    bootloader.build_grub_efi(unsigned, _menu())
    ctx, kernel = _kernel_context(tmp_path / "on", SecureBoot.ON, unsigned.read_bytes())
    with pytest.raises(StageError) as info:
        check_signed_kernel(ctx, kernel, "6.1.0-test")
    assert str(info.value).startswith(
        "configure: the kernel /boot/vmlinuz-6.1.0-test carries no signature, and the signed "
        "GRUB refuses to start it under Secure Boot (use the distribution's signed kernel"
    ), info.value
    ctx, kernel = _kernel_context(tmp_path / "auto", SecureBoot.AUTO, unsigned.read_bytes())
    check_signed_kernel(ctx, kernel, "6.1.0-test")
    assert not ctx.secure_boot
    assert any("Secure Boot: off, as the kernel" in m for _, m in ctx.reporter.logs)


def test_a_signed_kernel_with_an_unsigned_module_stays_on_with_a_warning(tmp_path: Path) -> None:
    vmlinuz, _, _ = kernel_tree()
    ctx, kernel = _kernel_context(tmp_path, SecureBoot.ON, vmlinuz.read_bytes())
    modules = ctx.root / "lib/modules/6.1.0-test/extra"
    modules.mkdir(parents=True)
    (modules / "mine.ko").write_bytes(b"\x7fELF" + bytes(64))
    (modules / "theirs.ko").write_bytes(b"\x7fELF" + bytes(64) + MARKER)
    check_signed_kernel(ctx, kernel, "6.1.0-test")
    assert ctx.secure_boot
    warnings = [m for level, m in ctx.reporter.logs if level is Level.WARNING]
    assert warnings == [
        "Secure Boot: kernel modules: 1 kernel module without a signature: extra/mine.ko; "
        "under Secure Boot the kernel refuses to load it (sign them with a key enrolled in "
        "shim (MOK), or boot with Secure Boot off)"
    ]

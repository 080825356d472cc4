"""The planned ISO layout, derived from the profile before building."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.compose.layout import planned_iso_tree, tree_lines
from app.compose.profile import (
    BootOptions,
    ImageOptions,
    PackageOptions,
    Profile,
    RootImageFormat,
    SecureBoot,
)
from app.packages.model import PackageInfo, SourceKind, SourceSpec


def paths(profile: Profile, **kwargs) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.path for f in planned_iso_tree(profile, **kwargs)]


def test_default_profile_plans_both_boot_loaders_and_a_squashfs() -> None:
    found = paths(Profile("p"), build_id="0123456789abcdef")
    assert found == sorted(found)
    assert {
        "/live/vmlinuz",
        "/live/initramfs.img",
        "/live/rootfs.sfs",
        "/live/rootfs.sfs.sha512",
        "/live/0123456789abcdef.id",
        "/boot/syslinux/isolinux.bin",
        "/boot/syslinux/syslinux.cfg",
        "/boot/grub/grub.cfg",
        "/boot/grub/efi.img",
        "/EFI/BOOT/BOOTX64.EFI",
    } <= set(found)
    assert not any(p.startswith("/packages") for p in found)


def test_uefi_only_erofs_has_no_isolinux() -> None:
    profile = Profile(
        "p", boot=BootOptions(bios=False, uefi=True), image=ImageOptions(RootImageFormat.EROFS)
    )
    found = paths(profile)
    assert "/live/rootfs.erofs" in found and "/live/rootfs.sfs" not in found
    assert not any("syslinux" in p for p in found)
    assert "/EFI/BOOT/BOOTX64.EFI" in found


def test_ram_mode_has_no_root_image_and_bios_only_no_efi() -> None:
    profile = Profile(
        "p", boot=BootOptions(bios=True, uefi=False), image=ImageOptions(RootImageFormat.RAM)
    )
    found = paths(profile)
    assert not any(p.startswith("/live/rootfs") for p in found)
    assert not any("EFI" in p or "grub" in p for p in found)
    assert "/live/<BUILD_ID>.id" in found


def fake_package(name: str, version: str, kind: SourceKind) -> PackageInfo:
    return PackageInfo(name, version, 1, None, "", (), (), (), None, None, kind)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (
            SourceKind.DEB,
            {
                "/packages/busybox_1.0_amd64.deb",
                "/packages/Packages",
                "/packages/Packages.gz",
                "/packages/Release",
            },
        ),
        (
            SourceKind.ARCH,
            {
                "/packages/busybox_1.0_amd64.deb",
                "/packages/livesmith.db",
                "/packages/livesmith.db.tar.gz",
            },
        ),
        (
            SourceKind.GLAUCUS,
            {
                "/packages/busybox/busybox-1.0.tar.zst",
                "/packages/busybox/info",
                "/packages/busybox/sum",
            },
        ),
    ],
)
def test_carried_packages_are_listed_in_their_repository_layout(
    kind: SourceKind, expected: set[str]
) -> None:
    profile = Profile("p", packages=PackageOptions(SourceSpec(kind, "/srv/x"), carry=True))
    carried = [(fake_package("busybox", "1.0", kind), "busybox_1.0_amd64.deb")]
    found = set(paths(profile, packages=carried))
    assert {"/packages/index.json", "/packages/SHA256SUMS"} | expected <= found
    without = paths(
        replace(profile, packages=replace(profile.packages, carry=False)), packages=carried
    )
    assert not any(p.startswith("/packages") for p in without)


def test_tree_lines_show_each_folder_once_then_its_files_indented() -> None:
    lines = tree_lines(planned_iso_tree(Profile("p", boot=BootOptions(bios=False))))
    assert lines.count("live/") == 1 and lines.count("boot/") == 1
    assert lines.index("boot/") < lines.index("  grub/")
    assert any(line.startswith("    efi.img") for line in lines)
    assert any(line.startswith("  vmlinuz") for line in lines)


def test_secure_boot_plans_the_signed_chain_where_it_can_be_had() -> None:
    debian = Profile("p")  # the apt source: auto means the signed chain
    found = paths(debian)
    assert {"/EFI/BOOT/BOOTX64.EFI", "/EFI/BOOT/grubx64.efi", "/EFI/BOOT/mmx64.efi"} <= set(found)
    off = replace(debian, boot=BootOptions(secure_boot=SecureBoot.OFF))
    glaucus = replace(debian, packages=PackageOptions(SourceSpec(SourceKind.GLAUCUS, "/r")))
    for profile in (off, glaucus):
        found = paths(profile)
        assert "/EFI/BOOT/BOOTX64.EFI" in found
        assert not any(p.endswith(("grubx64.efi", "mmx64.efi")) for p in found)

from __future__ import annotations

import subprocess

import pytest

from tests.support.debian import (
    CACHE,
    busybox_static,
    grub_rescue_iso,
    ipxe_iso,
    kernel_tree,
    packaged_file,
)


def test_busybox_static_is_a_working_static_binary() -> None:
    busybox = busybox_static()
    out = subprocess.run(
        [str(busybox), "echo", "hello"], capture_output=True, text=True, check=True
    )
    assert out.stdout == "hello\n"


def test_kernel_tree_has_a_kernel_and_modules() -> None:
    vmlinuz, modules, version = kernel_tree()
    assert vmlinuz.stat().st_size > 1_000_000
    assert version in str(modules) and (modules / "kernel").is_dir()


def test_debian_isos_come_from_the_downloaded_packages() -> None:
    for iso in (ipxe_iso(), grub_rescue_iso()):
        assert CACHE in iso.parents  # unpacked from the cached .deb, not the installed copy
        with open(iso, "rb") as f:
            f.seek(16 * 2048 + 1)
            assert f.read(5) == b"CD001"


def test_a_file_the_package_does_not_ship_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="ships no file named no-such.iso"):
        packaged_file("ipxe", "no-such.iso")

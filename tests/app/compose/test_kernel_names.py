"""Which package names are taken for a kernel before the package's files are looked at."""

from __future__ import annotations

import pytest

from app.compose.pipeline import looks_like_kernel_package


@pytest.mark.parametrize(
    "name",
    [
        "linux",
        "linux-lts",
        "linux-zen",
        "linux-hardened",
        "linux-image-amd64",
        "linux-image-6.1.0-28-amd64",
        "kernel",
    ],
)
def test_kernel_package_names(name: str) -> None:
    assert looks_like_kernel_package(name)


@pytest.mark.parametrize(
    "name",
    [
        "linux-headers",
        "linux-lts-headers",
        "linux-zen-headers",
        "linux-api-headers",
        "linux-headers-6.1.0-28-amd64",
        "linux-image-6.1.0-28-amd64-dbg",
        "linux-docs",
        "kernel-headers",
        "linux-firmware",
        "busybox",
        "linuxdoc",
    ],
)
def test_names_that_ship_no_kernel(name: str) -> None:
    assert not looks_like_kernel_package(name)

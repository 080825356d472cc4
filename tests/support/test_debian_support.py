from __future__ import annotations

import subprocess

from tests.support.debian import busybox_static, kernel_tree


def test_busybox_static_is_a_working_static_binary() -> None:
    busybox = busybox_static()
    out = subprocess.run([str(busybox), "echo", "hello"], capture_output=True, text=True, check=True)
    assert out.stdout == "hello\n"


def test_kernel_tree_has_a_kernel_and_modules() -> None:
    vmlinuz, modules, version = kernel_tree()
    assert vmlinuz.stat().st_size > 1_000_000
    assert version in str(modules) and (modules / "kernel").is_dir()

"""Kernel module selection on the real Debian kernel package (no modules.dep, plain .ko)."""

from __future__ import annotations

import lzma
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import zstandard

from app.compose.kmod import (
    LIVE_MODULES,
    KernelModule,
    canonical,
    elf_section,
    find_kernel,
    missing_modules,
    module_info,
    modules_dep_text,
    modules_dir,
    resolve_modules,
    unknown_module_problems,
    write_modules_dep,
)
from app.compose.profile import KernelOptions, module_name_problems
from app.errors import StageError
from app.reporter import Level, RecordingReporter
from tests.conftest import needs_root
from tests.support.debian import busybox_static, kernel_tree


@pytest.fixture(scope="module")
def kernel() -> tuple[Path, str]:
    _, mod_dir, version = kernel_tree()
    return mod_dir, version


@pytest.fixture(scope="module")
def live(kernel) -> list[KernelModule]:
    return resolve_modules(kernel[0], LIVE_MODULES)


def raw_depends(module: KernelModule) -> list[str]:
    """depends= read straight from the file, independently of the resolver."""
    for key, value in module_info(module.path):
        if key == "depends":
            return [canonical(n) for n in value.split(",") if n]
    return []


def test_every_live_module_exists_in_the_debian_kernel(kernel) -> None:
    assert missing_modules(kernel[0], LIVE_MODULES) == []


def test_the_live_set_is_closed_and_ordered(live: list[KernelModule]) -> None:
    names = [m.name for m in live]
    assert len(names) == len(set(names))
    position = {name: i for i, name in enumerate(names)}
    for module in live:
        for dep in raw_depends(module):
            assert dep in position, f"{module.name} needs {dep}, which is missing"
            assert position[dep] < position[module.name], f"{dep} must load before {module.name}"
        for dep in module.softdeps:
            assert position[dep] < position[module.name]
    wanted = {canonical(n) for n in LIVE_MODULES}
    assert wanted <= set(names)


def test_known_dependency_chains(live: list[KernelModule]) -> None:
    by_name = {m.name: m for m in live}
    assert {"usb_storage", "usbcore", "scsi_mod"} <= set(by_name["uas"].depends)
    assert by_name["vfat"].depends == ("fat",)
    assert by_name["isofs"].depends == ("cdrom",)
    assert by_name["squashfs"].depends == ()
    assert by_name["overlay"].depends == ()
    assert by_name["sr_mod"].depends == ("scsi_mod", "cdrom", "scsi_common")
    # libcrc32c asks for "crc32c" through softdep; that is an alias, resolved to the
    # generic implementation that loads on every CPU.
    assert by_name["libcrc32c"].softdeps == ("crc32c_generic",)
    assert "libcrc32c" in by_name["erofs"].depends
    assert by_name["uhci_hcd"].softdeps == ("ehci_pci",)


def test_modules_dep_lists_the_whole_chain_closest_first(live: list[KernelModule]) -> None:
    lines = dict(line.split(":", 1) for line in modules_dep_text(live).splitlines())
    uas = lines["kernel/drivers/usb/storage/uas.ko"].split()
    # modprobe loads from the end of the list: basic modules last
    assert uas[0] == "kernel/drivers/usb/storage/usb-storage.ko"
    assert uas.index("kernel/drivers/usb/core/usbcore.ko") < uas.index(
        "kernel/drivers/usb/common/usb-common.ko"
    )
    assert lines["kernel/fs/overlayfs/overlay.ko"].strip() == ""
    assert lines["kernel/lib/libcrc32c.ko"].split() == ["kernel/crypto/crc32c_generic.ko"]
    assert len(lines) == len(live)


@needs_root
def test_busybox_modprobe_reads_the_generated_modules_dep(live, tmp_path: Path) -> None:
    # busybox modprobe looks in /lib/modules/$(uname -r): give it a chroot where that is
    # our module set, and let it print what it would load (-D) for a few modules.
    mods = tmp_path / "lib/modules" / os.uname().release
    for module in live:
        (mods / module.plain_relpath).parent.mkdir(parents=True, exist_ok=True)
        (mods / module.plain_relpath).write_bytes(module.read())
    write_modules_dep(live, mods)
    (tmp_path / "bin").mkdir()
    shutil.copy(busybox_static(), tmp_path / "bin/busybox")

    def show(name: str) -> list[str]:
        out = subprocess.run(
            ["chroot", str(tmp_path), "/bin/busybox", "modprobe", "-D", name],
            capture_output=True,
            text=True,
            check=True,
        )
        return [line.split()[1].rsplit("/", 1)[1] for line in out.stdout.splitlines()]

    assert show("uas") == [
        "usb-common.ko",
        "usbcore.ko",
        "scsi_common.ko",
        "scsi_mod.ko",
        "usb-storage.ko",
        "uas.ko",
    ]
    assert show("erofs") == ["crc32c_generic.ko", "libcrc32c.ko", "erofs.ko"]
    assert show("usb-storage")[-1] == "usb-storage.ko"  # dash/underscore-insensitive
    missing = subprocess.run(
        ["chroot", str(tmp_path), "/bin/busybox", "modprobe", "-D", "nope"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0


def test_compressed_modules_and_an_existing_modules_dep(kernel, tmp_path: Path) -> None:
    source, _ = kernel
    mods = tmp_path / "modules"
    picks = {
        "fs/fat/vfat.ko": "xz",
        "fs/fat/fat.ko": "zst",
        "fs/isofs/isofs.ko": "",
        "drivers/cdrom/cdrom.ko": "xz",
    }
    for rel, kind in picks.items():
        data = (source / "kernel" / rel).read_bytes()
        target = mods / "kernel" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "xz":
            Path(f"{target}.xz").write_bytes(lzma.compress(data, check=lzma.CHECK_CRC32))
        elif kind == "zst":
            Path(f"{target}.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
        else:
            target.write_bytes(data)
    resolved = resolve_modules(mods, ["vfat", "isofs"])
    assert [m.name for m in resolved] == ["fat", "vfat", "cdrom", "isofs"]
    fat = resolved[0]
    assert fat.relpath == "kernel/fs/fat/fat.ko.zst" and fat.plain_relpath == "kernel/fs/fat/fat.ko"
    assert fat.read() == (source / "kernel/fs/fat/fat.ko").read_bytes()

    # When modules.dep exists it wins over .modinfo (here it invents a dependency).
    (mods / "modules.dep").write_text("kernel/fs/isofs/isofs.ko: kernel/fs/fat/vfat.ko.xz\n")
    assert [m.name for m in resolve_modules(mods, ["isofs"])] == ["fat", "vfat", "isofs"]


def test_builtin_and_missing_names(kernel) -> None:
    mod_dir, _ = kernel
    reporter = RecordingReporter()
    resolved = resolve_modules(mod_dir, ["nls_base", "no_such_module", "loop"], reporter=reporter)
    assert [m.name for m in resolved] == ["loop"]  # nls_base is built in: skipped
    assert [msg for level, msg in reporter.logs if level == Level.WARNING] == [
        f"kernel module no_such_module is not in {mod_dir} and not built in; it is left out"
    ]
    assert missing_modules(mod_dir, ["nls_base", "no_such_module"]) == ["no_such_module"]


def test_unknown_extra_modules_name_the_kernel_and_its_closest_modules(kernel) -> None:
    mod_dir, version = kernel
    # Modules (either spelling), a builtin one and an alias the generic module provides pass.
    wanted = [
        "nvme",
        "usb-storage",
        "nls_base",
        "crc32c",
        "usb_storag",
        "e1000x",
        "zz_no_such_thing_zz",
        "usb_storag",
    ]
    problems = unknown_module_problems(mod_dir, version, wanted)
    assert [(p.where, p.message, p.hint) for p in problems] == [
        (
            "extra kernel module",
            f"'usb_storag' is neither a module of kernel {version} nor built into it",
            "did you mean 'usb_storage'?",
        ),
        (
            "extra kernel module",
            f"'e1000x' is neither a module of kernel {version} nor built into it",
            "did you mean 'e1000' or 'e1000e' or 'e100'?",
        ),
        (
            "extra kernel module",
            f"'zz_no_such_thing_zz' is neither a module of kernel {version} nor built into it",
            problems[2].hint,
        ),
    ]
    assert problems[2].hint is not None and "has a similar name" in problems[2].hint
    assert (
        unknown_module_problems(None, "6.1.0-x", ["nvme"])[0].message
        == "'nvme' is not in kernel 6.1.0-x, which has no modules"
    )
    assert unknown_module_problems(mod_dir, version, []) == []


def test_module_names_are_checked_before_the_build_and_every_real_one_passes(kernel) -> None:
    mod_dir, _ = kernel
    real = [path.name.split(".ko")[0] for path in mod_dir.rglob("*.ko*")]
    assert len(real) > 1000
    assert module_name_problems(KernelOptions(extra_modules=tuple(real))) == []
    bad = ("nvme.ko", "kernel/drivers/nvme", "usb storage", "-x", "")
    problems = module_name_problems(KernelOptions(extra_modules=("nvme", *bad)))
    assert [p.message for p in problems] == [
        "not valid module names: 'nvme.ko', 'kernel/drivers/nvme', 'usb storage', '-x', ''"
    ]


def test_elf_section_rejects_files_that_are_not_modules(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="not an ELF file"):
        elf_section(b"MZ" + bytes(100), ".modinfo", "bogus.ko")
    with pytest.raises(StageError, match="damaged ELF"):
        elf_section(b"\x7fELF\x02\x01" + b"\xff" * 58, ".modinfo", "cut.ko")


def test_find_kernel_and_modules_dir(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "boot").mkdir(parents=True)
    (root / "boot/vmlinuz-6.1.0-9-amd64").write_bytes(b"old")
    (root / "boot/vmlinuz-6.1.0-10-amd64").write_bytes(b"new")
    host_kernel = tmp_path / "host-vmlinuz"
    host_kernel.write_bytes(b"host")
    os.symlink(host_kernel, root / "boot/vmlinuz-9.9.9")  # never followed out of the root
    (root / "usr/lib/modules/6.1.0-10-amd64").mkdir(parents=True)
    os.symlink("usr/lib", root / "lib")  # merged /usr
    assert find_kernel(root) == (root / "boot/vmlinuz-6.1.0-10-amd64", "6.1.0-10-amd64")
    assert modules_dir(root, "6.1.0-10-amd64") == root / "usr/lib/modules/6.1.0-10-amd64"
    assert modules_dir(root, "6.1.0-9-amd64") is None

    arch = tmp_path / "arch"
    (arch / "usr/lib/modules/6.9.1-arch1-1").mkdir(parents=True)
    (arch / "usr/lib/modules/6.9.1-arch1-1/vmlinuz").write_bytes(b"k")
    assert find_kernel(arch) == (arch / "usr/lib/modules/6.9.1-arch1-1/vmlinuz", "6.9.1-arch1-1")
    assert find_kernel(tmp_path / "empty") is None


def test_find_kernel_in_the_real_package() -> None:
    vmlinuz, mod_dir, version = kernel_tree()
    package_root = mod_dir.parents[2]
    assert find_kernel(package_root) == (vmlinuz, version)
    assert modules_dir(package_root, version) == mod_dir

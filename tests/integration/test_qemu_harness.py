"""The QEMU harness itself: acceleration probe, readable failures, no orphans, disk copies,
and login/run on a real serial console."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.integration import qemu
from tests.integration.guest import write_login_initramfs
from tests.integration.qemu import (
    ELTORITO_ID,
    ELTORITO_OFFSET,
    BootConfig,
    QemuError,
    QemuSession,
    accel_args,
    kvm_works,
    make_hybrid_iso,
    prepare_usb_disk,
    timeout_scale,
)
from tests.support.debian import busybox_static, kernel_tree


def _blank_disk(path: Path, size: int = 1024 * 1024) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def _qemu_children() -> set[int]:
    """qemu processes started by this test process."""
    out = subprocess.run(
        ["ps", "-o", "pid=,ppid=,comm="],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PS_FORMAT": ""},
    )
    found = set()
    for line in out.stdout.splitlines():
        pid, ppid, comm = line.split(None, 2)
        if int(ppid) == os.getpid() and comm.startswith("qemu"):
            found.add(int(pid))
    return found


def test_kvm_probe_gives_a_consistent_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LIVESMITH_QEMU_ACCEL", raising=False)  # the probe, not an override
    kvm_works.cache_clear()
    try:
        first = kvm_works()
        kvm_works.cache_clear()
        assert kvm_works() == first  # a second, fresh probe gives the same answer
        assert timeout_scale() >= (1.0 if first else qemu.TCG_SLOWDOWN)
    finally:
        kvm_works.cache_clear()  # later tests probe again, with the environment restored
    if not qemu._kvm_usable_device():
        assert not first, "no usable /dev/kvm, yet the probe says KVM works"
        return
    # /dev/kvm opens, but some hosts fail in the guest's first instructions ("KVM internal
    # error ... emulation failure"): KVM may only be used if a real isolinux boot under it
    # reaches its prompt.
    isolinux_boots = qemu._probe_boot(
        BootConfig("bios", "cd", qemu._probe_iso(tmp_path), memory_mb=128), "LIVESMITH-KVM-PROBE-OK"
    )
    assert isolinux_boots or not first, "isolinux fails under KVM, yet the probe says it works"


def test_the_accel_override_skips_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu, "_kvm_usable_device", lambda: pytest.fail("probed anyway"))
    kvm_works.cache_clear()
    try:
        monkeypatch.setenv("LIVESMITH_QEMU_ACCEL", "tcg")
        assert kvm_works() is False
        assert accel_args() == ["-accel", "tcg"]
    finally:
        monkeypatch.undo()
        kvm_works.cache_clear()


def test_expect_timeout_shows_the_console(tmp_path: Path) -> None:
    disk = _blank_disk(tmp_path / "blank.img")
    config = BootConfig("bios", "usb", disk, memory_mb=64, firmware_console=True)
    with QemuSession(config) as vm:
        vm.expect("No bootable device", timeout=30)
        with pytest.raises(QemuError) as failure:
            vm.expect("login:", timeout=1)
        pid = vm.proc.pid
        workdir = vm.workdir
    message = str(failure.value)
    assert "waiting for 'login:'" in message
    assert "timed out" in message
    assert "BIOS USB boot of blank.img" in message
    assert "No bootable device" in message  # the console tail is in the error
    assert vm.proc.poll() is not None and pid not in _qemu_children()
    assert not workdir.exists()


def test_a_qemu_that_dies_fails_at_once_with_its_stderr(tmp_path: Path) -> None:
    disk = _blank_disk(tmp_path / "blank.img")
    with QemuSession(
        BootConfig("bios", "usb", disk, memory_mb=64), extra_args=("-no-such-option",)
    ) as vm:
        with pytest.raises(QemuError, match=r"(?s)qemu exited \(status 1\).*no-such-option"):
            vm.expect("anything", timeout=60)
        assert vm.elapsed < 30


def test_close_kills_qemu_even_when_the_test_fails(tmp_path: Path) -> None:
    disk = _blank_disk(tmp_path / "blank.img")
    with (
        pytest.raises(RuntimeError),
        QemuSession(BootConfig("bios", "usb", disk, memory_mb=64)) as vm,
    ):
        assert vm.proc.poll() is None
        raise RuntimeError("a failing test body")
    assert vm.proc.poll() is not None
    assert _qemu_children() == set()


def test_secure_boot_runs_ovmf_with_microsofts_keys_enforced(tmp_path: Path) -> None:
    disk = _blank_disk(tmp_path / "blank.img")
    original = qemu.OVMF_VARS_SECURE.read_bytes()
    config = BootConfig("uefi", "usb", disk, memory_mb=256, secure_boot=True)
    assert config.describe().endswith("(Secure Boot)")
    with QemuSession(config) as vm:
        assert "q35,smm=on" in vm.argv
        assert "driver=cfi.pflash01,property=secure,value=on" in vm.argv
        assert f"if=pflash,format=raw,unit=0,readonly=on,file={qemu.OVMF_CODE_SECURE}" in vm.argv
        store = vm.workdir / "OVMF_VARS.fd"
        assert f"if=pflash,format=raw,unit=1,file={store}" in vm.argv
        vm.expect("BdsDxe", timeout=60)  # the Secure Boot build starts (SMM under TCG)
    assert qemu.OVMF_VARS_SECURE.read_bytes() == original  # each session writes a copy
    with pytest.raises(ValueError, match="UEFI feature"):
        QemuSession(BootConfig("bios", "usb", disk, secure_boot=True))


@pytest.fixture(scope="module")
def small_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain hybrid ISO (isolinux only is enough to carry volume descriptors)."""
    work = tmp_path_factory.mktemp("iso")
    tree = work / "tree"
    (tree / "boot" / "syslinux").mkdir(parents=True)
    (tree / "boot" / "grub").mkdir(parents=True)
    (tree / "boot" / "syslinux" / "isolinux.bin").write_bytes(
        Path("/usr/lib/ISOLINUX/isolinux.bin").read_bytes()
    )
    with open(tree / "boot" / "grub" / "efi.img", "wb") as f:
        f.truncate(64 * 1024)
    (tree / "hello.txt").write_text("hello\n")
    return make_hybrid_iso(tree, work / "small.iso", "ORIGINAL_LABEL")


def _isoinfo(image: Path) -> str:
    return subprocess.run(
        ["isoinfo", "-d", "-i", str(image)], capture_output=True, text=True, check=True
    ).stdout


def _joliet_label(image: Path) -> str:
    with open(image, "rb") as f:
        for sector in range(17, 32):
            f.seek(sector * 2048)
            descriptor = f.read(2048)
            if descriptor[0] == 2 and descriptor[88:91] in (b"%/@", b"%/C", b"%/E"):
                return descriptor[40:72].decode("utf-16-be").rstrip()
    raise AssertionError("no Joliet descriptor")


def test_prepare_usb_disk_blanks_el_torito_and_relabels(small_iso: Path, tmp_path: Path) -> None:
    assert "ORIGINAL_LABEL" in _isoinfo(small_iso)
    disk = prepare_usb_disk(
        small_iso, tmp_path / "stick.img", blank_eltorito=True, new_label="RENAMED"
    )
    data = disk.read_bytes()
    assert data[ELTORITO_OFFSET : ELTORITO_OFFSET + len(ELTORITO_ID)] == bytes(len(ELTORITO_ID))
    assert re.search(r"Volume id: RENAMED\n", _isoinfo(disk))
    assert _joliet_label(disk) == "RENAMED"
    # Only the copy changed; everything but the two fields is the same.
    original = small_iso.read_bytes()
    assert original[ELTORITO_OFFSET : ELTORITO_OFFSET + len(ELTORITO_ID)] == ELTORITO_ID
    differing = [i for i in range(len(original)) if original[i] != data[i]]
    assert differing and all(16 * 2048 <= i < 20 * 2048 for i in differing)


def test_prepare_usb_disk_refuses_a_disk_without_el_torito(tmp_path: Path) -> None:
    disk = _blank_disk(tmp_path / "blank.img", 64 * 1024)
    with pytest.raises(ValueError, match="no El Torito boot record"):
        prepare_usb_disk(disk, tmp_path / "copy.img", blank_eltorito=True)


def test_cd_sessions_refuse_disk_edits(small_iso: Path) -> None:
    with pytest.raises(ValueError, match="USB disk copies only"):
        QemuSession(BootConfig("bios", "cd", small_iso, blank_eltorito=True))


@pytest.mark.slow
def test_login_and_run_on_a_serial_console(tmp_path: Path) -> None:
    vmlinuz, _modules, version = kernel_tree()
    initrd = write_login_initramfs(tmp_path / "initrd.img", busybox_static(), password="s3cret")
    kernel = (
        "-kernel",
        str(vmlinuz),
        "-initrd",
        str(initrd),
        "-append",
        "console=ttyS0,115200 quiet",
    )
    with QemuSession(BootConfig("bios", "none", None, memory_mb=256), extra_args=kernel) as vm:
        vm.login("root", "s3cret", timeout=60)
        assert vm.run("uname -r") == version
        assert vm.last_status == 0
        assert vm.run("echo one; echo two; false") == "one\ntwo"
        assert vm.last_status == 1
        with pytest.raises(QemuError, match="exited with status 3"):
            vm.run("(exit 3)", check=True)
        print(f"login + 3 commands: {vm.elapsed:.1f} s")

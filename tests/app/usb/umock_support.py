"""umockdev support: fake block devices for the drive tests, and a runner for them.

pyudev crashes on a umockdev testbed unless umockdev's preload library is in LD_PRELOAD from
process start, so the cases that use a testbed live in `umock_*cases.py` files (not collected
by pytest directly). A normal test runs such a file under `umockdev-wrapper` in a subprocess
(`run_umock_cases`) and reports each case from the JUnit XML the subprocess wrote, with the
case's own failure text.
"""

from __future__ import annotations

import ast
import contextlib
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.tools import find_tool
from tests.conftest import ROOT

PRELOAD_NAME = "libumockdev-preload"


# ---------------------------------------------------------------- running case files


@dataclass(frozen=True)
class CaseResult:
    outcome: str  # "passed", "failed", "error", "skipped"
    text: str


@dataclass(frozen=True)
class CaseRun:
    results: dict[str, CaseResult]
    returncode: int
    output: str

    def check(self, case: str) -> None:
        """Fail (or skip) the calling test the way the case did in the subprocess."""
        import pytest

        # a parametrized case reports one result per parameter set: "name[param]"
        runs = {
            name: r
            for name, r in self.results.items()
            if name == case or name.startswith(f"{case}[")
        }
        if not runs:
            pytest.fail(
                f"case {case} did not run under umockdev-wrapper "
                f"(exit status {self.returncode}):\n{self.output[-6000:]}"
            )
        bad = {name: r for name, r in runs.items() if r.outcome not in ("passed", "skipped")}
        assert not bad, "\n\n".join(
            f"{name} {r.outcome} under umockdev:\n{r.text}" for name, r in bad.items()
        )
        if all(r.outcome == "skipped" for r in runs.values()):
            pytest.skip(f"under umockdev: {next(iter(runs.values())).text.strip()}")


def case_names(case_file: Path) -> list[str]:
    """The module-level `test_*` functions of a case file, read without importing it."""
    tree = ast.parse(case_file.read_text(), filename=str(case_file))
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]


def run_umock_cases(case_file: Path, work_dir: Path, *, timeout: float = 300) -> CaseRun:
    """Run a case file with pytest under umockdev-wrapper and collect each case's outcome."""
    junit = work_dir / f"{case_file.stem}.xml"
    cmd = [
        find_tool("umockdev-wrapper"),
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        f"--junitxml={junit}",
        str(case_file.relative_to(ROOT)),
    ]
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    output = proc.stdout + proc.stderr
    results: dict[str, CaseResult] = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            results[case.get("name", "")] = _case_result(case)
    return CaseRun(results, proc.returncode, output)


def _case_result(case: ET.Element) -> CaseResult:
    for tag in ("failure", "error", "skipped"):
        node = case.find(tag)
        if node is not None:
            outcome = "failed" if tag == "failure" else tag
            return CaseResult(outcome, (node.get("message") or "") + "\n" + (node.text or ""))
    return CaseResult("passed", "")


def preload_active() -> bool:
    return PRELOAD_NAME in os.environ.get("LD_PRELOAD", "")


# ---------------------------------------------------------------- fake devices

GB = 1000**3


@dataclass(frozen=True)
class FakeDisk:
    sys_path: str  # e.g. /sys/devices/.../sdb
    devnode: str
    devno: tuple[int, int]
    partitions: tuple[FakePartition, ...] = ()


@dataclass(frozen=True)
class FakePartition:
    sys_path: str
    devnode: str
    devno: tuple[int, int]


def _attrs(**values: object) -> list[str]:
    out: list[str] = []
    for key, value in values.items():
        out += [key.replace("__", "/"), str(value)]
    return out


def _props(**values: object) -> list[str]:
    out: list[str] = []
    for key, value in values.items():
        out += [key, str(value)]
    return out


def add_block_disk(
    tb: Any,
    name: str,
    parent: str | None,
    devno: tuple[int, int],
    size: int,
    *,
    removable: bool = False,
    read_only: bool = False,
    partitions: int = 0,
    props: dict[str, str] | None = None,
) -> FakeDisk:
    """A whole disk (DEVTYPE=disk) with `partitions` partitions named like the kernel does."""
    sys_path = tb.add_device(
        "block",
        name,
        parent,
        _attrs(
            size=size // 512,
            removable=int(removable),
            ro=int(read_only),
            dev=f"{devno[0]}:{devno[1]}",
            queue__logical_block_size=512,
        ),
        _props(
            DEVNAME=f"/dev/{name}", DEVTYPE="disk", MAJOR=devno[0], MINOR=devno[1], **(props or {})
        ),
    )
    parts = []
    for number in range(1, partitions + 1):
        pname = f"{name}p{number}" if name[-1].isdigit() else f"{name}{number}"
        pdevno = (devno[0], devno[1] + number)
        psys = tb.add_device(
            "block",
            pname,
            sys_path,
            _attrs(
                size=size // 512 // (partitions + 1),
                partition=number,
                dev=f"{pdevno[0]}:{pdevno[1]}",
            ),
            _props(
                DEVNAME=f"/dev/{pname}",
                DEVTYPE="partition",
                MAJOR=pdevno[0],
                MINOR=pdevno[1],
                PARTN=number,
            ),
        )
        parts.append(FakePartition(psys, f"/dev/{pname}", pdevno))
    return FakeDisk(sys_path, f"/dev/{name}", devno, tuple(parts))


def add_usb_stick(
    tb: Any,
    name: str = "sdb",
    devno: tuple[int, int] = (8, 16),
    *,
    size: int = 16 * GB,
    vendor: str = "SanDisk",
    model: str = "Ultra",
    serial: str = "4C530001",
    read_only: bool = False,
    partitions: int = 1,
    port: str = "1-1",
) -> FakeDisk:
    """A USB mass-storage stick: usb device -> scsi device -> disk, as the kernel nests them."""
    usb = tb.add_device(
        "usb",
        f"usb1/{port}",
        None,
        _attrs(
            idVendor="0781", idProduct="5581", serial=serial, manufacturer=vendor, product=model
        ),
        _props(DEVTYPE="usb_device"),
    )
    host = int(devno[1] / 16) + 6
    scsi = tb.add_device(
        "scsi",
        f"host{host}/target{host}:0:0/{host}:0:0:0",
        usb,
        _attrs(vendor=f"{vendor:<8}", model=f"{model:<16}"),
        _props(DEVTYPE="scsi_device"),
    )
    return add_block_disk(
        tb,
        name,
        scsi,
        devno,
        size,
        removable=True,
        read_only=read_only,
        partitions=partitions,
        props={
            "ID_BUS": "usb",
            "ID_VENDOR": vendor,
            "ID_MODEL": model,
            "ID_SERIAL_SHORT": serial,
            "ID_USB_DRIVER": "usb-storage",
        },
    )


def add_sata_disk(
    tb: Any,
    name: str = "sda",
    devno: tuple[int, int] = (8, 0),
    *,
    size: int = 512 * GB,
    partitions: int = 2,
) -> FakeDisk:
    """An internal SATA disk: pci -> ata port -> scsi device -> disk, not removable."""
    pci = tb.add_device(
        "pci", "pci0000:00/0000:00:1f.2", None, _attrs(vendor="0x8086", device="0x2922"), []
    )
    scsi = tb.add_device(
        "scsi",
        "ata1/host0/target0:0:0/0:0:0:0",
        pci,
        _attrs(vendor="ATA     ", model="Samsung SSD 870 "),
        _props(DEVTYPE="scsi_device"),
    )
    return add_block_disk(
        tb,
        name,
        scsi,
        devno,
        size,
        partitions=partitions,
        props={
            "ID_BUS": "ata",
            "ID_MODEL": "Samsung_SSD_870_EVO_500GB",
            "ID_SERIAL_SHORT": "S62ANJ0R123456",
        },
    )


def add_mmc_card(
    tb: Any,
    name: str = "mmcblk0",
    devno: tuple[int, int] = (179, 0),
    *,
    size: int = 32 * GB,
    card_name: str = "SD32G",
    serial: str = "0x1234abcd",
) -> FakeDisk:
    """An SD card in a built-in reader: mmc host -> mmc card -> disk (removable=0, as real)."""
    host = tb.add_device("mmc_host", "platform/sdhci/mmc_host/mmc0", None, [], [])
    card = tb.add_device(
        "mmc", "mmc0:aaaa", host, _attrs(name=card_name, serial=serial, type="SD"), []
    )
    return add_block_disk(tb, name, card, devno, size, partitions=1)


def add_virtual_disk(
    tb: Any, name: str, devno: tuple[int, int], size: int = GB, **attrs: str
) -> FakeDisk:
    """A disk under /sys/devices/virtual/block (loop, zram, dm, md, nbd)."""
    sys_path = tb.add_device(
        "block",
        f"virtual/block/{name}",
        None,
        _attrs(size=size // 512, removable=0, ro=0, dev=f"{devno[0]}:{devno[1]}", **attrs),
        _props(DEVNAME=f"/dev/{name}", DEVTYPE="disk", MAJOR=devno[0], MINOR=devno[1]),
    )
    return FakeDisk(sys_path, f"/dev/{name}", devno)


def add_holder(tb: Any, lower_sys_path: str, upper: FakeDisk) -> None:
    """Stack `upper` (dm/md) on `lower` (a partition): holders/ and slaves/ links as sysfs."""
    name = upper.sys_path.rsplit("/", 1)[1]
    lower_name = lower_sys_path.rsplit("/", 1)[1]
    tb.set_attribute_link(
        lower_sys_path,
        f"holders/{name}",
        os.path.relpath(upper.sys_path, f"{lower_sys_path}/holders"),
    )
    tb.set_attribute_link(
        upper.sys_path,
        f"slaves/{lower_name}",
        os.path.relpath(lower_sys_path, f"{upper.sys_path}/slaves"),
    )


@contextlib.contextmanager
def dev_node(tb: Any, disk: FakeDisk) -> Iterator[str]:
    """The disk's /dev node inside the testbed, so `os.stat` and `open` find it.

    umockdev records the node's numbers (dev/.node) but makes no file for it; its preload
    library reports a testbed file with the sticky bit as a block device with those numbers.
    An ioctl handler of its own answers the ioctls (BLKROGET) of an `open`; without one a
    process that opens the node dies once the testbed has been cleared.
    """
    from gi.repository import UMockdev

    node = Path(tb.get_root_dir(), disk.devnode.removeprefix("/"))
    node.write_bytes(b"")
    node.chmod(0o1644)
    tb.attach_ioctl(disk.devnode, UMockdev.IoctlBase())
    try:
        yield disk.devnode
    finally:
        tb.detach_ioctl(disk.devnode)

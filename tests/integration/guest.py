"""Tiny guest systems for boot tests: a busybox initramfs written as newc cpio right here
(so /dev/console is a real device node without root), with an /init that either prints
a marker line with /proc/cmdline and powers off, or offers a serial login.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

MARKER = re.compile(r"LIVESMITH-TEST-INIT cmdline=\[([^\]\n]*)\]")

MARKER_INIT = """#!/bin/sh
/bin/busybox mount -t proc proc /proc
echo "LIVESMITH-TEST-INIT cmdline=[$(/bin/busybox cat /proc/cmdline)]" > /dev/console
# Let the serial port drain before the power goes.
/bin/busybox sleep 1
/bin/busybox poweroff -f
"""

LOGIN_INIT = """#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox hostname {hostname}
exec /bin/busybox getty -L 115200 ttyS0 vt100
"""


def _newc_entry(
    name: str, mode: int, data: bytes = b"", *, ino: int, rdev: tuple[int, int] = (0, 0)
) -> bytes:
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
    header = b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
    header += b"\0" * (-len(header) % 4)
    return header + data + b"\0" * (-len(data) % 4)


def write_busybox_initramfs(
    path: Path, busybox: Path, init: str, files: dict[str, str] | None = None
) -> Path:
    """A newc cpio: busybox as /bin/busybox (+ sh, login links), /dev/console, `init` as
    /init and `files` (path -> text) as regular files."""
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = [
        ("bin", 0o040755, b"", (0, 0)),
        ("dev", 0o040755, b"", (0, 0)),
        ("etc", 0o040755, b"", (0, 0)),
        ("proc", 0o040755, b"", (0, 0)),
        ("root", 0o040700, b"", (0, 0)),
        ("dev/console", 0o020600, b"", (5, 1)),
        ("bin/busybox", 0o100755, busybox.read_bytes(), (0, 0)),
        ("bin/sh", 0o120777, b"busybox", (0, 0)),
        ("bin/login", 0o120777, b"busybox", (0, 0)),
        ("init", 0o100755, init.encode(), (0, 0)),
    ]
    for name, text in sorted((files or {}).items()):
        entries.append(
            (name, 0o100644 if "shadow" not in name else 0o100600, text.encode(), (0, 0))
        )
    blob = b"".join(
        _newc_entry(name, mode, data, ino=i + 1, rdev=rdev)
        for i, (name, mode, data, rdev) in enumerate(entries)
    )
    blob += _newc_entry("TRAILER!!!", 0, ino=0)
    path.write_bytes(blob)
    return path


def write_marker_initramfs(path: Path, busybox: Path) -> Path:
    return write_busybox_initramfs(path, busybox, MARKER_INIT)


def write_login_initramfs(
    path: Path, busybox: Path, *, password: str, hostname: str = "harness"
) -> Path:
    """/init runs getty on ttyS0; root's password is `password` (SHA-512 crypt)."""
    hashed = subprocess.run(
        [str(busybox), "mkpasswd", "-m", "sha512", password, "livesmithsalt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
        "etc/group": "root:x:0:\n",
        "etc/shadow": f"root:{hashed}:19000:0:99999:7:::\n",
    }
    return write_busybox_initramfs(path, busybox, LOGIN_INIT.format(hostname=hostname), files)

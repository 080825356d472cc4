"""A BusyBox binary's applet list, read from the binary instead of running it.

For machines where the sandbox (app.compose.sandbox) cannot be set up, e.g. Ubuntu 23.10 and
later, whose AppArmor policy refuses unprivileged user namespaces to bubblewrap.

BusyBox keeps two generated tables (applets/applet_tables.c):
- `applet_names`: every applet name, NUL-terminated, sorted (strcmp order);
- `applet_install_loc`: one 4-bit install folder per applet, two to a byte, the even
  applet in the low nibble: 0 "/", 1 "bin", 2 "sbin", 3 "usr/bin", 4 "usr/sbin".
The names are the longest sorted run of name-like strings. The folder table is the run of
bytes of the right length, all nibbles in range, that puts the applets every BusyBox has
where BusyBox always puts them; anything less certain is no answer (None).
"""

from __future__ import annotations

import re

FOLDERS = ("", "bin/", "sbin/", "usr/bin/", "usr/sbin/")
NAME = re.compile(rb"[a-z0-9_.\[\]+-]{1,32}")
# Where BusyBox installs these applets in every configuration that has them.
KNOWN = {
    "sh": "bin/",
    "ls": "bin/",
    "cat": "bin/",
    "mount": "bin/",
    "init": "sbin/",
    "mdev": "sbin/",
    "chroot": "usr/sbin/",
    "awk": "usr/bin/",
    "env": "usr/bin/",
}
MIN_APPLETS = 8
MIN_KNOWN = 3


def applet_names(data: bytes) -> list[str]:
    """The longest run of consecutive NUL-terminated, strictly sorted, name-like strings."""
    best: list[bytes] = []
    run: list[bytes] = []
    for token in data.split(b"\0"):
        if NAME.fullmatch(token) and (not run or token > run[-1]):
            run.append(token)
            continue
        if len(run) > len(best):
            best = run
        run = [token] if NAME.fullmatch(token) else []
    if len(run) > len(best):
        best = run
    return [name.decode() for name in best]


def _folder_indexes(table: bytes, count: int) -> list[int] | None:
    indexes = []
    for i in range(count):
        nibble = (table[i // 2] >> 4) if i & 1 else (table[i // 2] & 0xF)
        if nibble >= len(FOLDERS):
            return None
        indexes.append(nibble)
    return indexes


def applets_from_binary(data: bytes) -> list[str] | None:
    """Applet paths as `busybox --list-full` prints them, or None if not certain."""
    names = applet_names(data)
    if len(names) < MIN_APPLETS:
        return None
    known = {i: KNOWN[name] for i, name in enumerate(names) if name in KNOWN}
    if len(known) < MIN_KNOWN:
        return None
    size = (len(names) + 1) // 2
    found: set[tuple[int, ...]] = set()
    # The table sits in read-only data: try every offset, keep those that place the known
    # applets right (a run of zero bytes, say, puts everything in "/" and fails).
    first = min(known)
    for start in range(len(data) - size + 1):
        byte = data[start + first // 2]
        nibble = (byte >> 4) if first & 1 else (byte & 0xF)
        if nibble >= len(FOLDERS) or FOLDERS[nibble] != known[first]:
            continue
        indexes = _folder_indexes(data[start : start + size], len(names))
        if indexes is not None and all(
            FOLDERS[indexes[i]] == folder for i, folder in known.items()
        ):
            found.add(tuple(indexes))
            if len(found) > 1:
                return None  # two different tables fit: not certain
    if not found:
        return None
    (table,) = found
    return [FOLDERS[index] + name for index, name in zip(table, names, strict=True)]

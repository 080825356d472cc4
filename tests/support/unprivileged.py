"""Running code as a real unprivileged user (nobody, or a user made for the test) from a
root test session.

The interpreter may live below a folder only root can enter (/root/.pyenv here); for the
duration of a test we let others *traverse* (o+x, not read) those folders, then restore them.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _blocking_dirs(paths: list[Path]) -> list[Path]:
    blocked = []
    for path in paths:
        for parent in [path, *path.parents]:
            if parent.is_dir() and not parent.stat().st_mode & stat.S_IXOTH:
                blocked.append(parent)
    return sorted(set(blocked))


@contextmanager
def unprivileged_python(*extra_paths: Path, user: str = "nobody") -> Iterator[list[str]]:
    """Yields a command prefix that runs this venv's Python as `user` (nobody)."""
    if os.geteuid() != 0:
        yield [sys.executable]
        return
    real = Path(os.path.realpath(sys.executable))
    needed = [real.parent, Path(sys.prefix), Path(sys.base_prefix) / "lib", REPO, *extra_paths]
    changed = _blocking_dirs(needed)
    modes = {d: d.stat().st_mode for d in changed}
    try:
        for d in changed:
            d.chmod(stat.S_IMODE(modes[d]) | stat.S_IXOTH)
        yield ["runuser", "-u", user, "--", sys.executable]
    finally:
        for d, mode in modes.items():
            d.chmod(stat.S_IMODE(mode))


def run_as_nobody(
    code: str, *, cwd: Path = REPO, input: bytes | None = None, extra_paths: tuple[Path, ...] = ()
) -> subprocess.CompletedProcess[bytes]:
    with unprivileged_python(*extra_paths) as prefix:
        return subprocess.run(
            [*prefix, "-c", code],
            cwd=cwd,
            input=input,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )


BUILDER = "livesmith-builder"


def builder_user() -> str:
    """An ordinary user as Debian makes one (`useradd`): a home, and a range of subordinate
    user and group ids in /etc/subuid and /etc/subgid, as an unprivileged build needs."""
    known = subprocess.run(["id", "-u", BUILDER], capture_output=True)
    if known.returncode != 0:
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/bash", BUILDER],
            check=True,
            capture_output=True,
        )
    for table, flag in (("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")):
        entries = Path(table).read_text() if Path(table).exists() else ""
        if not any(line.startswith(f"{BUILDER}:") for line in entries.splitlines()):
            subprocess.run(
                ["usermod", flag, "300000-365535", BUILDER], check=True, capture_output=True
            )
    return BUILDER

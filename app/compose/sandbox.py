"""Running a program from the assembled root (package code) without trusting it.

Only one such program runs today: the packaged BusyBox, asked for its applet list. It comes
from whatever package source the user chose, so it runs under bubblewrap with the root
bound read-only as "/", and new user, PID, network, IPC and UTS namespaces: it sees no host
file, cannot write anything, has no network and dies with us. Its output is capped, so it
cannot fill memory either, and it is stopped at a deadline.
(Package maintainer scripts are never run: assembly only unpacks.)
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from pathlib import Path

from app.errors import StageError
from app.tools import find_tool

OUTPUT_LIMIT = 1 << 20
# bubblewrap run by an ordinary user needs unprivileged user namespaces.
SETUP_HINT = (
    "allow unprivileged user namespaces: on Debian, sysctl "
    "kernel.unprivileged_userns_clone=1; on Ubuntu 23.10 and later, an AppArmor "
    "profile for bwrap or sysctl kernel.apparmor_restrict_unprivileged_userns=0"
)


class CannotRun(StageError):
    """The program did not run at all: the sandbox could not be set up (no user
    namespaces for bubblewrap), or the program cannot run on this machine."""


def sandbox_argv(root: Path, argv: list[str]) -> list[str]:
    return [
        find_tool("bwrap"),
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/sbin:/usr/bin:/sbin:/bin",
        "--ro-bind",
        str(root),
        "/",
        "--chdir",
        "/",
        "--",
        *argv,
    ]


def run_in_root(
    root: Path, argv: list[str], *, stage: str, timeout: float = 30, limit: int = OUTPUT_LIMIT
) -> str:
    """Standard output of `argv` run inside `root` (read-only, no host files, no network).

    StageError when it cannot run, fails, runs past `timeout` seconds or prints more than
    `limit` bytes.
    """
    command = sandbox_argv(root, argv)
    what = argv[0]
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise StageError(f"cannot start the sandbox for {what}: {exc}", stage=stage) from exc
    out, err, problem = bytearray(), bytearray(), None
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None and proc.stderr is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        while selector.get_map() and problem is None:
            left = deadline - time.monotonic()
            if left <= 0:
                problem = f"it did not finish within {timeout:g} s"
                break
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                key.data.extend(chunk)
                if len(out) > limit:
                    problem = f"it printed more than {limit} bytes"
                elif len(err) > limit:
                    del err[limit:]
    if problem is not None:
        proc.kill()
    try:
        returncode = proc.wait(timeout=5)
    finally:
        proc.stdout.close()
        proc.stderr.close()
    hint = None
    error: type[StageError] = StageError
    if problem is None and returncode != 0:
        message = err.decode(errors="replace").strip().splitlines()
        last = message[-1] if message else ""
        if last.startswith("bwrap: execvp "):
            problem = (
                f"it cannot be run here ({last.removeprefix('bwrap: ')}; built for "
                "another machine, or a dynamic binary without its loader?)"
            )
            error = CannotRun
        elif last.startswith("bwrap: "):  # the sandbox itself could not be set up
            problem = f"the sandbox could not be set up ({last})"
            error = CannotRun
            if any(word in last for word in ("namespace", "uid map", "Operation not permitted")):
                hint = SETUP_HINT
        else:
            problem = f"it exited with status {returncode}" + (f": {last}" if last else "")
    if problem is not None:
        raise error(
            f"running {what} from the packages in a sandbox failed: {problem}",
            stage=stage,
            hint=hint,
        )
    return out.decode(errors="replace")

"""BusyBox's applet list read from the binary: equal to what the binary itself prints, for
Debian's two real builds; None whenever the tables are not certain; and the fallback for a
busybox that cannot run here (real bwrap, a real binary marked for another machine)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from app.compose.busybox_table import applet_names, applets_from_binary
from app.compose.configure import busybox_applets
from app.errors import StageError
from app.reporter import Level, RecordingReporter
from tests.support.debian import busybox_static, packaged_file

EM_AARCH64 = (183).to_bytes(2, "little")


def listed_by_running(busybox: Path) -> list[str]:
    # Debian's own binaries from the test cache: trusted, so run directly for the truth.
    return subprocess.run(
        [str(busybox), "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()


@pytest.mark.parametrize(
    "binary",
    [
        pytest.param(busybox_static, id="busybox-static"),
        pytest.param(lambda: packaged_file("busybox", "busybox"), id="busybox (dynamic)"),
    ],
)
def test_the_list_read_from_the_binary_is_the_one_it_prints(binary) -> None:  # type: ignore[no-untyped-def]
    path = binary()
    listed = listed_by_running(path)
    assert len(listed) > 200
    assert applets_from_binary(path.read_bytes()) == listed


def test_without_certain_tables_there_is_no_answer() -> None:
    data = busybox_static().read_bytes()
    names = b"\0".join(name.encode() for name in applet_names(data)) + b"\0"
    assert applets_from_binary(names) is None  # the names alone: no folder table
    assert applets_from_binary(Path("/usr/bin/true").read_bytes()) is None
    assert applets_from_binary(b"") is None
    # The same tables twice are one answer.
    assert applets_from_binary(data + data) == applets_from_binary(data)
    assert applet_names(b"x\0a\0b\0c\0") == ["a", "b", "c"]


def test_a_busybox_that_cannot_run_here_is_read_instead(tmp_path: Path) -> None:
    # The real binary, marked as built for AArch64: the kernel refuses to run it, the
    # sandbox says so, and the list comes from its tables, with a warning.
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    foreign = root / "bin" / "busybox"
    shutil.copy(busybox_static(), foreign)
    with open(foreign, "r+b") as f:
        f.seek(18)  # e_machine
        f.write(EM_AARCH64)
    reporter = RecordingReporter()
    applets = busybox_applets(root, foreign, reporter)
    assert applets == listed_by_running(busybox_static())
    [(level, message)] = [entry for entry in reporter.logs if "read the" in entry[1]]
    assert level is Level.WARNING
    assert message.startswith(
        "running /bin/busybox from the packages in a sandbox failed: "
        "it cannot be run here (execvp /bin/busybox: "
    )
    assert message.endswith(f"; read the {len(applets)} applets from the binary instead")


def test_what_is_read_from_the_binary_is_checked_like_what_it_prints(tmp_path: Path) -> None:
    # A crafted table naming ".." (same length as the "[" and "[[" it replaces, still sorted)
    # in a binary that cannot run here: the fallback's list is refused like printed output.
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    data = busybox_static().read_bytes()
    assert data.count(b"\0[\0[[\0acpid\0") == 1
    data = data.replace(b"\0[\0[[\0acpid\0", b"\0..\0[\0acpid\0")
    data = data[:18] + EM_AARCH64 + data[20:]
    crafted = root / "bin" / "busybox"
    crafted.write_bytes(data)
    crafted.chmod(0o755)
    with pytest.raises(
        StageError,
        match=r"/bin/busybox --list-full holds 1 line\(s\) that are "
        r"not applet paths, e\.g\. 'usr/bin/\.\.'",
    ):
        busybox_applets(root, crafted, RecordingReporter())

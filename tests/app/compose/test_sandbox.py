"""Package code run from the assembled root: real bubblewrap, hostile "busybox" scripts."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from app.compose.configure import busybox_applets
from app.compose.sandbox import run_in_root
from app.errors import StageError
from tests.support.debian import busybox_static

NOBODY = 65534
REPO = Path(__file__).resolve().parents[3]


def make_root(tmp_path: Path, script: str) -> tuple[Path, Path]:
    """A root whose bin/busybox is `script`, run by a real static busybox as /bin/sh."""
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy(busybox_static(), root / "bin" / "sh")
    fake = root / "bin" / "busybox"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)
    return root, fake


def test_the_real_busybox_lists_its_applets(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy(busybox_static(), root / "bin" / "busybox")
    applets = busybox_applets(root, root / "bin" / "busybox")
    assert "bin/sh" in applets and "sbin/init" in applets and len(applets) > 100


def test_package_code_sees_no_host_file_and_writes_nothing(tmp_path: Path) -> None:
    host_secret = tmp_path / "secret"
    host_secret.write_text("host data\n")
    witness = tmp_path / "written-by-package"
    root, fake = make_root(
        tmp_path,
        f"""
cat {host_secret} && echo "read the host file"
echo pwned > {witness} && echo "wrote a host file"
echo pwned > /bin/planted && echo "wrote into the root"
echo usr/bin/ls
echo bin/sh
""",
    )
    applets = busybox_applets(root, fake)
    assert applets == ["usr/bin/ls", "bin/sh"]  # neither the secret nor a success line
    assert not witness.exists()
    assert not (root / "bin" / "planted").exists()


def test_package_code_has_no_network(tmp_path: Path) -> None:
    # A listening socket on the host's loopback: from the sandbox, its address is unreachable.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        root, fake = make_root(
            tmp_path,
            f"""
if nc 127.0.0.1 {port} </dev/null 2>/dev/null; then echo reached-the-host; fi
ls /sys/class/net 2>/dev/null
echo bin/sh
""",
        )
        shutil.copy(busybox_static(), root / "bin" / "nc")
        shutil.copy(busybox_static(), root / "bin" / "ls")
        out = run_in_root(root, ["/bin/busybox"], stage="configure")
    assert "reached-the-host" not in out
    assert out.splitlines()[-1] == "bin/sh"


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("echo ../../etc/cron.d/x\n", "not applet paths, e.g. '../../etc/cron.d/x'"),
        ("echo /etc/passwd\n", "not applet paths, e.g. '/etc/passwd'"),
        ("printf 'bin/a\\033]0;x\\n'\n", r"not applet paths, e.g. 'bin/a\x1b]0;x'"),
        ("echo bin/..\n", "not applet paths, e.g. 'bin/..'"),
        ("true\n", "listed no applets"),
        ("echo oops >&2; exit 3\n", "exited with status 3: oops"),
    ],
)
def test_output_that_is_not_an_applet_list_is_refused(
    tmp_path: Path, script: str, message: str
) -> None:
    root, fake = make_root(tmp_path, script)
    with pytest.raises(StageError) as caught:
        busybox_applets(root, fake)
    assert message in str(caught.value)
    assert "/bin/busybox" in str(caught.value)


def test_endless_output_is_cut_off(tmp_path: Path) -> None:
    root, fake = make_root(tmp_path, "while :; do echo bin/sh; done\n")
    with pytest.raises(StageError, match="printed more than 4096 bytes"):
        run_in_root(root, ["/bin/busybox"], stage="configure", limit=4096)


def test_a_program_that_hangs_is_stopped(tmp_path: Path) -> None:
    root, fake = make_root(tmp_path, "read -r line\nwhile :; do :; done\n")
    with pytest.raises(StageError, match=r"did not finish within 0.5 s"):
        run_in_root(root, ["/bin/busybox"], stage="configure", timeout=0.5)


def test_a_binary_for_another_machine_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    foreign = root / "bin" / "busybox"
    # An ELF header for AArch64 (e_machine 183): the kernel cannot run it here.
    foreign.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00\xb7\x00" + bytes(200))
    foreign.chmod(0o755)
    with pytest.raises(
        StageError,
        match=r"running /bin/busybox from the packages in a "
        r"sandbox failed: it cannot be run here \(execvp "
        r"/bin/busybox: .*; built for another machine",
    ):
        busybox_applets(root, foreign)


def test_an_ordinary_user_can_run_the_sandbox(tmp_path: Path) -> None:
    # The GUI builds as the desktop user: bubblewrap then needs user namespaces. The child
    # drops to nobody; the system Python (ours lives under /root) needs only the stdlib here.
    shared = Path(tempfile.mkdtemp(prefix="livesmith-sandbox-", dir="/tmp"))
    try:
        shared.chmod(0o755)
        (shared / "bin").mkdir()
        shutil.copy(busybox_static(), shared / "bin" / "busybox")
        code = (
            "import sys; from pathlib import Path; from app.compose.sandbox import run_in_root;"
            "print(run_in_root(Path(sys.argv[1]), ['/bin/busybox', '--list-full'],"
            " stage='configure'))"
        )
        child = subprocess.run(
            ["/usr/bin/python3", "-c", code, str(shared)],
            capture_output=True,
            text=True,
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            timeout=60,
            env={"PYTHONPATH": str(REPO), "PATH": os.environ["PATH"]},
        )
    finally:
        shutil.rmtree(shared)
    assert child.returncode == 0, child.stderr
    assert "bin/sh" in child.stdout.split()


def test_a_sandbox_that_cannot_be_set_up_is_told_apart_from_a_failing_program(
    tmp_path: Path,
) -> None:
    # bubblewrap's own complaint (here: the root to bind is missing) is not the program's.
    with pytest.raises(StageError) as caught:
        run_in_root(tmp_path / "no-such-root", ["/bin/busybox"], stage="configure")
    assert str(caught.value) == (
        "configure: running /bin/busybox from the packages in a sandbox failed: the sandbox "
        f"could not be set up (bwrap: Can't find source path {tmp_path}/no-such-root: No such "
        "file or directory)"
    )

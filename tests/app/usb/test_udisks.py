"""The UDisks2 path on real daemons: a private system bus, udevd and udisksd (as root).

If UDisks2 already answers on the system bus it is used as it is. Otherwise the fixture
starts a private dbus-daemon (its own socket, not /run/dbus), systemd-udevd when none runs,
and udisksd on that bus, and stops exactly those afterwards; a daemon that does not start
fails the tests (naming its Debian package: they are in packaging/deps), it does not skip
them. A lock file serialises test sessions that would otherwise start a second udevd. Loop devices (--direct-io=on) stand in
for sticks: UDisks2 shows them with HintSystem=true and no Drive object, which does not
matter to the calls tested here.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jeepney import DBusAddress, MessageType, new_method_call
from jeepney.io.blocking import open_dbus_connection

from app.errors import DeviceError
from app.usb.errors import DeviceNotAllowed, DeviceNotFound, DevicePermissionDenied
from app.usb.hotplug import udevd_running
from app.usb.udisks import (
    UDisksClient,
    UDisksUnavailable,
    find_block_object,
    open_for_read,
    open_for_write,
    power_off,
    unmount_all,
)
from tests.conftest import ROOT, is_root

MiB = 1024 * 1024
UDEVD = Path("/lib/systemd/systemd-udevd")
UDISKSD = Path("/usr/libexec/udisks2/udisksd")
LOCK = Path("/run/lock/livesmith-udisks-tests.lock")

pytestmark = pytest.mark.skipif(not is_root(), reason="starting udevd and udisksd needs root")

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


def name_has_owner(bus: str, name: str) -> bool:
    try:
        conn = open_dbus_connection(bus=bus)
    except (OSError, RuntimeError, KeyError):
        return False
    try:
        dbus = DBusAddress("/org/freedesktop/DBus", "org.freedesktop.DBus", "org.freedesktop.DBus")
        reply = conn.send_and_get_reply(
            new_method_call(dbus, "NameHasOwner", "s", (name,)), timeout=5
        )
        return reply.header.message_type == MessageType.method_return and bool(reply.body[0])
    finally:
        conn.close()


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(what)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def start_private_bus(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A dbus-daemon of our own; returns it and its address once it accepts connections."""
    socket_path = directory / "system_bus_socket"
    config = directory / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket=socket_path))
    proc = subprocess.Popen(
        ["dbus-daemon", "--nofork", f"--config-file={config}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    address = f"unix:path={socket_path}"
    try:
        wait_for(
            lambda: proc.poll() is not None or name_has_owner(address, "org.freedesktop.DBus"),
            10,
            "dbus-daemon did not start",
        )
    except TimeoutError:
        stop(proc)
        raise
    if proc.poll() is not None:
        err = proc.stderr.read().decode() if proc.stderr else ""
        pytest.fail(f"dbus-daemon (Debian package dbus) did not start: {err.strip()}")
    return proc, address


@contextlib.contextmanager
def exclusive_lock() -> Iterator[None]:
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        deadline = time.monotonic() + 600
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    # Not a broken setup: another test session (a second checkout) holds
                    # the daemons; CI runs one session, so it never waits here.
                    pytest.skip("another test session kept the UDisks2 daemons for 10 min")
                time.sleep(0.5)
        yield


@pytest.fixture(scope="module")
def udisks_bus() -> Iterator[str]:
    """Address of a bus on which UDisks2 answers (started here if needed)."""
    if name_has_owner("SYSTEM", "org.freedesktop.UDisks2"):
        yield "SYSTEM"  # the host's own: use it, start and stop nothing
        return
    for program in (UDEVD, UDISKSD):
        assert program.exists(), f"{program} missing: install udev and udisks2 (apt-test.txt)"
    assert shutil.which("dbus-daemon"), "dbus-daemon missing: install dbus (apt-test.txt)"
    started: list[subprocess.Popen[bytes]] = []
    made_dirs = [d for d in (Path("/run/udev"), Path("/run/udisks2")) if not d.exists()]
    # World-readable, so the unprivileged-user test can reach the socket too.
    bus_dir = Path(tempfile.mkdtemp(prefix="livesmith-bus-"))
    bus_dir.chmod(0o755)
    udisks_log = bus_dir / "udisksd.log"
    with exclusive_lock():
        try:
            bus_proc, address = start_private_bus(bus_dir)
            started.append(bus_proc)
            if not udevd_running():
                udevd = subprocess.Popen(
                    [str(UDEVD)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
                started.append(udevd)
                try:
                    wait_for(
                        lambda: udevd.poll() is not None or udevd_running(),
                        10,
                        "systemd-udevd did not open its control socket",
                    )
                except TimeoutError as exc:
                    pytest.fail(f"systemd-udevd (Debian package udev) did not start: {exc}")
                if udevd.poll() is not None:
                    err = udevd.stderr.read().decode() if udevd.stderr else ""
                    pytest.fail(f"systemd-udevd (Debian package udev) exited: {err.strip()}")
            subprocess.run(
                ["udevadm", "trigger", "--subsystem-match=block", "--action=add"], check=True
            )
            subprocess.run(["udevadm", "settle", "--timeout=30"], check=True)
            with open(udisks_log, "wb") as log:
                udisksd = subprocess.Popen(
                    [str(UDISKSD)],
                    env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started.append(udisksd)
            try:
                wait_for(
                    lambda: (
                        udisksd.poll() is not None
                        or name_has_owner(address, "org.freedesktop.UDisks2")
                    ),
                    30,
                    "udisksd did not take its bus name",
                )
            except TimeoutError:
                pytest.fail(
                    "udisksd (Debian package udisks2) did not take its bus name: "
                    f"{udisks_log.read_text()[-2000:]}"
                )
            if udisksd.poll() is not None:
                pytest.fail(
                    f"udisksd (Debian package udisks2) exited: {udisks_log.read_text()[-2000:]}"
                )
            yield address
        finally:
            for proc in reversed(started):
                stop(proc)
            for directory in made_dirs:  # a stale udev database would mislead later readers
                shutil.rmtree(directory, ignore_errors=True)
            shutil.rmtree(bus_dir, ignore_errors=True)


# ---------------------------------------------------------------- helpers


@contextlib.contextmanager
def loop_device(backing: Path, bus: str) -> Iterator[str]:
    """A direct-I/O loop device that UDisks2 knows about."""
    node = subprocess.run(
        ["losetup", "--find", "--show", "--direct-io=on", str(backing)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    try:
        devno = os.major(os.stat(node).st_rdev), os.minor(os.stat(node).st_rdev)
        subprocess.run(["udevadm", "settle", "--timeout=30"], check=True)

        def known() -> bool:
            with contextlib.suppress(DeviceNotFound):
                find_block_object(devno, bus=bus)
                return True
            return False

        wait_for(known, 15, f"UDisks2 never announced {node}")
        yield node
    finally:
        subprocess.run(["losetup", "-d", node], capture_output=True)


def make_backing(path: Path, size: int, content: bytes = b"") -> Path:
    with open(path, "wb") as f:
        f.write(content)
        f.truncate(size)
    return path


def aligned(data: bytes) -> mmap.mmap:
    buf = mmap.mmap(-1, len(data))
    buf.write(data)
    return buf


# ---------------------------------------------------------------- tests


def test_open_for_restore_writes_through_to_the_device(udisks_bus: str, tmp_path: Path) -> None:
    backing = make_backing(tmp_path / "stick.img", 16 * MiB)
    payload = os.urandom(4 * MiB)
    with loop_device(backing, udisks_bus) as node:
        fd = open_for_write(node, bus=udisks_bus)
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            assert flags & os.O_ACCMODE == os.O_WRONLY
            assert flags & os.O_DIRECT and flags & os.O_SYNC == os.O_SYNC
            assert os.fstat(fd).st_rdev == os.stat(node).st_rdev
            # OpenForRestore opens exclusively: nobody else may open the device meanwhile.
            with pytest.raises(OSError) as busy:
                os.close(os.open(node, os.O_RDONLY | os.O_EXCL))
            assert busy.value.errno == 16  # EBUSY
            assert os.pwrite(fd, aligned(payload), MiB) == len(payload)
        finally:
            os.close(fd)
    data = backing.read_bytes()
    assert data[MiB : 5 * MiB] == payload
    assert data[:MiB] == bytes(MiB) and data[5 * MiB :] == bytes(11 * MiB)


def test_open_for_read_reads_the_device_directly(udisks_bus: str, tmp_path: Path) -> None:
    content = os.urandom(2 * MiB)
    backing = make_backing(tmp_path / "written.img", 8 * MiB, content)
    with loop_device(backing, udisks_bus) as node:
        fd = open_for_read(node, bus=udisks_bus)
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            assert flags & os.O_ACCMODE == os.O_RDONLY and flags & os.O_DIRECT
            buf = mmap.mmap(-1, 2 * MiB)
            assert os.preadv(fd, [buf], 0) == 2 * MiB
            assert bytes(buf) == content
        finally:
            os.close(fd)


def test_find_block_object_matches_the_device_number(udisks_bus: str, tmp_path: Path) -> None:
    backing = make_backing(tmp_path / "x.img", 4 * MiB)
    with loop_device(backing, udisks_bus) as node:
        rdev = os.stat(node).st_rdev
        path = find_block_object((os.major(rdev), os.minor(rdev)), bus=udisks_bus)
        assert path == f"/org/freedesktop/UDisks2/block_devices/{Path(node).name}"
    with pytest.raises(DeviceNotFound, match="UDisks2 does not know the block device 7:9999"):
        find_block_object((7, 9999), bus=udisks_bus)


def test_unmount_all_unmounts_every_partition_before_an_exclusive_open(
    udisks_bus: str, tmp_path: Path
) -> None:
    backing = make_backing(tmp_path / "parted.img", 48 * MiB)
    subprocess.run(
        ["sfdisk", "-q", str(backing)],
        input="label: dos\n,16M,L\n,16M,L\n",
        text=True,
        check=True,
        capture_output=True,
    )
    mounts = [tmp_path / "m1", tmp_path / "m2"]
    with loop_device(backing, udisks_bus) as node:
        if not Path(f"{node}p1").exists():  # a kernel without partition-table parsers
            subprocess.run(["partx", "-a", node], check=True)
        try:
            for number, mnt in enumerate(mounts, start=1):
                part = f"{node}p{number}"
                subprocess.run(["mkfs.ext4", "-q", part], check=True)
                mnt.mkdir()
                subprocess.run(["mount", part, str(mnt)], check=True)
            rdev = os.stat(node).st_rdev
            subprocess.run(["udevadm", "settle", "--timeout=30"], check=True)

            def both_seen() -> bool:
                with UDisksClient(udisks_bus) as client:
                    seen = {p for o in client.block_objects() for p in o.mount_points}
                return {str(m) for m in mounts} <= seen

            wait_for(both_seen, 15, "UDisks2 never saw the mounts")
            unmounted = unmount_all((os.major(rdev), os.minor(rdev)), bus=udisks_bus)
            assert sorted(unmounted) == sorted(str(m) for m in mounts)
            table = Path("/proc/self/mountinfo").read_text()
            assert all(f" {m} " not in table for m in mounts)
            os.close(open_for_write(node, bus=udisks_bus))  # exclusive open now succeeds
        finally:
            for mnt in mounts:
                subprocess.run(["umount", str(mnt)], capture_output=True)
            subprocess.run(["partx", "-d", node], capture_output=True)


def test_an_unprivileged_user_is_refused_with_permission_denied(
    udisks_bus: str, tmp_path: Path
) -> None:
    if udisks_bus == "SYSTEM":
        # The host runs UDisks2 itself (a desktop): its polkit rules, not ours, decide.
        # CI has none running, so there the fixture starts our own and this test runs.
        pytest.skip("the host's polkit decides for the system UDisks2; not testable here")
    backing = make_backing(tmp_path / "y.img", 4 * MiB)
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from app.usb.udisks import open_for_write\n"
        "try:\n"
        f"    open_for_write(sys.argv[1], bus={udisks_bus!r})\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    with loop_device(backing, udisks_bus) as node:
        out = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-c",
                script,
                node,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
        )
    assert out.stdout.startswith(DevicePermissionDenied.__name__), out.stdout + out.stderr
    assert "not allowed to open the drive for writing" in out.stdout


def test_udisks_not_running_and_bus_unreachable_are_clear(tmp_path: Path) -> None:
    with pytest.raises(UDisksUnavailable, match="cannot reach the system D-Bus"):
        UDisksClient(f"unix:path={tmp_path}/no-such-socket")
    bus_dir = Path(tempfile.mkdtemp(prefix="livesmith-bus-"))
    try:
        proc, address = start_private_bus(bus_dir)
        try:
            with pytest.raises(UDisksUnavailable, match="UDisks2 service is not running"):
                find_block_object((7, 0), bus=address)
        finally:
            stop(proc)
    finally:
        shutil.rmtree(bus_dir, ignore_errors=True)


def test_a_path_that_is_not_a_block_device_is_not_found(udisks_bus: str, tmp_path: Path) -> None:
    with pytest.raises(DeviceNotFound, match="no such device"):
        open_for_write(tmp_path / "missing", bus=udisks_bus)
    with pytest.raises(DeviceError, match="is not a block device"):
        open_for_read("/dev/null", bus=udisks_bus)


def test_power_off_refuses_a_loop_device_it_cannot_power_off(
    udisks_bus: str, tmp_path: Path
) -> None:
    # UDisks2 shows loop devices without a Drive object: nothing to power off. (A real USB
    # stick's Drive.PowerOff cannot be reached here: this machine has no USB bus.)
    backing = make_backing(tmp_path / "x.img", 4 * MiB)
    with loop_device(backing, udisks_bus) as node:
        rdev = os.stat(node).st_rdev
        with pytest.raises(DeviceNotAllowed, match="not a drive that can be powered off"):
            power_off((os.major(rdev), os.minor(rdev)), node, bus=udisks_bus)

"""Watch udev for block devices coming and going; Qt-free.

`DriveMonitor` listens on a pyudev monitor in a background thread. A burst of events (a
stick brings a disk and several partitions, each with add + change) is debounced into one
re-listing, so `on_change` gets the new drive list once the burst has settled (or, while
events keep coming, at most MAX_WAIT_FACTOR quiet periods after the first). A disk going
away (`remove`, or a `change` to size 0 when a card leaves its reader or a loop device is
detached) is reported through `on_removed` at once: the writer says "unplugged" without
waiting for the debounce.

Both callbacks run in the monitor thread. A GUI must hand them over to its own thread
(ui/drive_model.py does it with a Qt signal).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pyudev

from app.usb.drives import Drive, list_drives
from app.usb.target import MOUNTINFO, Mount, Swap

DEBOUNCE_SECONDS = 0.5
MAX_WAIT_FACTOR = 4  # a re-listing waits at most this many quiet periods for a burst to end
UDEV_CONTROL = Path("/run/udev/control")  # exists while systemd-udevd runs

ChangeCallback = Callable[[list[Drive]], None]
RemovedCallback = Callable[[str], None]
ErrorCallback = Callable[[BaseException], None]


def event_source() -> str:
    """ "udev" (events after udev has filled in its database) when udevd runs, else "kernel".

    Without udevd (a container, a minimal VM) nothing arrives on the udev group; the kernel's
    own events still say when disks come and go, and the listing reads sysfs.
    """
    return "udev" if udevd_running() else "kernel"


def udevd_running(control: Path = UDEV_CONTROL) -> bool:
    """True if systemd-udevd answers on its control socket (a stale socket file refuses)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.connect(str(control))
    except OSError:
        return False
    finally:
        sock.close()
    return True


class DriveMonitor:
    """Reports the drive list after every settled burst of block events, removals at once.

    `start()` lists the drives once (reported through `on_change`) after the monitor is
    listening, so nothing that happens in between is lost. `stop()` joins the thread.
    The listing options are those of `list_drives`.
    """

    def __init__(
        self,
        on_change: ChangeCallback,
        on_removed: RemovedCallback | None = None,
        *,
        context: pyudev.Context | None = None,
        debounce: float = DEBOUNCE_SECONDS,
        include_excluded: bool = False,
        mounts: Sequence[Mount] | None = None,
        swaps: Sequence[Swap] | None = None,
        image: str | Path | None = None,
        on_error: ErrorCallback | None = None,
    ) -> None:
        self._on_change = on_change
        self._on_removed = on_removed
        self._on_error = on_error
        self._context = context or pyudev.Context()
        self._debounce = debounce
        self._include_excluded = include_excluded
        self._mounts = mounts
        self._swaps = swaps
        self._image = image
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._drives: list[Drive] = []
        self._sizes: dict[str, int] = {}  # sys_path -> size of every whole disk last seen

    @property
    def drives(self) -> list[Drive]:
        """The last reported list (a copy)."""
        with self._lock:
            return list(self._drives)

    def set_image(self, image: str | Path | None) -> None:
        """Change the source image (its disk is never offered) and re-list soon."""
        self._image = image
        self.refresh()

    def refresh(self) -> None:
        """Ask for a re-listing (debounced like an event); callable from any thread."""
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"r")

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("DriveMonitor already started")
        monitor = pyudev.Monitor.from_netlink(self._context, source=event_source())
        monitor.filter_by("block")
        monitor.start()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, args=(monitor,), name="livesmith-drive-monitor", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"s")
        thread.join(timeout)
        self._thread = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r, self._wake_w = -1, -1

    def __enter__(self) -> DriveMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ monitor thread

    def _run(self, monitor: pyudev.Monitor) -> None:
        poller = select.poll()
        poller.register(monitor.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        # Mounting makes no uevent; the kernel flags the mount table instead (POLLPRI).
        mount_table = self._open_mount_table()
        if mount_table is not None:
            poller.register(mount_table, select.POLLPRI)
        try:
            self._relist()
            self._loop(monitor, poller, mount_table)
        finally:
            if mount_table is not None:
                os.close(mount_table)

    def _open_mount_table(self) -> int | None:
        if self._mounts is not None:  # a fixed table was given: nothing to watch
            return None
        try:
            return os.open(MOUNTINFO, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None

    def _loop(self, monitor: pyudev.Monitor, poller: select.poll, mount_table: int | None) -> None:
        deadline: float | None = None
        first: float | None = None  # the first event not yet covered by a re-listing

        def later(restart: bool) -> float:
            # Each event restarts the quiet period, but never past the maximum wait: a disk
            # that keeps sending events (a flaky reader, a loop device in a script) must not
            # hold the list back forever.
            nonlocal first
            now = time.monotonic()
            first = first or now
            if deadline is not None and not restart:
                return deadline
            return min(now + self._debounce, first + self._debounce * MAX_WAIT_FACTOR)

        while not self._stopping.is_set():
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = {fd for fd, _ in poller.poll(None if timeout is None else timeout * 1000)}
            if self._stopping.is_set():
                break
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 64)
                deadline = later(restart=False)
            if mount_table is not None and mount_table in ready:
                # poll() itself re-arms the flag; nothing to read
                deadline = later(restart=False)
            if monitor.fileno() in ready:
                # Drain everything queued; each event restarts the quiet period.
                while (device := monitor.poll(timeout=0)) is not None:
                    self._handle_event(device)
                    deadline = later(restart=True)
            if deadline is not None and time.monotonic() >= deadline:
                deadline = first = None
                self._relist()

    def _handle_event(self, device: pyudev.Device) -> None:
        if device.device_type != "disk" or self._on_removed is None:
            return
        action = device.action
        if action == "remove":
            gone = True
        elif action in ("add", "change"):
            # A change to size 0: the medium left (card out of its reader, loop device
            # detached). Report it once, and only for a disk that had one.
            size = _disk_size(device)
            with self._lock:
                gone = size == 0 and self._sizes.get(device.sys_path, 0) > 0
                self._sizes[device.sys_path] = size
        else:
            return
        if gone:
            self._call(self._on_removed, device.device_node or f"/dev/{device.sys_name}")

    def _relist(self) -> None:
        try:
            every_disk = list_drives(
                self._context,
                include_excluded=True,
                mounts=self._mounts,
                swaps=self._swaps,
                image=self._image,
            )
        except Exception as exc:  # a vanished sysfs entry mid-listing: try at the next event
            self._report_error(exc)
            return
        drives = [d for d in every_disk if self._include_excluded or d.offered]
        with self._lock:
            self._drives = drives
            self._sizes = {d.sys_path: d.size for d in every_disk}
        self._call(self._on_change, list(drives))

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception as exc:  # keep watching even if the receiver fails
            self._report_error(exc)

    def _report_error(self, exc: BaseException) -> None:
        if self._on_error is not None:
            # The receiver may be gone already (a closed window); the thread must go on.
            with contextlib.suppress(Exception):
                self._on_error(exc)


def _disk_size(device: pyudev.Device) -> int:
    try:
        sectors = device.attributes.get("size")
    except (OSError, KeyError):
        return 0
    try:
        return int(sectors) * 512 if sectors is not None else 0
    except ValueError:
        return 0

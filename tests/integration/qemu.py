"""QEMU boot harness for the tests: boot an image as BIOS/UEFI x CD/USB stick and talk to
its serial console.

    with QemuSession(BootConfig(firmware="uefi", medium="usb", image=iso,
                                blank_eltorito=True)) as vm:
        vm.expect("login:", timeout=30)
        vm.login("root", "live")
        assert "overlay" in vm.run("grep ' / ' /proc/mounts")

- Acceleration: KVM only if `kvm_works()` proves it on a real isolinux and OVMF start-up
  (on some hosts /dev/kvm exists but fails with "emulation failure"), else TCG.
  `LIVESMITH_QEMU_ACCEL=kvm|tcg` overrides the probe.
- Timeouts passed to `expect`/`run`/`login` are seconds *at KVM speed*; the session
  multiplies them by `timeout_scale()` (3 under TCG, times `$LIVESMITH_QEMU_TIMEOUT_SCALE`
  on slow machines), so one number works everywhere.
- The console text is matched with ANSI escape sequences and carriage returns removed,
  so menus drawn with cursor movements still read as plain text.
- Every session runs on copies (the USB disk image, the OVMF variable store) in its own
  temp directory, and qemu is always killed: on `close()`, on leaving the `with` block,
  on garbage collection, and (PR_SET_PDEATHSIG) when the test process dies.
"""

from __future__ import annotations

import codecs
import ctypes
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.reporter import NullReporter

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# Secure Boot enforced: OVMF built with SMM, its variable store with Microsoft's keys
# enrolled, as on a stock PC.
OVMF_CODE_SECURE = Path("/usr/share/OVMF/OVMF_CODE_4M.ms.fd")
OVMF_VARS_SECURE = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
ISOHYBRID_MBR = Path("/usr/lib/ISOLINUX/isohdpfx.bin")
SYSLINUX_BIOS = Path("/usr/lib/syslinux/modules/bios")

SECTOR = 2048
ELTORITO_OFFSET = 17 * SECTOR + 7  # boot system identifier of the El Torito boot record
ELTORITO_ID = b"EL TORITO SPECIFICATION"
TCG_SLOWDOWN = 3.0
# qemu's default CPU model: "-cpu host" can fail on nested/paravirtual KVM (MSR errors).
KVM_ARGS = ["-accel", "kvm"]
TCG_ARGS = ["-accel", "tcg"]
TAIL_CHARS = 3000
# qemu stops the guest (without exiting) after this; waiting on would only hide the cause.
FATAL_STDERR = ("KVM internal error",)

Firmware = Literal["bios", "uefi"]
Medium = Literal["cd", "usb", "none"]  # "none": no disk (e.g. a -kernel boot)

_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor movement, modes
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    r"|\x1b[()][0-9A-Za-z]"  # character set selection
    r"|\x1b[@-Z\\^-~]"  # two-character escapes (ESC c: reset, ...)
)


class QemuError(AssertionError):
    """A boot did not do what the test expected; the message carries the console tail."""


def qemu_binary() -> str:
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        raise QemuError("qemu-system-x86_64 is not installed (Debian package qemu-system-x86)")
    return path


# ----------------------------------------------------------------------- acceleration


def _kvm_usable_device() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def _probe_iso(directory: Path) -> Path:
    """A tiny isolinux CD that prints a marker on the serial port and powers off."""
    tree = directory / "tree"
    boot = tree / "isolinux"
    boot.mkdir(parents=True)
    shutil.copyfile("/usr/lib/ISOLINUX/isolinux.bin", boot / "isolinux.bin")
    shutil.copyfile(SYSLINUX_BIOS / "ldlinux.c32", boot / "ldlinux.c32")
    # Prints the marker, then waits at the boot prompt until the probe kills qemu.
    (boot / "isolinux.cfg").write_text(
        "SERIAL 0 115200\nSAY LIVESMITH-KVM-PROBE-OK\nPROMPT 1\nTIMEOUT 0\n"
    )
    iso = directory / "probe.iso"
    subprocess.run(
        [
            "xorriso",
            "-as",
            "mkisofs",
            "-quiet",
            "-o",
            str(iso),
            "-b",
            "isolinux/isolinux.bin",
            "-c",
            "isolinux/boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            str(tree),
        ],
        check=True,
        capture_output=True,
    )
    return iso


def _probe_boot(config: BootConfig, marker: str) -> bool:
    try:
        with QemuSession(config, accel=KVM_ARGS, scale=1.0) as vm:
            vm.expect(marker, timeout=20)
            return True
    except QemuError:
        return False


@functools.cache
def kvm_works() -> bool:
    """True only if KVM really runs what our boots run: isolinux (real mode -> protected
    mode, where broken KVM fails with "emulation failure") and OVMF's start-up."""
    forced = os.environ.get("LIVESMITH_QEMU_ACCEL", "").strip().lower()
    if forced in ("kvm", "tcg"):
        return forced == "kvm"
    if not _kvm_usable_device():
        return False
    with tempfile.TemporaryDirectory(prefix="livesmith-kvm-probe-") as work:
        iso = _probe_iso(Path(work))
        # OVMF first (broken KVM fails in its first instructions): with this CD, which it
        # cannot boot, it reaches its boot manager, which says so ("BdsDxe: ...").
        if not _probe_boot(BootConfig("uefi", "cd", iso, memory_mb=256), "BdsDxe"):
            return False
        return _probe_boot(BootConfig("bios", "cd", iso, memory_mb=128), "LIVESMITH-KVM-PROBE-OK")


def accel_args() -> list[str]:
    return KVM_ARGS if kvm_works() else TCG_ARGS


def timeout_scale() -> float:
    """Factor for timeouts written at KVM speed (TCG is several times slower)."""
    extra = float(os.environ.get("LIVESMITH_QEMU_TIMEOUT_SCALE", "1") or 1)
    return (1.0 if kvm_works() else TCG_SLOWDOWN) * extra


# -------------------------------------------------------------------------- disk images


def blank_eltorito_signature(disk: Path) -> None:
    """Remove the El Torito signature so firmware must boot through the partition table."""
    with open(disk, "r+b") as f:
        f.seek(ELTORITO_OFFSET)
        if f.read(len(ELTORITO_ID)) != ELTORITO_ID:
            raise ValueError(f"{disk}: no El Torito boot record at sector 17")
        f.seek(ELTORITO_OFFSET)
        f.write(bytes(len(ELTORITO_ID)))


def relabel_iso(disk: Path, label: str) -> None:
    """Rewrite the volume ID in the primary (and Joliet) volume descriptor, in place."""
    if not re.fullmatch(r"[A-Z0-9_]{1,32}", label):
        raise ValueError(f"invalid ISO 9660 volume label {label!r}")
    found_primary = False
    with open(disk, "r+b") as f:
        for sector in range(16, 64):
            f.seek(sector * SECTOR)
            descriptor = f.read(SECTOR)
            if descriptor[1:6] != b"CD001":
                raise ValueError(f"{disk}: no volume descriptor at sector {sector}")
            kind = descriptor[0]
            if kind == 255:
                break
            if kind == 1:
                f.seek(sector * SECTOR + 40)
                f.write(label.encode("ascii").ljust(32, b" "))
                found_primary = True
            elif kind == 2 and descriptor[88:91] in (b"%/@", b"%/C", b"%/E"):
                f.seek(sector * SECTOR + 40)
                # UCS-2 big endian, at most 16 characters, padded with UCS-2 spaces
                f.write(label[:16].encode("utf-16-be") + b"\0 " * (16 - len(label[:16])))
    if not found_primary:
        raise ValueError(f"{disk}: no primary volume descriptor")


def prepare_usb_disk(
    iso: Path, dest: Path, *, blank_eltorito: bool, new_label: str | None = None
) -> Path:
    """A raw copy of `iso` as a USB stick would hold it, optionally with the El Torito
    signature blanked and/or the volume label rewritten."""
    shutil.copyfile(iso, dest)
    if blank_eltorito:
        blank_eltorito_signature(dest)
    if new_label is not None:
        relabel_iso(dest, new_label)
    return dest


# ----------------------------------------------------------------------------- sessions


@dataclass
class BootConfig:
    firmware: Firmware
    medium: Medium
    image: Path | None
    blank_eltorito: bool = False
    memory_mb: int = 1024
    new_label: str | None = None  # usb only: rewrite the volume label on the disk copy
    # SeaBIOS mirrors the screen to the serial port (qemu -nographic). Off by default: the
    # serial console then shows only what the boot chain itself sends there, as on real
    # hardware, so a missing serial setting in a bootloader is noticed. (OVMF always
    # mirrors its text console to the serial port.)
    firmware_console: bool = False
    # UEFI only: OVMF with Microsoft's keys enrolled and Secure Boot enforced.
    secure_boot: bool = False

    def describe(self) -> str:
        extra = " (El Torito blanked)" if self.blank_eltorito else ""
        if self.secure_boot:
            extra += " (Secure Boot)"
        if self.new_label:
            extra += f" (relabelled {self.new_label})"
        name = self.image.name if self.image else "nothing"
        return f"{self.firmware.upper()} {self.medium.upper()} boot of {name}{extra}"


_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the forked child


def _die_with_parent() -> None:
    # Runs in the child before exec: qemu gets SIGKILL if the test process dies.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class QemuSession:
    """One running qemu with its serial console on pipes; use as a context manager."""

    def __init__(
        self,
        config: BootConfig,
        *,
        accel: list[str] | None = None,
        scale: float | None = None,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.config = config
        self.scale = timeout_scale() if scale is None else scale
        self.workdir = Path(tempfile.mkdtemp(prefix="livesmith-qemu-"))
        self._cond = threading.Condition()
        self._text = ""  # console output, escapes and CRs removed
        self._pos = 0  # where the next expect() starts searching
        self._held = ""  # an unfinished escape sequence at the end of the last read
        self._stderr = ""
        self._eof = False
        self._counter = 0
        self.last_status: int | None = None
        self.started = time.monotonic()
        self._log = open(log_path, "wb") if log_path else None
        try:
            argv = [
                qemu_binary(),
                *(accel if accel is not None else accel_args()),
                *self._machine_args(),
                *self._medium_args(),
                "-m",
                str(config.memory_mb),
                "-smp",
                "1",
                *(["-nographic"] if config.firmware_console else ["-display", "none"]),
                "-serial",
                "stdio",
                "-monitor",
                "none",
                # QMP, for screendump of the VGA screen (desktops, loaders without serial)
                "-qmp",
                f"unix:{self.workdir / 'qmp.sock'},server=on,wait=off",
                "-nic",
                "none",
                "-no-reboot",
                *extra_args,
            ]
            self.argv = argv
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=_die_with_parent,
            )
        except BaseException:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        self._finalizer = weakref.finalize(self, _kill, self.proc)
        self._threads = [
            threading.Thread(target=self._read_console, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # -- set-up

    def _machine_args(self) -> list[str]:
        if self.config.firmware == "bios":
            if self.config.secure_boot:
                raise ValueError("Secure Boot is a UEFI feature: use firmware='uefi'")
            return ["-M", "pc"]
        vars_copy = self.workdir / "OVMF_VARS.fd"
        if self.config.secure_boot:
            # SMM keeps the variable store (and so the enrolled keys) out of the OS's reach;
            # the secure flash is what OVMF's Secure Boot build requires.
            shutil.copyfile(OVMF_VARS_SECURE, vars_copy)
            return [
                "-M",
                "q35,smm=on",
                "-global",
                "driver=cfi.pflash01,property=secure,value=on",
                "-drive",
                f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE_SECURE}",
                "-drive",
                f"if=pflash,format=raw,unit=1,file={vars_copy}",
            ]
        shutil.copyfile(OVMF_VARS, vars_copy)
        return [
            "-M",
            "q35",
            "-drive",
            f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive",
            f"if=pflash,format=raw,unit=1,file={vars_copy}",
        ]

    def _medium_args(self) -> list[str]:
        config = self.config
        if config.medium == "none":
            return []
        if config.image is None:
            raise ValueError(f"a {config.medium} boot needs an image")
        if config.medium == "cd":
            if config.blank_eltorito or config.new_label:
                raise ValueError("blank_eltorito and new_label apply to USB disk copies only")
            return [
                "-drive",
                f"if=none,id=medium,media=cdrom,readonly=on,format=raw,file={config.image}",
                "-device",
                "ide-cd,drive=medium,bootindex=0",
            ]
        disk = prepare_usb_disk(
            config.image,
            self.workdir / "usb.img",
            blank_eltorito=config.blank_eltorito,
            new_label=config.new_label,
        )
        return [
            "-drive",
            f"if=none,id=medium,format=raw,file={disk}",
            "-device",
            "qemu-xhci,id=xhci",
            "-device",
            "usb-storage,bus=xhci.0,drive=medium,bootindex=0",
        ]

    # -- reading

    def _read_console(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if self._log and chunk:
                self._log.write(chunk)
                self._log.flush()
            text = self._held + decoder.decode(chunk, final=not chunk)
            self._held = ""
            esc = text.rfind("\x1b")
            if chunk and esc != -1 and len(text) - esc < 64 and not _ESCAPE.match(text, esc):
                text, self._held = text[:esc], text[esc:]
            cleaned = _ESCAPE.sub("", text).replace("\r", "").replace("\0", "")
            with self._cond:
                self._text += cleaned
                if not chunk:
                    self._eof = True
                self._cond.notify_all()
            if not chunk:
                return

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            with self._cond:
                self._stderr += raw.decode("utf-8", "replace")
                self._cond.notify_all()

    @property
    def output(self) -> str:
        """All console output so far (escapes removed)."""
        with self._cond:
            return self._text

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _fatal(self) -> str | None:
        for marker in FATAL_STDERR:
            if marker in self._stderr:
                return f"qemu reported '{marker}'"
        if self._eof:
            try:  # the console closes just before qemu is gone
                status: int | None = self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                status = None
            return f"qemu exited (status {status})" if status is not None else "the console closed"
        return None

    def _failure(self, what: str) -> QemuError:
        with self._cond:
            tail = self._text[-TAIL_CHARS:]
            stderr = self._stderr[-1500:]
        message = (
            f"{self.config.describe()}: {what} after {self.elapsed:.0f} s.\n"
            f"--- last {len(tail)} characters of the serial console ---\n{tail}\n"
            f"--- end of console ---"
        )
        if stderr.strip():
            message += f"\n--- qemu stderr ---\n{stderr}"
        return QemuError(message)

    def expect(self, pattern: str | re.Pattern[str], timeout: float = 30) -> re.Match[str]:
        """Wait until the console shows `pattern` (a regex; plain text is escaped) after the
        previous match; returns the match. Raises QemuError with the console tail on a
        timeout, or at once if qemu exits or fails."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        return self._expect(regex, timeout * self.scale)

    def _expect(self, regex: re.Pattern[str], limit: float) -> re.Match[str]:
        deadline = time.monotonic() + limit
        with self._cond:
            while True:
                match = regex.search(self._text, self._pos)
                if match:
                    self._pos = match.end()
                    return match
                fatal = self._fatal()
                if fatal:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.5))
        reason = fatal or f"timed out after {limit:.0f} s"
        raise self._failure(f"waiting for {regex.pattern!r}: {reason}")

    def wait_exit(self, timeout: float = 30) -> int:
        """Wait for qemu to exit by itself (guest powered off); returns its status."""
        try:
            return self.proc.wait(timeout=timeout * self.scale)
        except subprocess.TimeoutExpired:
            raise self._failure(f"qemu did not exit within {timeout * self.scale:.0f} s") from None

    # -- typing

    def send(self, line: str) -> None:
        """Type `line` followed by Enter (a carriage return, as a terminal sends it)."""
        self.send_raw(line + "\r")

    def send_raw(self, text: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._failure("cannot type: qemu is gone") from None

    def _marker(self, name: str) -> tuple[str, str]:
        """(shell text that prints the marker, the marker): the two differ, so the echo of
        the typed command never matches."""
        self._counter += 1
        marker = f"LS-{name}-{self._counter}"
        return f'echo "LS""-{name}-{self._counter}"', marker

    def login(self, user: str, password: str, timeout: float = 60) -> None:
        """Log in at the `login:` prompt and wait until a shell answers."""
        self.expect(re.compile(r"login: *$", re.M), timeout)
        self.send(user)
        self.expect("Password:", 10)
        self.send(password)
        self.wait_for_shell(timeout, refused=f"login as {user!r} was refused (wrong password?)")

    def wait_for_shell(self, timeout: float = 60, *, refused: str = "") -> None:
        """Wait until a shell answers on the console (after a login, or an automatic one)."""
        command, marker = self._marker("SHELL")
        deadline = time.monotonic() + timeout * self.scale
        # Keystrokes typed while login starts the shell may be flushed: repeat until answered.
        while True:
            self.send(command)
            try:
                match = self._expect(re.compile(f"Login incorrect|{marker}"), 3.0)
            except QemuError:
                if time.monotonic() > deadline or self._fatal():
                    raise
                continue
            if match.group(0) == "Login incorrect":
                raise self._failure(refused or "a login was refused")
            return

    def screendump(self, path: Path) -> Path:
        """Save the VGA screen as a PNG at `path` (QEMU's QMP `screendump`)."""
        with socket.socket(socket.AF_UNIX) as qmp:
            qmp.settimeout(30)
            qmp.connect(str(self.workdir / "qmp.sock"))
            reader = qmp.makefile("r")
            json.loads(reader.readline())  # the greeting
            for command in (
                {"execute": "qmp_capabilities"},
                {"execute": "screendump", "arguments": {"filename": str(path), "format": "png"}},
            ):
                qmp.sendall(json.dumps(command).encode() + b"\n")
                while True:
                    reply = json.loads(reader.readline())
                    if "return" in reply:
                        break
                    if "error" in reply:
                        raise self._failure(f"QMP {command['execute']}: {reply['error']}")
        return path

    def run(self, command: str, timeout: float = 30, *, check: bool = False) -> str:
        """Run a shell command on the console; returns its output (exit status in
        `last_status`; `check=True` raises QemuError when it is not 0)."""
        begin_cmd, begin = self._marker("BEGIN")
        self._counter += 1
        end = f"LS-END-{self._counter}"
        self.send(f'{begin_cmd}; {command}; echo "LS""-END-{self._counter}:$?"')
        self.expect(re.compile(re.escape(begin) + r"\n"), timeout)
        match = self.expect(re.compile(r"(?s)(.*?)" + re.escape(end) + r":(\d+)"), timeout)
        self.last_status = int(match.group(2))
        output = match.group(1)
        if check and self.last_status != 0:
            raise self._failure(f"{command!r} exited with status {self.last_status}")
        return output.rstrip("\n")

    # -- ending

    def close(self) -> None:
        """Kill qemu (always safe to call again) and remove the session's files."""
        _kill(self.proc)
        self._finalizer.detach()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        for thread in self._threads:
            thread.join(timeout=5)
        if self._log:
            self._log.close()
            self._log = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> QemuSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------- test ISOs


def make_hybrid_iso(
    tree: Path,
    output: Path,
    label: str,
    *,
    method: str | None = None,
    bios_boot: str = "boot/syslinux/isolinux.bin",
    efi_image: str = "boot/grub/efi.img",
) -> Path:
    """Master a hybrid (BIOS+UEFI, CD+USB) ISO of `tree` for boot tests.

    method "xorriso" (default, or $LIVESMITH_TEST_ISO_MASTER) uses `xorriso -as mkisofs`
    with isohybrid MBR + GPT; "master" uses the project's own app.iso.master.
    """
    method = method or os.environ.get("LIVESMITH_TEST_ISO_MASTER", "xorriso")
    if method == "master":
        # Imported here: app.iso.master is another stage's work and may not exist yet.
        from app.iso.master import BootSpec, MasterSpec, master_iso

        master_iso(
            MasterSpec(
                tree,
                output,
                label,
                boot=BootSpec(bios_boot=bios_boot, efi_image=efi_image, hybrid=True),
            ),
            NullReporter(),
        )
        return output
    if method != "xorriso":
        raise ValueError(f"unknown ISO mastering method {method!r}")
    subprocess.run(
        [
            "xorriso",
            "-as",
            "mkisofs",
            "-quiet",
            "-o",
            str(output),
            "-R",
            "-J",
            "-iso-level",
            "3",
            "-V",
            label,
            "-isohybrid-mbr",
            str(ISOHYBRID_MBR),
            "-c",
            "boot/boot.cat",
            "-b",
            bios_boot,
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "-eltorito-alt-boot",
            "-e",
            efi_image,
            "-no-emul-boot",
            "-isohybrid-gpt-basdat",
            str(tree),
        ],
        check=True,
        capture_output=True,
    )
    return output

"""`livesmith write` and `livesmith verify` as a user runs them, on real loop devices."""

from __future__ import annotations

import hashlib
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli import EXIT_CANCELLED, EXIT_FAILURE, EXIT_INPUT
from tests.app.usb.writer_support import (
    MiB,
    big_zero_image,
    cmp_prefix,
    device_bytes,
    loop_device,
    make_image,
    overwritten_markers,
    plant_markers,
    replugging_loop,
    run,
    sha256_of_device,
    sparse_file,
)
from tests.conftest import ROOT, needs_root

pytestmark = [needs_root, pytest.mark.root]


def livesmith(
    *args: str, stdin: int | None = subprocess.DEVNULL, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        stdin=stdin if input is None else None,
        input=input,
        timeout=300,
    )


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "live-1.0.iso"
    make_image(path, 20 * MiB + 2048)
    return path


@pytest.fixture
def stick(tmp_path: Path):
    with loop_device(sparse_file(tmp_path / "stick.img", 32 * MiB)) as node:
        yield node


def test_write_yes_writes_verifies_and_reports_the_checksum(image: Path, stick: str) -> None:
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    (image.parent / "SHA256SUMS").write_text(f"{digest}  {image.name}\n")
    out = livesmith("write", str(image), stick, "--yes")
    assert out.returncode == 0, out.stderr
    assert "written and verified" in out.stdout
    assert f"checksum: SHA-256 of {image.name} matches SHA256SUMS" in out.stderr
    assert "checksum: the checksum file is not signed" in out.stderr
    assert "==> Writing" in out.stderr and "==> Verifying" in out.stderr
    assert "MB/s" in out.stderr  # speed is shown
    cmp_prefix(image, stick, image.stat().st_size)


def test_write_no_verify_says_so(image: Path, stick: str) -> None:
    out = livesmith("write", str(image), stick, "--yes", "--no-verify")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("written, not verified")
    assert "checksum: no checksum file" in out.stderr and "NOT checked" in out.stderr


def test_bad_checksum_refuses_and_leaves_the_stick_alone(image: Path, stick: str) -> None:
    (image.parent / "SHA256SUMS").write_text(f"{'0' * 64}  {image.name}\n")
    before = sha256_of_device(stick)
    out = livesmith("write", str(image), stick, "--yes")
    assert out.returncode == EXIT_FAILURE
    assert "does NOT match SHA256SUMS" in out.stderr
    assert sha256_of_device(stick) == before


def test_without_yes_and_no_terminal_it_refuses(image: Path, stick: str) -> None:
    before = sha256_of_device(stick)
    out = livesmith("write", str(image), stick)
    assert out.returncode == EXIT_INPUT
    assert "standard input is not a terminal" in out.stderr and "--yes" in out.stderr
    assert sha256_of_device(stick) == before


@pytest.mark.parametrize("answer,status", [("no", EXIT_CANCELLED), ("yes", 0)])
def test_confirmation_on_a_terminal(image: Path, stick: str, answer: str, status: int) -> None:
    before = sha256_of_device(stick)
    controller, terminal = pty.openpty()
    try:
        os.write(controller, f"{answer}\n".encode())
        out = livesmith("write", str(image), stick, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)
    assert out.returncode == status, out.stderr
    assert f"Write to {stick}:" in out.stderr and "will be destroyed" in out.stderr
    if answer == "no":
        assert "nothing was written" in out.stderr
        assert sha256_of_device(stick) == before
    else:
        cmp_prefix(image, stick, image.stat().st_size)


def test_verify_command_good_and_corrupt(tmp_path: Path, image: Path) -> None:
    backing = sparse_file(tmp_path / "stick2.img", 32 * MiB)
    with loop_device(backing) as node:
        assert livesmith("write", str(image), node, "--yes").returncode == 0
        good = livesmith("verify", str(image), node)
        assert good.returncode == 0, good.stderr
        assert good.stdout.startswith("verified: the first")
        bad = 7 * MiB + 5
        with open(backing, "r+b") as fh:
            fh.seek(bad)
            old = fh.read(1)
            fh.seek(bad)
            fh.write(bytes([old[0] ^ 1]))
        out = livesmith("verify", str(image), node)
        assert out.returncode == EXIT_FAILURE
        assert f"byte {bad} differs" in out.stderr


def test_verify_reads_past_a_stale_cache(tmp_path: Path, image: Path) -> None:
    # The same proof as the engine test, through the command: a loop device without direct
    # I/O, held open with its cache full of the good image, its medium corrupted below.
    backing = sparse_file(tmp_path / "stick3.img", 32 * MiB)
    data = image.read_bytes()
    bad = 3 * MiB + 1
    with loop_device(backing, direct_io=False) as node:
        assert livesmith("write", str(image), node, "--yes").returncode == 0
        held = os.open(node, os.O_RDONLY)
        try:
            assert os.pread(held, len(data), 0) == data
            with open(backing, "r+b") as fh:
                fh.seek(bad)
                fh.write(bytes([data[bad] ^ 0xFF]))
            assert os.pread(held, 1, bad) == data[bad : bad + 1]  # stale cache
            assert device_bytes(node, 1, bad) == data[bad : bad + 1]  # for any buffered reader
            out = livesmith("verify", str(image), node)
        finally:
            os.close(held)
        assert out.returncode == EXIT_FAILURE
        assert f"byte {bad} differs" in out.stderr


def test_non_hybrid_iso_needs_force(tmp_path: Path, stick: str) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("a\n")
    iso = tmp_path / "cd.iso"
    run("xorriso", "-as", "mkisofs", "-quiet", "-o", str(iso), str(tree))
    refused = livesmith("write", str(iso), stick, "--yes")
    assert refused.returncode == EXIT_INPUT
    assert "will not boot from a USB stick" in refused.stderr and "--force" in refused.stderr
    forced = livesmith("write", str(iso), stick, "--yes", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "warning:" in forced.stderr and "written and verified" in forced.stdout


def test_write_to_a_file_and_a_missing_image(tmp_path: Path, image: Path) -> None:
    out = livesmith("write", str(image), str(tmp_path / "vm.raw"), "--yes")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "vm.raw").read_bytes() == image.read_bytes()
    missing = livesmith("write", str(tmp_path / "nope.iso"), str(tmp_path / "x"), "--yes")
    assert missing.returncode == EXIT_INPUT and "does not exist" in missing.stderr


def test_ctrl_c_cancels_mid_write_and_wipes(tmp_path: Path) -> None:
    image = big_zero_image(tmp_path / "big.iso")  # 1 GiB of zeros: the image never runs out
    backing = sparse_file(tmp_path / "stick.img", (1 << 30) + 64 * MiB)
    # Marks the image's zeros would erase: from a quarter of the image on, they must remain.
    marks = plant_markers(backing, range(256 * MiB, 1 << 30, 64 * MiB))
    with loop_device(backing) as node:
        # Its own session, so the "Ctrl-C" below reaches the CLI and its helper, as a
        # terminal's would, and nothing else.
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "write", str(image), node, "--yes"],
            cwd=ROOT,
            text=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "%" in line:  # the first progress line: writing is under way
                break
        os.killpg(proc.pid, signal.SIGINT)
        interrupted = time.monotonic()
        status = proc.wait(timeout=60)
        rest = proc.stderr.read()
        assert status == EXIT_CANCELLED, "".join(seen) + rest
        assert time.monotonic() - interrupted < 30  # a guard against a hang, not a goal
        assert "the stick was wiped so it does not look half-bootable" in rest
        assert device_bytes(node, 512)[510:512] == b"\0\0"
        # It stopped where it was, not after writing on to the end of the image.
        assert overwritten_markers(node, marks) == [], "".join(seen) + rest


def test_a_disk_swapped_while_the_question_waits_is_not_written(
    tmp_path: Path, image: Path
) -> None:
    # The stick is pulled while `write` waits for "yes" and another disk gets its name.
    other = sparse_file(tmp_path / "other.img", 32 * MiB)
    other.write_bytes(b"someone else's disk" + bytes(32 * MiB - 19))
    before = hashlib.sha256(other.read_bytes()).hexdigest()
    with replugging_loop(sparse_file(tmp_path / "stick.img", 32 * MiB)) as slot:
        controller, terminal = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "write", str(image), slot.node],
            cwd=ROOT,
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            seen = ""
            while "Type 'yes' to go on: " not in seen:
                char = proc.stderr.read(1)
                assert char, f"no question: {seen}"
                seen += char
            slot.replug(other)
            os.write(controller, b"yes\n")
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(terminal)
            os.close(controller)
        assert proc.returncode != 0, stdout
        assert f"{slot.node} is now a different drive" in stderr
        assert "nothing was written" in stderr
    assert hashlib.sha256(other.read_bytes()).hexdigest() == before


def test_eject_after_writing_is_a_note_not_a_failure(image: Path, stick: str) -> None:
    out = livesmith("write", str(image), stick, "--yes", "--eject")
    assert out.returncode == 0, out.stderr
    assert "written and verified" in out.stdout
    # A loop device cannot be powered off (and UDisks2 may not run at all): said, not failed.
    assert "not ejected:" in out.stderr
    assert "it was synced, so it is safe to unplug" in out.stderr

"""The helper process: its messages, and typed errors crossing the process boundary."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from app.errors import Cancelled, DeviceError, LivesmithError
from app.frames import FrameReader, Message
from app.reporter import Level, RecordingReporter
from app.usb.engine import VerifyResult, WriteResult
from app.usb.errors import DeviceIOError, DeviceReadOnly, DeviceTooSmall
from app.usb.helper import helper_command, helper_env, run_helper
from tests.app.usb.writer_support import (
    CancelAt,
    MiB,
    big_zero_image,
    cmp_prefix,
    device_bytes,
    loop_device,
    make_image,
    overwritten_markers,
    plant_markers,
    sparse_file,
    tmpfs,
)
from tests.conftest import needs_root


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "live.iso"
    make_image(path, 16 * MiB + 512)
    return path


def fake_helper(*messages: str) -> list[str]:
    """A stand-in helper (run_helper's launcher argument) that sends `messages`: Python
    expressions of app.frames, evaluated in the child."""
    script = (
        "import sys\n"
        "from app.frames import frame, error_to_json\n"
        "from app.usb.errors import DeviceIOError\n"
        f"sys.stdout.buffer.write(b''.join([{', '.join(messages)}]))\n"
    )
    return [sys.executable, "-c", script]


def test_a_result_logs_and_typed_errors_arrive_from_the_helper(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    done = run_helper(
        "write",
        "image",
        "target",
        reporter=reporter,
        argv=fake_helper(
            "frame({'kind': 'step', 'name': 'write'})",
            "frame({'kind': 'progress', 'done': 3, 'total': 4})",
            "frame({'kind': 'log', 'level': 30, 'text': 'careful ü'})",
            "frame({'kind': 'log', 'level': 99, 'text': 'a level from elsewhere'})",
            "frame({'kind': 'done', 'result': {'verified': True}})",
        ),
    )
    assert done == {"verified": True}
    assert reporter.steps == ["write"] and reporter.last_progress == (3, 4)
    assert reporter.logs == [(Level.WARNING, "careful ü"), (Level.INFO, "a level from elsewhere")]
    with pytest.raises(DeviceIOError) as io:
        run_helper(
            "write",
            "image",
            "target",
            argv=fake_helper(
                "frame({'kind': 'failed', 'error': error_to_json("
                "DeviceIOError('I/O error at byte 5', where='/dev/sdz', offset=5, hint='h'))})"
            ),
        )
    assert io.value.offset == 5 and str(io.value) == "/dev/sdz: I/O error at byte 5 (h)"


def test_a_bug_in_the_helper_arrives_as_a_helper_failure() -> None:
    with pytest.raises(LivesmithError) as caught:
        run_helper(
            "write",
            "image",
            "target",
            argv=fake_helper(
                "frame({'kind': 'failed', 'error': error_to_json(ZeroDivisionError('x'))})"
            ),
        )
    assert type(caught.value) is LivesmithError
    assert str(caught.value) == "the writer helper failed: ZeroDivisionError: x"


@pytest.mark.parametrize(
    ("output", "says"),
    [
        ("(1 << 31).to_bytes(4, 'little') + b'{'", "more than the 67108864 allowed"),
        ("(8).to_bytes(4, 'little') + b'PHASE x\\n'", "not UTF-8 JSON"),
        ("frame({'kind': 'progress', 'done': 'lots'})", "no valid 'done'"),
        ("frame({'kind': 'done', 'result': [1, 2]})", "its result is not a JSON object"),
        (
            "frame({'kind': 'failed', 'error': {'family': ['DeviceError'], 'offset': 'x'}})",
            "'offset'",
        ),
    ],
)
def test_a_helper_that_sends_garbage_is_a_clear_device_error(output: str, says: str) -> None:
    with pytest.raises(DeviceError, match="the writer helper sent a broken message") as caught:
        run_helper("write", "image", "target", argv=fake_helper(output))
    assert says in str(caught.value)


def test_write_to_a_file_through_the_helper(tmp_path: Path, image: Path) -> None:
    out = tmp_path / "vm.raw"
    reporter = RecordingReporter()
    done = run_helper("write", image, out, reporter=reporter)
    result = WriteResult.from_json(done)
    assert result.verified and result.image_size == image.stat().st_size
    assert reporter.steps == ["write", "verify"]
    assert reporter.last_progress == (result.image_size, result.image_size)
    assert out.read_bytes() == image.read_bytes()


def test_helper_failure_without_a_result_is_an_error(tmp_path: Path, image: Path) -> None:
    with pytest.raises(DeviceError, match=r"without a result \(exit status 3\).*boom"):
        run_helper(
            "write",
            image,
            tmp_path / "x",
            argv=[sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
        )


def sent(output: bytes) -> list[Message]:
    """The messages in a helper's whole output."""
    with tempfile.TemporaryFile() as file:  # any size, unlike a pipe written before it is read
        file.write(output)
        file.seek(0)
        reader = FrameReader(file.fileno())
        messages = []
        while (message := reader.next()) is not None:
            messages.append(message)
    return messages


@needs_root
@pytest.mark.root
def test_protocol_messages_writing_a_loop_device(tmp_path: Path, image: Path) -> None:
    backing = sparse_file(tmp_path / "stick.img", 24 * MiB)
    with loop_device(backing) as node:
        # Our stdin at end of file means the parent is gone: the helper cancels and wipes.
        out = subprocess.run(
            helper_command("write", image, node),
            env=helper_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
        )
        assert out.returncode == 130, out.stdout + out.stderr
        error = sent(out.stdout)[-1]["error"]
        assert error["type"] == "Cancelled" and "wiped" in error["message"]

        # With stdin held open, it writes and verifies.
        proc = subprocess.Popen(
            helper_command("write", image, node),
            env=helper_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stdin is not None
        stdout = proc.stdout.read()
        assert proc.wait(timeout=120) == 0
        proc.stdin.close()
        messages = sent(stdout)
        kinds = [message["kind"] for message in messages]
        assert set(kinds) <= {"step", "progress", "log", "done"}
        assert [m["name"] for m in messages if m["kind"] == "step"] == ["write", "verify"]
        progress = [(m["done"], m["total"]) for m in messages if m["kind"] == "progress"]
        assert progress[-1] == (image.stat().st_size, image.stat().st_size)
        assert all(0 <= done <= total for done, total in progress)
        assert kinds[-1] == "done"
        result = WriteResult.from_json(messages[-1]["result"])
        assert result.verified
        cmp_prefix(image, node, result.image_size)
        verified = VerifyResult.from_json(run_helper("verify", image, node))
        assert verified.image_size == image.stat().st_size


@needs_root
@pytest.mark.root
def test_read_only_error_crosses_the_process_boundary(tmp_path: Path, image: Path) -> None:
    backing = sparse_file(tmp_path / "stick.img", 24 * MiB)
    with loop_device(backing, read_only=True) as node:
        with pytest.raises(DeviceReadOnly) as err:
            run_helper("write", image, node)
        assert err.value.where == node


@needs_root
@pytest.mark.root
def test_too_small_and_io_errors_keep_their_numbers(tmp_path: Path, image: Path) -> None:
    small = sparse_file(tmp_path / "small.img", 8 * MiB)
    with loop_device(small) as node:
        with pytest.raises(DeviceTooSmall) as err:
            run_helper("write", image, node)
        assert (err.value.image_size, err.value.device_size) == (16 * MiB + 512, 8 * MiB)
    with tmpfs(tmp_path / "fs", "4M") as fs:
        backing = sparse_file(fs / "stick.img", 24 * MiB)
        with loop_device(backing, direct_io=False) as node:
            with pytest.raises(DeviceIOError) as io:
                run_helper("write", image, node)
            assert io.value.offset is not None and 0 < io.value.offset <= 5 * MiB
            assert f"byte {io.value.offset}" in str(io.value)


@needs_root
@pytest.mark.root
def test_cancel_through_the_helper_wipes_and_says_so(tmp_path: Path) -> None:
    image = big_zero_image(tmp_path / "big.iso")  # 1 GiB of zeros: the image never runs out
    backing = sparse_file(tmp_path / "stick.img", (1 << 30) + 64 * MiB)
    # Marks the image's zeros would erase: from a quarter of the image on, they must remain.
    marks = plant_markers(backing, range(256 * MiB, 1 << 30, 64 * MiB))
    with loop_device(backing) as node:
        reporter = CancelAt(8 * MiB)
        with pytest.raises(Cancelled) as err:
            run_helper("write", image, node, reporter=reporter)
        assert reporter.cancelled_at is not None
        assert time.monotonic() - reporter.cancelled_at < 30  # a guard against a hang
        assert "the stick was wiped so it does not look half-bootable" in str(err.value)
        assert "wipe" in reporter.steps
        assert device_bytes(node, 512)[510:512] == b"\0\0"
        # The helper stopped where it was told to, not at the end of the image.
        assert 8 * MiB <= reporter.written < 256 * MiB
        assert overwritten_markers(node, marks) == []

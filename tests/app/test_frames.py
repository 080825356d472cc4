"""The one message protocol of every child process (app.frames): JSON frames through real
pipes, typed errors, and what a broken peer gets."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import frames
from app.childproc import ChildDied, PipeReporter, run_child
from app.compose.sandbox import CannotRun
from app.errors import (
    Cancelled,
    DeviceError,
    InputError,
    LivesmithError,
    MissingToolError,
    Problem,
    StageError,
    ValidationError,
    VerificationError,
)
from app.frames import (
    ERROR_TYPES,
    MAX_FRAME_SIZE,
    FrameReader,
    Message,
    ProtocolError,
    error_from_json,
    error_to_json,
    frame,
)
from app.reporter import Level, RecordingReporter
from app.usb.engine import NotHybridImage
from app.usb.errors import (
    DeviceBusy,
    DeviceChanged,
    DeviceIOError,
    DeviceNotAllowed,
    DeviceNotFound,
    DevicePermissionDenied,
    DeviceReadOnly,
    DeviceTooSmall,
    DeviceUnplugged,
)


@pytest.fixture
def pipe() -> Iterator[tuple[FrameReader, int]]:
    read_end, write_end = os.pipe()
    try:
        yield FrameReader(read_end), write_end
    finally:
        os.close(read_end)
        os.close(write_end)


def through_a_pipe(message: Message) -> Message:
    """`message` written to a real pipe and read back as the parent reads it."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, frame(message))
        arrived = FrameReader(read_end).next()
    finally:
        os.close(read_end)
        os.close(write_end)
    assert arrived is not None
    return arrived


EVERY_KIND: list[Message] = [
    {"kind": "step", "name": "Make the initramfs"},
    {"kind": "progress", "done": 3, "total": 1 << 40},
    {"kind": "log", "level": int(Level.WARNING), "text": "ünïcode and\nnew lines"},
    {"kind": "ack"},
    {"kind": "cancel"},
    {"kind": "done", "result": {"iso": "/tmp/live.iso", "seconds": 1.25, "stages": [["a", 0.5]]}},
    {"kind": "failed", "error": error_to_json(DeviceIOError("bad", where="/dev/sdz", offset=7))},
    {"kind": "build", "profile": {"name": "x"}, "output": "/tmp/x.iso"},  # a job: the caller's
]


@pytest.mark.parametrize("message", EVERY_KIND, ids=lambda m: m["kind"])
def test_every_message_kind_crosses_a_pipe_unchanged(message: Message) -> None:
    assert through_a_pipe(message) == message


def test_the_frame_is_a_little_endian_length_and_utf8_json() -> None:
    assert (
        frame({"kind": "step", "name": "ü"})
        == b'\x1e\x00\x00\x00{"kind": "step", "name": "\xc3\xbc"}'
    )


# Every error class of the whitelist, with every field it has set.
EVERY_ERROR: list[LivesmithError] = [
    LivesmithError("went wrong", where="here", hint="do this"),
    InputError("bad label", where="iso.label", hint="use LIVE"),
    ValidationError([Problem("label", "too long", "use LIVE"), Problem("hostname", "bad")]),
    MissingToolError("gpgv", "gpgv"),
    StageError("broke", stage="master", hint="retry"),
    DeviceError("gone", where="/dev/sdz"),
    VerificationError("differs", where="/dev/sdz", offset=4096, hint="try another stick"),
    Cancelled("cancelled by the user; the stick was wiped", where="/dev/sdz"),
    DeviceNotFound("no such device", where="/dev/sdz"),
    DeviceUnplugged("unplugged", where="/dev/sdz"),
    DeviceChanged("another disk now", where="/dev/sdz", hint="choose it again"),
    DeviceReadOnly("read-only", where="/dev/sdz"),
    DeviceBusy("mounted", where="/dev/sdz1"),
    DeviceNotAllowed("a system disk", where="/dev/nvme0n1"),
    DevicePermissionDenied("no permission", where="/dev/sdz", hint="polkit said no"),
    DeviceTooSmall("too small", where="/dev/sdz", image_size=9, device_size=4),
    DeviceIOError("I/O error at byte 5", where="/dev/sdz", offset=5, hint="h"),
    # Fields left unset (None) are attributes all the same.
    StageError("broke"),
    VerificationError("differs"),
    MissingToolError("mytool", None),
    DeviceIOError("I/O error"),
]


def test_the_error_list_covers_the_whitelist() -> None:
    assert {type(error) for error in EVERY_ERROR} == set(ERROR_TYPES.values())


def sent_through_a_child_pipe(exc: BaseException) -> LivesmithError:
    """`exc` as a child's PipeReporter sends it and the parent rebuilds it, over a pipe."""
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as out:
        PipeReporter(out).fail(exc)
    message = FrameReader(read_end).next()
    os.close(read_end)
    assert message is not None and message["kind"] == "failed"
    return error_from_json(message["error"])


@pytest.mark.parametrize("error", EVERY_ERROR, ids=lambda e: type(e).__name__)
def test_every_error_type_arrives_with_its_type_and_fields(error: LivesmithError) -> None:
    again = sent_through_a_child_pipe(error)
    assert type(again) is type(error)
    assert again.__dict__ == error.__dict__
    assert str(again) == str(error) and again.args == error.args


def test_an_error_type_off_the_list_arrives_as_the_nearest_base_class_on_it() -> None:
    not_hybrid = sent_through_a_child_pipe(NotHybridImage("no MBR", where="/x.iso"))
    assert type(not_hybrid) is InputError and str(not_hybrid) == "/x.iso: no MBR"
    cannot = sent_through_a_child_pipe(CannotRun("no bubblewrap", stage="configure"))
    assert type(cannot) is StageError and cannot.stage == "configure"
    assert str(cannot) == "configure: no bubblewrap"


def test_an_exception_outside_livesmith_errors_arrives_as_the_callers_choice() -> None:
    data = error_to_json(ZeroDivisionError("division by zero"))
    assert type(error_from_json(data)) is LivesmithError
    again = error_from_json(data, foreign=lambda text: StageError(text, stage="build"))
    assert type(again) is StageError
    assert str(again) == "build: ZeroDivisionError: division by zero"


EVIL_MODULE = """
import os
from pathlib import Path
from app.errors import DeviceError
with Path(os.environ["LIVESMITH_TEST_MARKER"]).open("a") as marker:
    marker.write("imported\\n")
class EvilError(DeviceError):
    pass
"""


def test_an_error_type_off_the_list_is_never_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A peer names a class of an importable module, in every field that holds a name.
    (tmp_path / "evil_errors.py").write_text(EVIL_MODULE)
    marker = tmp_path / "marker"
    monkeypatch.setenv("LIVESMITH_TEST_MARKER", str(marker))
    monkeypatch.syspath_prepend(str(tmp_path))
    named = {
        "type": "evil_errors.EvilError",
        "family": ["evil_errors.EvilError", "evil_errors:EvilError", "EvilError", "DeviceError"],
        "message": "evil",
        "where": "/dev/sdz",
    }
    error = error_from_json(through_a_pipe({"kind": "failed", "error": named})["error"])
    assert type(error) is DeviceError and str(error) == "/dev/sdz: evil"
    assert "evil_errors" not in sys.modules and not marker.exists()
    __import__("evil_errors")  # the check above can fail: the module is importable
    assert marker.read_text() == "imported\n"
    del sys.modules["evil_errors"]


@pytest.mark.parametrize(
    ("error", "says"),
    [
        ({"family": "DeviceError", "message": "x"}, "'family' is not a list"),
        ({"family": ["DeviceIOError"], "message": "x", "offset": "5"}, "'offset' is not int"),
        ({"family": ["DeviceError"], "message": 5}, "'message' is not str"),
        ({"family": ["ValidationError"], "message": "x", "problems": [["a"]]}, "not a problem"),
        ({"family": [["DeviceError"]], "message": "x"}, "does not decode"),
    ],
)
def test_an_error_that_does_not_decode_is_a_protocol_error(
    error: dict[str, object], says: str
) -> None:
    with pytest.raises(ProtocolError, match=says):
        error_from_json(error)


def test_an_oversized_length_is_refused_before_its_bytes_arrive(
    pipe: tuple[FrameReader, int],
) -> None:
    reader, write_end = pipe
    # Only the length and one byte: a reader waiting for 4 GiB would block (or allocate).
    os.write(write_end, (0xFFFFFFFF).to_bytes(4, "little") + b"{")
    started = time.monotonic()
    with pytest.raises(ProtocolError, match=f"4294967295 bytes, more than the {MAX_FRAME_SIZE}"):
        reader.read()
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"PHASE write\n", "1396787280 bytes, more than"),  # the old line protocol
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"NaN", "not UTF-8 JSON"),
        (b'["step", "x"]', 'not a JSON object with a "kind"'),
        (b'{"name": "x"}', 'not a JSON object with a "kind"'),
        (b'{"kind": "step"}', "a 'step' message has no valid 'name'"),
        (b'{"kind": "progress", "done": true, "total": 1}', "no valid 'done'"),
        (b'{"kind": "failed", "error": "boom"}', "no valid 'error'"),
    ],
)
def test_a_garbage_frame_is_a_protocol_error(
    pipe: tuple[FrameReader, int], data: bytes, says: str
) -> None:
    reader, write_end = pipe
    if not data.startswith(b"PHASE"):
        data = len(data).to_bytes(4, "little") + data
    os.write(write_end, data + b"\0" * 8)
    with pytest.raises(ProtocolError, match=says):
        reader.read()


def test_messages_before_a_broken_frame_arrive_and_the_reader_stays_broken(
    pipe: tuple[FrameReader, int],
) -> None:
    reader, write_end = pipe
    step = {"kind": "step", "name": "one"}
    os.write(write_end, frame(step) + b"\x05\x00\x00\x00hello" + frame(step))
    assert reader.read() == [step]
    with pytest.raises(ProtocolError, match="not UTF-8 JSON"):
        reader.read()
    with pytest.raises(ProtocolError, match="not UTF-8 JSON"):
        reader.next()


def test_a_message_too_large_is_not_sent_and_the_child_fails_instead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(frames, "MAX_FRAME_SIZE", 1000)
    with pytest.raises(ProtocolError, match="'done' message of 2030 bytes is more than the 1000"):
        frame({"kind": "done", "result": "x" * 2000})
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as out:
        failure = PipeReporter(out).finish(lambda: "x" * 2000)
    reader = FrameReader(read_end)
    message = reader.next()
    assert reader.next() is None  # nothing else was sent: no half frame either
    os.close(read_end)
    assert isinstance(failure, ProtocolError)
    assert message is not None and message["kind"] == "failed"
    assert "2030 bytes is more than the 1000" in str(error_from_json(message["error"]))


def test_a_child_that_sends_garbage_is_a_child_that_died() -> None:
    started = time.monotonic()
    with pytest.raises(ChildDied, match="^test: the test job sent a broken message: a frame is"):
        run_child(
            "tests.support.tool_child",
            ["garbage"],
            RecordingReporter(),
            what="test job",
            stage="test",
            result=lambda result: result,
            job={"kind": "go"},
        )
    assert time.monotonic() - started < 30  # told to stop, it did; no clean-up timeout

"""The one message protocol between Livesmith and its child processes (build, inspection, and
the USB writer helper, which may run with more privilege than the app).

A frame is a 4-byte little-endian length, then that many bytes of UTF-8 JSON: one object with
a "kind". Plain JSON, never pickle: reading a message builds only dicts, lists, strings and
numbers, whatever the peer sends, and each value that crosses has its own to/from-JSON.

    child -> parent   {"kind": "step", "name": str}
                      {"kind": "progress", "done": int, "total": int}
                      {"kind": "log", "level": int (app.reporter.Level), "text": str}
                      {"kind": "done", "result": <the job's result, as JSON>}
                      {"kind": "failed", "error": <error_to_json>}
    parent -> child   the job (a kind of the caller's, e.g. "build"), {"kind": "ack"},
                      {"kind": "cancel"}

A frame longer than MAX_FRAME_SIZE, one that is not a JSON object with a string "kind", and a
known kind with missing or mistyped fields are a ProtocolError: the peer is broken.

Errors keep their type and fields across: the type is looked up by name among ERROR_TYPES (a
fixed list of classes, nothing is imported by name), and a type not on it arrives as the
nearest of its base classes that is.
"""

from __future__ import annotations

import json
import os
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

from app import errors
from app.errors import LivesmithError, Problem, ValidationError
from app.reporter import Level, Reporter
from app.usb import errors as usb_errors

MAX_FRAME_SIZE = 64 * 1024 * 1024
READ_SIZE = 1024 * 1024
_LENGTH = struct.Struct("<I")

Message = dict[str, Any]

# The fields each kind must have, with their types; other kinds (a job) are the caller's.
FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "step": {"name": str},
    "progress": {"done": int, "total": int},
    "log": {"level": int, "text": str},
    "ack": {},
    "cancel": {},
    "done": {"result": object},
    "failed": {"error": dict},
}


class ProtocolError(LivesmithError):
    """A peer sent something that is not a message of this protocol (or we were about to)."""


def frame(message: Message) -> bytes:
    """One message as it crosses the pipe: its length, then its JSON."""
    data = json.dumps(message, ensure_ascii=False, allow_nan=False).encode()
    if len(data) > MAX_FRAME_SIZE:
        raise ProtocolError(
            f"a {message.get('kind')!r} message of {len(data)} bytes is more than the "
            f"{MAX_FRAME_SIZE} a frame may hold"
        )
    return _LENGTH.pack(len(data)) + data


def parse_message(data: bytes | bytearray) -> Message:
    """The message in one frame's JSON bytes; ProtocolError if it is not a valid one."""
    try:
        message = json.loads(data.decode(), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"a frame is not UTF-8 JSON ({exc})") from None
    if not isinstance(message, dict) or not isinstance(message.get("kind"), str):
        raise ProtocolError('a frame is not a JSON object with a "kind"')
    for name, expected in FIELDS.get(message["kind"], {}).items():
        value = message.get(name)
        if (
            name not in message
            or not isinstance(value, expected)
            or (expected is int and isinstance(value, bool))
        ):
            raise ProtocolError(f"a {message['kind']!r} message has no valid {name!r}")
    return message


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class FrameReader:
    """Complete messages out of a pipe, as soon as their last byte has arrived.

    Reads with `os.read` into its own buffer: a buffered reader would pull several messages
    in at once after one `select`, and the later ones would wait, invisible to `select`,
    until the peer wrote again.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()
        self._pending: deque[Message] = deque()  # for next()
        self._broken: ProtocolError | None = None

    def read(self) -> list[Message] | None:
        """Every message complete after one read; [] if none is yet, None at the end.

        Call it when the pipe is readable (it blocks otherwise). A partial message at the
        end of the pipe is an end too: the writer died while writing it. A broken frame is
        a ProtocolError, once the messages before it are returned; the reader stays broken.
        """
        if self._broken is not None:
            raise self._broken
        chunk = os.read(self.fd, READ_SIZE)
        if not chunk:
            return None
        self._buffer += chunk
        messages = []
        start = 0
        try:
            while len(self._buffer) - start >= _LENGTH.size:
                (size,) = _LENGTH.unpack_from(self._buffer, start)
                if size > MAX_FRAME_SIZE:  # before waiting for (and holding) that much
                    raise ProtocolError(
                        f"a frame claims {size} bytes, more than the {MAX_FRAME_SIZE} allowed"
                    )
                end = start + _LENGTH.size + size
                if end > len(self._buffer):
                    break
                messages.append(parse_message(self._buffer[start + _LENGTH.size : end]))
                start = end
        except ProtocolError as exc:
            self._broken = exc
            self._buffer.clear()
            if not messages:
                raise
            return messages
        del self._buffer[:start]
        return messages

    def next(self) -> Message | None:
        """The next message, blocking until it is complete; None at the end."""
        while not self._pending:
            arrived = self.read()
            if arrived is None:
                return None
            self._pending.extend(arrived)
        return self._pending.popleft()


def relay(message: Message, reporter: Reporter) -> None:
    """Pass a step, progress or log message on to `reporter` (other kinds are the caller's)."""
    kind = message["kind"]
    if kind == "step":
        reporter.step(message["name"])
    elif kind == "progress":
        reporter.progress(message["done"], message["total"])
    elif kind == "log":
        try:
            level = Level(message["level"])
        except ValueError:  # a level this side does not know
            level = Level.INFO
        reporter.log(level, message["text"])


# --- errors --------------------------------------------------------------------------------

# The classes an error may arrive as; any other arrives as the nearest base class listed.
ERROR_TYPES: dict[str, type[LivesmithError]] = {
    cls.__name__: cls
    for module in (errors, usb_errors)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, LivesmithError)
}
# Fields some error classes carry besides message/where/hint, with their JSON types.
ERROR_FIELDS: dict[str, type] = {
    "stage": str,
    "offset": int,
    "image_size": int,
    "device_size": int,
    "tool": str,
    "package": str,
}


def error_to_json(exc: BaseException) -> dict[str, Any]:
    """The error's type, the names of its base classes, and its fields.

    An exception that is not a LivesmithError (a bug) has only its text, as "message"."""
    if not isinstance(exc, LivesmithError):
        return {"type": type(exc).__name__, "family": [], "message": f"{type(exc).__name__}: {exc}"}
    family = [cls.__name__ for cls in type(exc).__mro__ if issubclass(cls, LivesmithError)]
    data: dict[str, Any] = {
        "type": type(exc).__name__,
        "family": family,
        "message": str(exc.message),
        "where": None if exc.where is None else str(exc.where),
        "hint": None if exc.hint is None else str(exc.hint),
    }
    for name, expected in ERROR_FIELDS.items():
        if hasattr(exc, name):  # unset (None) too: the class has the attribute
            value = getattr(exc, name)
            data[name] = value if isinstance(value, expected) else None
    if isinstance(exc, ValidationError):
        data["problems"] = [[p.where, p.message, p.hint] for p in exc.problems]
    return data


def error_from_json(
    data: dict[str, Any], foreign: Callable[[str], LivesmithError] = LivesmithError
) -> LivesmithError:
    """The error `error_to_json` described: its own class if ERROR_TYPES has it, else the
    nearest base class there; `foreign(text)` for an exception outside LivesmithError."""
    try:
        family = data.get("family", [])
        if not isinstance(family, list):
            raise ValueError("its 'family' is not a list")
        cls = next((ERROR_TYPES[name] for name in family if name in ERROR_TYPES), None)
        message = _optional(data, "message", str) or ""
        if cls is None:
            return foreign(message)
        exc = cls.__new__(cls)
        LivesmithError.__init__(
            exc, message, where=_optional(data, "where", str), hint=_optional(data, "hint", str)
        )
        for name, expected in ERROR_FIELDS.items():
            if name in data:
                setattr(exc, name, _optional(data, name, expected))
        if isinstance(exc, ValidationError):
            exc.problems = [_problem(p) for p in data.get("problems", [])]
    except (TypeError, ValueError, AttributeError) as exc:
        raise ProtocolError(f"an error that does not decode ({exc})") from None
    return exc


def _optional(data: dict[str, Any], name: str, expected: type) -> Any:
    value = data.get(name)
    if value is not None and (not isinstance(value, expected) or isinstance(value, bool)):
        raise ValueError(f"its {name!r} is not {expected.__name__}")
    return value


def _problem(item: Any) -> Problem:
    if not (
        isinstance(item, list)
        and len(item) == 3
        and isinstance(item[0], str)
        and isinstance(item[1], str)
        and (item[2] is None or isinstance(item[2], str))
    ):
        raise ValueError(f"{item!r} is not a problem")
    return Problem(*item)

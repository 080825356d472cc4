"""Writing one image to several sticks at once: one read of the image, each stick on its own.

Every stick is written, synced and verified by `engine.write_image` in a thread of its own,
from its share of one read of the image (`app.usb.fanout`). A stick that fails (unplugged,
an I/O error, too small, read-only, a changed identity) ends with its own typed error and is
wiped as for one stick; the others go on. Nothing is reported as success for a stick that
was not written (and, unless asked otherwise, verified).

Per-stick events go to a `StickEvents` listener (the CLI prints them, the helper sends them
to its parent, the GUI shows a bar per stick); log lines go to the reporter, prefixed with
the stick. Cancelling through the reporter stops every stick.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.errors import Cancelled, LivesmithError
from app.frames import error_from_json, error_to_json
from app.reporter import Level, NullReporter, Reporter
from app.usb.bmap import Bmap
from app.usb.engine import Opener, WriteResult, open_target, write_image
from app.usb.fanout import FanOut
from app.usb.identity import BlockIdentity
from app.usb.source import ImageSource
from app.usb.target import Target


class StickEvents(Protocol):
    """What happens on each stick, by its index in the list of targets."""

    def stick_step(self, index: int, name: str) -> None: ...

    def stick_progress(self, index: int, done: int, total: int) -> None: ...

    def stick_done(self, index: int, outcome: StickOutcome) -> None: ...


class NoStickEvents:
    def stick_step(self, index: int, name: str) -> None:
        pass

    def stick_progress(self, index: int, done: int, total: int) -> None:
        pass

    def stick_done(self, index: int, outcome: StickOutcome) -> None:
        pass


@dataclass(frozen=True)
class StickOutcome:
    """How one stick ended: its result, or the error it failed with."""

    target: str
    result: WriteResult | None = None
    error: LivesmithError | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None and self.error is None

    def summary(self) -> str:
        if self.result is not None:
            return self.result.summary()
        assert self.error is not None
        hint = f" ({self.error.hint})" if self.error.hint else ""
        return f"FAILED: {self.error.message}{hint}"

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "result": self.result.to_json() if self.result is not None else None,
            "error": error_to_json(self.error) if self.error is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StickOutcome:
        result = data.get("result")
        error = data.get("error")
        return cls(
            target=str(data["target"]),
            result=WriteResult.from_json(result) if result is not None else None,
            error=error_from_json(error) if error is not None else None,
        )


@dataclass(frozen=True)
class MultiWriteResult:
    outcomes: tuple[StickOutcome, ...]
    seconds: float

    @property
    def failed(self) -> tuple[StickOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.ok)

    def summary(self) -> str:
        lines = [f"{o.target}: {o.summary()}" for o in self.outcomes]
        good = len(self.outcomes) - len(self.failed)
        lines.append(
            f"{good} of {len(self.outcomes)} sticks written"
            + (f"; FAILED: {', '.join(o.target for o in self.failed)}" if self.failed else "")
        )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"outcomes": [o.to_json() for o in self.outcomes], "seconds": self.seconds}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MultiWriteResult:
        return cls(
            tuple(StickOutcome.from_json(o) for o in data["outcomes"]), float(data["seconds"])
        )


class _StickReporter:
    """One stick's view of the reporter: steps and progress become that stick's events."""

    def __init__(self, index: int, where: str, reporter: Reporter, events: StickEvents) -> None:
        self.index = index
        self.where = where
        self._reporter = reporter
        self._events = events

    def step(self, name: str) -> None:
        self._events.stick_step(self.index, name)

    def progress(self, done: int, total: int) -> None:
        self._events.stick_progress(self.index, done, total)

    def log(self, level: Level, message: str) -> None:
        self._reporter.log(level, f"{self.where}: {message}")

    def cancelled(self) -> bool:
        return self._reporter.cancelled()


def write_many(
    source: ImageSource,
    targets: Sequence[Target],
    *,
    reporter: Reporter | None = None,
    events: StickEvents | None = None,
    verify: bool = True,
    force: bool = False,
    expects: Sequence[BlockIdentity | None] | None = None,
    opener: Opener = open_target,
    bmap: Bmap | None = None,
) -> MultiWriteResult:
    """Write `source` to every target at once; each outcome is the stick's own.

    `expects[i]` is the disk the user confirmed for `targets[i]` (see `write_image`).
    """
    reporter = reporter or NullReporter()
    events = events or NoStickEvents()
    expects = list(expects) if expects is not None else [None] * len(targets)
    if len(expects) != len(targets):
        raise ValueError("one expected identity per target")
    fan = FanOut(source, len(targets))
    outcomes: list[StickOutcome | None] = [None] * len(targets)

    def run(index: int) -> None:
        target = targets[index]
        where = str(target.path)
        try:
            result = write_image(
                source,
                target,
                reporter=_StickReporter(index, where, reporter, events),
                verify=verify,
                force=force,
                opener=opener,
                expect=expects[index],
                stream=lambda: fan.reader(index),
                bmap=bmap,
            )
            outcome = StickOutcome(where, result=result)
        except LivesmithError as exc:
            outcome = StickOutcome(where, error=exc)
        except Exception as exc:  # a bug: still this stick's failure, not the others'
            outcome = StickOutcome(
                where, error=LivesmithError(f"{type(exc).__name__}: {exc}", where=where)
            )
        finally:
            fan.leave(index)
        outcomes[index] = outcome
        if outcome.ok:
            reporter.log(Level.INFO, f"{where}: {outcome.summary()}")
        elif not isinstance(outcome.error, Cancelled):
            reporter.log(Level.ERROR, str(outcome.error))
        events.stick_done(index, outcome)

    started = time.monotonic()
    threads = [
        threading.Thread(target=run, args=(i,), name=f"livesmith-write-{i}", daemon=True)
        for i in range(len(targets))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = tuple(o for o in outcomes if o is not None)
    assert len(done) == len(targets)
    return MultiWriteResult(done, time.monotonic() - started)

"""The writer's state machine: one explicit state for a front end's "Write to USB" flow.

Qt-free, so the GUI page only follows it and a test can drive it without widgets. One
`WriterState` for the whole flow, and one `StickRun` per stick being written (several sticks
at once): each has its own phase, progress and end, and a stick that fails does not stop
the others. The whole flow ends when every stick has ended:

    CHOOSING -> CHECKING -> CONFIRMING -> [TESTING ->] WRITING -> VERIFYING -> DONE
                   |            |              |           |          |    -> FAILED
                   +------------+--------------+-> CHOOSING  (withdrawn, refused)
                                                           +----------+----> CANCELLED

A finished flow (DONE, FAILED, CANCELLED) goes back to CHOOSING. A move not in `MOVES`
raises `WriterStateError`: a front end that gets out of step is a bug, never a write.

Also here: what stops the Write button (`missing`), and the quick fake-capacity check run
before a write when the user asks for it (`tested_write_task`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.errors import Cancelled, LivesmithError
from app.reporter import Level, Reporter, check_cancelled
from app.usb.capacity import PHASE_TITLES as CHECK_TITLES
from app.usb.capacity import check_stick, refuse_if_fake
from app.usb.checksums import ChecksumResult
from app.usb.engine import PHASE_PERSISTENCE, PHASE_VERIFY, PHASE_WIPE, PHASE_WRITE, WriteResult
from app.usb.helper import write_many_in_helper
from app.usb.identity import check_path
from app.usb.multiwrite import StickEvents, StickOutcome
from app.usb.persistence import Persistence
from app.usb.preflight import (
    PHASE_UNMOUNT,
    ImageFacts,
    Preflight,
    unmount_partitions,
    write_task,
)
from app.usb.source import ImageSource
from app.usb.target import Target, TargetKind, human_size

PHASE_TEST = "test"  # the quick fake-capacity check before writing
TEST_PHASES = frozenset({PHASE_TEST, *CHECK_TITLES})


class WriterStateError(LivesmithError):
    """A move the writer's state machine does not allow (a front end out of step)."""


class WriterState(enum.Enum):
    CHOOSING = "choosing"  # the image and the sticks are being chosen
    CHECKING = "checking"  # the chosen targets are checked once more before asking
    CONFIRMING = "confirming"  # "Erase and write?" is asked
    TESTING = "testing"  # the quick fake-capacity check runs (when asked for)
    WRITING = "writing"
    VERIFYING = "verifying"  # every stick still running is verifying
    DONE = "done"  # every stick written (and verified, if asked)
    FAILED = "failed"  # at least one stick failed or went away
    CANCELLED = "cancelled"  # stopped by the user (nothing failed)

    @property
    def running(self) -> bool:
        return self in (WriterState.TESTING, WriterState.WRITING, WriterState.VERIFYING)

    @property
    def ended(self) -> bool:
        return self in (WriterState.DONE, WriterState.FAILED, WriterState.CANCELLED)


S = WriterState
MOVES: dict[WriterState, frozenset[WriterState]] = {
    S.CHOOSING: frozenset({S.CHECKING}),
    S.CHECKING: frozenset({S.CONFIRMING, S.CHOOSING}),
    S.CONFIRMING: frozenset({S.TESTING, S.WRITING, S.CHOOSING}),
    S.TESTING: frozenset({S.WRITING, S.VERIFYING, S.DONE, S.FAILED, S.CANCELLED}),
    S.WRITING: frozenset({S.TESTING, S.VERIFYING, S.DONE, S.FAILED, S.CANCELLED}),
    S.VERIFYING: frozenset({S.TESTING, S.WRITING, S.DONE, S.FAILED, S.CANCELLED}),
    S.DONE: frozenset({S.CHOOSING}),
    S.FAILED: frozenset({S.CHOOSING}),
    S.CANCELLED: frozenset({S.CHOOSING}),
}


class StickEnd(enum.Enum):
    """How one stick's run ended."""

    WRITTEN = "written"  # written (and verified, if asked): see `StickRun.result`
    CANCELLED = "cancelled"  # stopped by the user
    FAILED = "failed"  # an error: see `StickRun.error`
    UNPLUGGED = "unplugged"  # went away while written (reported at once)


@dataclass
class StickRun:
    """One stick being written: what it is, where it is, how far, how it ended."""

    preflight: Preflight
    words: str  # how the stick is named to the user
    phases: list[str] = field(default_factory=list)
    done: int = 0
    total: int = 0
    end: StickEnd | None = None
    result: WriteResult | None = None
    error: BaseException | None = None
    settled: bool = False  # its worker has stopped (an unplugged stick ends before that)
    stopping: bool = False  # a cancel was asked for

    @property
    def path(self) -> str:
        return str(self.preflight.target.path)

    @property
    def phase(self) -> str:
        return self.phases[-1] if self.phases else ""

    @property
    def running(self) -> bool:
        return self.end is None


@dataclass
class ImageCheck:
    """What is known of the chosen image: its facts and its checksum verdict."""

    path: Any = None  # pathlib.Path of the chosen image, or None
    facts: ImageFacts | None = None
    error: BaseException | None = None
    checksum: ChecksumResult | None = None
    checksum_error: BaseException | None = None


Listener = Callable[[WriterState, WriterState], object]


class WriterMachine:
    """The writer's one state, its sticks, and the moves between them.

    A front end calls the moves (`check`, `ask`, `withdraw`, `begin`, `phase`, `progress`,
    `finish`, `fail`, `unplugged`, `settle`, `reset`) and follows `state` through the
    listeners; it keeps no copies of its own.
    """

    def __init__(self) -> None:
        self.state = WriterState.CHOOSING
        self.image = ImageCheck()
        self.sticks: list[StickRun] = []
        self.asking: list[tuple[Preflight, Any]] = []  # what "Erase and write?" is about
        self.named: Target | None = None  # a device or file named instead of listed drives
        self.verify = True
        self.test_first = False
        self.persistence: Persistence | None = None  # a LIVESMITH-RW partition after the image
        self._listeners: list[Listener] = []

    # -- following ----------------------------------------------------------------------
    def listen(self, listener: Listener) -> None:
        """`listener(old, new)` runs after every change of state."""
        self._listeners.append(listener)

    def _move(self, new: WriterState) -> None:
        old = self.state
        if new is old:
            return
        if new not in MOVES[old]:
            raise WriterStateError(f"cannot go from {old.value} to {new.value}", where="writer")
        self.state = new
        for listener in list(self._listeners):
            listener(old, new)

    # -- before writing -----------------------------------------------------------------
    def set_image(self, path: Any) -> None:
        if self.busy:
            raise WriterStateError("cannot change the image while writing", where="writer")
        self.image = ImageCheck(path=path)

    def check(self) -> None:
        """The Write button was pressed: the targets are checked once more."""
        self._move(WriterState.CHECKING)

    def ask(self, about: Sequence[tuple[Preflight, Any]]) -> None:
        """The targets passed: the user is asked (each a preflight and its drive or None)."""
        self.asking = list(about)
        self._move(WriterState.CONFIRMING)

    def withdraw(self) -> None:
        """Not confirmed, refused, or the question withdrawn: back to choosing."""
        self.asking = []
        self._move(WriterState.CHOOSING)

    def begin(
        self,
        sticks: Sequence[tuple[Preflight, str]],
        *,
        verify: bool,
        test: bool,
        persistence: Persistence | None = None,
    ) -> None:
        """Confirmed: one run per stick (a preflight and the words naming it)."""
        if not sticks:
            raise WriterStateError("nothing to write to", where="writer")
        if persistence is not None and len(sticks) > 1:
            raise WriterStateError("persistence is added to one stick at a time", where="writer")
        self.asking = []
        self.sticks = [StickRun(pre, words) for pre, words in sticks]
        self.verify = verify
        self.test_first = test
        self.persistence = persistence
        self._move(WriterState.TESTING if test else WriterState.WRITING)

    # -- while writing ------------------------------------------------------------------
    def phase(self, index: int, phase: str) -> None:
        stick = self.sticks[index]
        if stick.end is not None:
            return
        stick.phases.append(phase)
        stick.done = stick.total = 0
        self._follow()

    def progress(self, index: int, done: int, total: int) -> None:
        stick = self.sticks[index]
        stick.done, stick.total = done, total

    def finish(self, index: int, result: WriteResult) -> None:
        stick = self.sticks[index]
        if stick.end is None:
            stick.end, stick.result = StickEnd.WRITTEN, result
        self._follow()

    def fail(self, index: int, exc: BaseException) -> None:
        stick = self.sticks[index]
        if stick.end is None:
            cancelled = isinstance(exc, Cancelled) and stick.stopping
            stick.end = StickEnd.CANCELLED if cancelled else StickEnd.FAILED
            stick.error = exc
        self._follow()

    def unplugged(self, index: int) -> bool:
        """The stick went away while written: it ends at once (its worker may still run).
        True if this is news."""
        stick = self.sticks[index]
        if stick.end is not None:
            return False
        stick.end = StickEnd.UNPLUGGED
        self._follow()
        return True

    def stop(self) -> list[int]:
        """The user asked to stop: the sticks still running (their indexes) are to cancel."""
        running = [i for i, s in enumerate(self.sticks) if s.end is None]
        for i in running:
            self.sticks[i].stopping = True
        return running

    def settle(self, index: int) -> None:
        """The stick's worker has stopped."""
        self.sticks[index].settled = True

    def stick_of(self, path: str) -> int | None:
        for i, stick in enumerate(self.sticks):
            if stick.path == path:
                return i
        return None

    def _follow(self) -> None:
        """The state that follows from the sticks' phases and ends."""
        if not self.state.running:
            return
        if all(s.end is not None for s in self.sticks):
            ends = {s.end for s in self.sticks}
            if ends & {StickEnd.FAILED, StickEnd.UNPLUGGED}:
                self._move(WriterState.FAILED)
            elif StickEnd.CANCELLED in ends:
                self._move(WriterState.CANCELLED)
            else:
                self._move(WriterState.DONE)
            return
        phases = {s.phase for s in self.sticks if s.end is None}
        if phases and phases <= TEST_PHASES:
            self._move(WriterState.TESTING)
        elif phases and phases <= {PHASE_VERIFY}:
            self._move(WriterState.VERIFYING)
        elif phases - TEST_PHASES - {""}:
            self._move(WriterState.WRITING)

    # -- after writing ------------------------------------------------------------------
    def reset(self) -> None:
        """Back to choosing after a result (the sticks are forgotten)."""
        if self.busy:
            raise WriterStateError("the write has not ended yet", where="writer")
        self.sticks = []
        self._move(WriterState.CHOOSING)

    # -- questions ----------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A target is checked or a write runs (or has not settled since it ended)."""
        if self.state in (WriterState.CHECKING,) or self.state.running:
            return True
        return any(not s.settled for s in self.sticks)

    @property
    def verifying(self) -> bool:
        """Every stick still running has been written and is being verified (or wiped)."""
        live = [s for s in self.sticks if s.end is None]
        return bool(live) and all(
            s.phase not in (PHASE_WRITE, PHASE_UNMOUNT, PHASE_PERSISTENCE, "", *TEST_PHASES)
            for s in live
        )

    def steps(self) -> list[str]:
        """The numbered steps of a write ("Step 2 of 3")."""
        steps = [PHASE_WRITE]
        if self.persistence is not None:
            steps.append(PHASE_PERSISTENCE)
        if self.verify:
            steps.append(PHASE_VERIFY)
        return steps

    def missing(self, *, force: bool, waiting: str | None, targets: int) -> str | None:
        """What stops the Write button, in words; None when it may be pressed.

        `waiting`: what the front end still waits for (a named target being checked)."""
        if self.state.running or (self.state.ended and self.busy):
            return "Writing…"
        if self.state is WriterState.CHECKING:
            return "Checking the drive…"
        if self.state is WriterState.CONFIRMING:
            return "Waiting for your answer…"
        blocker = image_missing(self.image, force=force) or waiting
        if blocker is None and not targets:
            return "Choose a drive, or name a device or file."
        return blocker


def image_missing(image: ImageCheck, *, force: bool) -> str | None:
    """What is wrong or not yet known about the image, or None when it may be written."""
    if image.path is None:
        return "Choose an image."
    if image.error is not None:
        return "Choose a usable image."
    if image.facts is None:
        return "Reading the image…"
    if image.checksum is None and image.checksum_error is None:
        return "Checking the image's checksum…"
    if image.checksum is not None and image.checksum.failed:
        return "The checksum check failed: do not write this image."
    if image.facts.layout_warnings and not force:
        return (
            "This image will not boot from a USB stick: tick \u201cWrite it anyway\u201d "
            "to write it all the same."
        )
    return None


# --- the fake-capacity check before writing ---------------------------------------------------


def tested_write_task(
    source: ImageSource,
    preflight: Preflight,
    *,
    verify: bool,
    force: bool,
    test: bool,
    persistence: Persistence | None = None,
) -> Callable[[Reporter], WriteResult]:
    """`write_task`, after the quick fake-capacity check of a block device when `test`.

    A fake stick the image does not fit is refused before anything is written; one it fits
    is written, with a warning naming its real size in the result."""
    write = write_task(source, preflight, verify=verify, force=force, persistence=persistence)
    if not test or preflight.target.kind is not TargetKind.BLOCK:
        return write

    def run(reporter: Reporter) -> WriteResult:
        reporter.step(PHASE_TEST)
        result = check_stick(preflight.target, reporter=reporter)
        refuse_if_fake(source, result)
        written = write(reporter)
        if result.genuine:
            return written
        note = (
            f"{result.summary()}; the image fits in the {human_size(result.usable)} it really "
            "holds, but nothing beyond it can be used"
        )
        return dataclasses.replace(written, warnings=(*written.warnings, note))

    return run


class _OneStick:
    """A reporter for one stick's work before the write (its test): steps and progress
    become that stick's events; the run's reporter decides cancelling and takes the log."""

    def __init__(self, index: int, reporter: Reporter, events: StickEvents) -> None:
        self.index, self._reporter, self._events = index, reporter, events

    def step(self, name: str) -> None:
        self._events.stick_step(self.index, name)

    def progress(self, done: int, total: int) -> None:
        self._events.stick_progress(self.index, done, total)

    def log(self, level: Level, message: str) -> None:
        self._reporter.log(level, message)

    def cancelled(self) -> bool:
        return self._reporter.cancelled()


class _Renumbered:
    """Stick events of the sticks still written, told with their indexes in the whole run."""

    def __init__(self, events: StickEvents, indexes: list[int]) -> None:
        self._events, self._indexes = events, indexes

    def stick_step(self, index: int, name: str) -> None:
        self._events.stick_step(self._indexes[index], name)

    def stick_progress(self, index: int, done: int, total: int) -> None:
        self._events.stick_progress(self._indexes[index], done, total)

    def stick_done(self, index: int, outcome: StickOutcome) -> None:
        self._events.stick_done(self._indexes[index], outcome)


def many_write_task(
    source: ImageSource,
    preflights: Sequence[Preflight],
    *,
    verify: bool,
    force: bool,
    test: bool,
    events: StickEvents,
) -> Callable[[Reporter], list[StickOutcome]]:
    """Several sticks at once: each stick's partitions unmounted and (when `test`) its real
    capacity tested, then one helper writes every stick left from one read of the image
    (`app.usb.multiwrite`). A stick that fails any step ends with its own error (through
    `events.stick_done`) and the others go on. Returns every stick's outcome, in order."""

    def run(reporter: Reporter) -> list[StickOutcome]:
        outcomes: dict[int, StickOutcome] = {}
        for index, pre in enumerate(preflights):
            one = _OneStick(index, reporter, events)
            try:
                if pre.mounted:
                    if pre.identity is not None:
                        check_path(pre.target.path, pre.identity)
                    one.step(PHASE_UNMOUNT)
                    unmount_partitions(pre)
                if test and pre.target.kind is TargetKind.BLOCK:
                    one.step(PHASE_TEST)
                    refuse_if_fake(source, check_stick(pre.target, reporter=one))
                check_cancelled(reporter)
            except Cancelled:
                raise
            except LivesmithError as exc:  # this stick only: the others are still written
                outcomes[index] = StickOutcome(str(pre.target.path), error=exc)
                events.stick_done(index, outcomes[index])
        left = [i for i in range(len(preflights)) if i not in outcomes]
        if left:
            result = write_many_in_helper(
                source.path,
                [preflights[i].target.path for i in left],
                reporter=reporter,
                events=_Renumbered(events, left),
                verify=verify,
                force=force,
                expects=[preflights[i].identity for i in left],
            )
            outcomes.update(zip(left, result.outcomes, strict=True))
        return [outcomes[i] for i in range(len(preflights))]

    return run


__all__ = [
    "MOVES",
    "PHASE_TEST",
    "PHASE_WIPE",
    "ImageCheck",
    "StickEnd",
    "StickRun",
    "WriterMachine",
    "WriterState",
    "WriterStateError",
    "image_missing",
    "many_write_task",
    "refuse_if_fake",
    "tested_write_task",
]

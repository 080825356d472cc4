"""The writer's state machine (app/usb/writer_state.py), without Qt: every move it allows,
the ones it refuses, how several sticks end the run, and what stops the Write button."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.errors import Cancelled
from app.usb.capacity import CapacityResult, CheckMode, Failure
from app.usb.engine import WriteResult
from app.usb.errors import DeviceIOError, DeviceTooSmall
from app.usb.preflight import ImageFacts, Preflight
from app.usb.source import open_image
from app.usb.target import Target, TargetKind
from app.usb.writer_state import (
    MOVES,
    ImageCheck,
    StickEnd,
    WriterMachine,
    WriterState,
    WriterStateError,
    image_missing,
    refuse_if_fake,
)

S = WriterState


def preflight(name: str) -> Preflight:
    target = Target(Path(f"/dev/{name}"), TargetKind.BLOCK, 1 << 30, 512, False, name, (8, 16))
    return Preflight(target, ())


def result(name: str, verified: bool = True) -> WriteResult:
    return WriteResult("live.iso", f"/dev/{name}", 1000, verified, "00", 1.0)


class Recorder:
    def __init__(self, machine: WriterMachine) -> None:
        self.moves: list[tuple[S, S]] = []
        machine.listen(lambda old, new: self.moves.append((old, new)))

    @property
    def states(self) -> list[str]:
        return [new.value for _old, new in self.moves]


def running(names: list[str], *, test: bool = False) -> tuple[WriterMachine, Recorder]:
    machine = WriterMachine()
    seen = Recorder(machine)
    machine.check()
    machine.ask([(preflight(n), None) for n in names])
    machine.begin([(preflight(n), n) for n in names], verify=True, test=test)
    return machine, seen


def test_asked_and_not_confirmed_goes_back_to_choosing() -> None:
    machine = WriterMachine()
    seen = Recorder(machine)
    machine.check()
    machine.ask([(preflight("sdb"), None)])
    assert machine.asking and machine.busy is False
    machine.withdraw()
    assert seen.states == ["checking", "confirming", "choosing"] and not machine.asking
    machine.check()
    machine.withdraw()  # refused while checked
    assert seen.states[-2:] == ["checking", "choosing"]


def test_one_stick_written_and_verified() -> None:
    machine, seen = running(["sdb"])
    assert machine.busy
    machine.phase(0, "unmount")
    machine.phase(0, "write")
    machine.progress(0, 10, 100)
    assert machine.sticks[0].done == 10 and not machine.verifying
    machine.phase(0, "verify")
    assert machine.state is S.VERIFYING and machine.verifying
    machine.finish(0, result("sdb"))
    assert seen.states == ["checking", "confirming", "writing", "verifying", "done"]
    assert machine.busy, "done, but the worker has not stopped yet"
    with pytest.raises(WriterStateError):
        machine.reset()
    machine.settle(0)
    assert not machine.busy
    machine.reset()
    assert machine.state is S.CHOOSING and machine.sticks == []


def test_test_first_then_write() -> None:
    machine, seen = running(["sdb"], test=True)
    assert machine.state is S.TESTING
    machine.phase(0, "test")
    machine.phase(0, "check")
    assert machine.state is S.TESTING
    machine.phase(0, "write")
    assert machine.state is S.WRITING
    machine.fail(0, DeviceTooSmall("too small", where="/dev/sdb"))
    assert seen.states[-3:] == ["testing", "writing", "failed"]


def test_a_cancel_during_verify_ends_cancelled_and_an_unasked_cancel_is_a_failure() -> None:
    machine, seen = running(["sdb"])
    machine.phase(0, "write")
    machine.phase(0, "verify")
    assert machine.stop() == [0] and machine.sticks[0].stopping
    machine.fail(0, Cancelled("written, not verified"))
    assert machine.state is S.CANCELLED and machine.sticks[0].end is StickEnd.CANCELLED
    assert seen.states[-2:] == ["verifying", "cancelled"]
    other, _ = running(["sdc"])
    other.phase(0, "write")
    other.fail(0, Cancelled("stopped"))  # nobody asked: not the user's cancel
    assert other.state is S.FAILED and other.sticks[0].end is StickEnd.FAILED


def test_one_of_three_sticks_failing_does_not_end_the_others() -> None:
    machine, seen = running(["sdb", "sdc", "sdd"])
    for i in range(3):
        machine.phase(i, "write")
    machine.fail(1, DeviceIOError("I/O error", where="/dev/sdc"))
    assert machine.state is S.WRITING and machine.sticks[1].end is StickEnd.FAILED
    machine.phase(0, "verify")
    assert machine.state is S.WRITING, "sdd still writes"
    machine.phase(2, "verify")
    assert machine.state is S.VERIFYING  # every stick still running verifies
    machine.phase(1, "wipe")  # a late phase of an ended stick changes nothing
    assert machine.sticks[1].phases == ["write"]
    machine.finish(0, result("sdb"))
    assert machine.state is S.VERIFYING
    machine.finish(2, result("sdd"))
    assert machine.state is S.FAILED
    assert [s.end for s in machine.sticks] == [StickEnd.WRITTEN, StickEnd.FAILED, StickEnd.WRITTEN]
    assert seen.states[-2:] == ["verifying", "failed"]
    assert machine.stick_of("/dev/sdc") == 1 and machine.stick_of("/dev/sdx") is None


def test_an_unplugged_stick_ends_at_once_and_its_aftermath_is_ignored() -> None:
    machine, _ = running(["sdb"])
    machine.phase(0, "write")
    assert machine.unplugged(0) and not machine.unplugged(0)
    assert machine.state is S.FAILED and machine.busy  # the helper has not stopped yet
    machine.fail(0, DeviceIOError("gone", where="/dev/sdb"))
    assert machine.sticks[0].end is StickEnd.UNPLUGGED
    machine.settle(0)
    assert not machine.busy


@pytest.mark.parametrize(("old", "new"), [(o, n) for o in S for n in S if n not in MOVES[o]])
def test_every_move_not_listed_is_refused(old: S, new: S) -> None:
    machine = WriterMachine()
    machine.state = old
    if new is old:
        machine._move(new)  # staying is no move
        return
    with pytest.raises(WriterStateError, match=f"from {old.value} to {new.value}"):
        machine._move(new)
    assert machine.state is old


def test_begin_needs_a_stick_and_a_confirmation() -> None:
    machine = WriterMachine()
    with pytest.raises(WriterStateError):
        machine.begin([(preflight("sdb"), "sdb")], verify=True, test=False)
    with pytest.raises(WriterStateError):
        machine.begin([], verify=True, test=False)
    assert machine.state is S.CHOOSING


def test_what_stops_the_write_button(tmp_path: Path) -> None:
    image = tmp_path / "live.iso"
    image.write_bytes(b"\0" * 4096)
    source = open_image(image)
    check = ImageCheck()
    assert image_missing(check, force=False) == "Choose an image."
    check.path = image
    assert image_missing(check, force=False) == "Reading the image…"
    check.facts = ImageFacts(source, ("no partition table",))
    assert image_missing(check, force=False) == "Checking the image's checksum…"
    check.checksum_error = OSError("unreadable")
    assert "Write it anyway" in str(image_missing(check, force=False))
    assert image_missing(check, force=True) is None
    machine = WriterMachine()
    machine.image = check
    kw: dict[str, Any] = {"force": True, "waiting": None}
    assert machine.missing(targets=0, **kw) == "Choose a drive, or name a device or file."
    assert machine.missing(targets=2, **kw) is None
    assert machine.missing(targets=1, force=True, waiting="Testing…") == "Testing…"
    machine.check()
    assert machine.missing(targets=1, **kw) == "Checking the drive…"
    machine.ask([(preflight("sdb"), None)])
    assert machine.missing(targets=1, **kw) == "Waiting for your answer…"
    machine.begin([(preflight("sdb"), "sdb")], verify=False, test=False)
    assert machine.missing(targets=1, **kw) == "Writing…"
    assert machine.steps() == ["write"]
    with pytest.raises(WriterStateError):
        machine.set_image(None)


def test_a_fake_stick_too_small_for_the_image_is_refused_with_its_real_size(
    tmp_path: Path,
) -> None:
    image = tmp_path / "live.iso"
    with open(image, "wb") as fh:
        fh.truncate(64 << 20)
    source = open_image(image)
    fake = CapacityResult("/dev/sdb", CheckMode.QUICK, 8 << 30, 32 << 20, Failure.WRAPS, 130, 1)
    with pytest.raises(DeviceTooSmall) as err:
        refuse_if_fake(source, fake)
    assert "really holds (33.6 MB, 33554432 bytes" in str(err.value)
    assert err.value.device_size == 32 << 20
    big = CapacityResult("/dev/sdb", CheckMode.QUICK, 8 << 30, 1 << 30, Failure.WRAPS, 130, 1)
    refuse_if_fake(source, big)  # it fits in what the stick really holds
    genuine = CapacityResult("/dev/sdb", CheckMode.QUICK, 8 << 30, 8 << 30, None, 130, 1)
    refuse_if_fake(source, genuine)


def test_persistence_is_a_step_and_one_stick_at_a_time() -> None:
    from app.usb.persistence import Persistence

    machine = WriterMachine()
    machine.check()
    machine.ask([(preflight("sdb"), None), (preflight("sdc"), None)])
    with pytest.raises(WriterStateError, match="one stick at a time"):
        machine.begin(
            [(preflight("sdb"), "sdb"), (preflight("sdc"), "sdc")],
            verify=True,
            test=False,
            persistence=Persistence(None),
        )
    machine.begin(
        [(preflight("sdb"), "sdb")], verify=True, test=False, persistence=Persistence(None)
    )
    assert machine.steps() == ["write", "persistence", "verify"]
    machine.phase(0, "write")
    machine.phase(0, "persistence")
    assert machine.state is S.WRITING and not machine.verifying  # a stop still wipes

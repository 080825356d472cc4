"""What the writer page says: every verdict and result in exact words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.errors import Cancelled, InputError, VerificationError
from app.usb.checksums import ChecksumResult, ChecksumState, SignatureResult, SignatureState
from app.usb.drives import Drive
from app.usb.engine import WriteResult
from app.usb.errors import (
    DeviceBusy,
    DeviceChanged,
    DeviceIOError,
    DevicePermissionDenied,
    DeviceReadOnly,
    DeviceTooSmall,
    DeviceUnplugged,
)
from app.usb.source import Compression, ImageSource
from app.usb.target import Target, TargetKind
from ui.writer_texts import (
    OutcomeKind,
    RateMeter,
    Tone,
    checksum_lines,
    confirmation,
    format_duration,
    image_facts,
    outcome_of_error,
    outcome_of_result,
    progress_texts,
    target_words,
)

GB = 1000**3
IMAGE = Path("/isos/live.iso")
SUMS = Path("/isos/SHA256SUMS")


def source(
    size: int | None = 16_777_728,
    compression: Compression = Compression.NONE,
    file_size: int = 16_777_728,
) -> ImageSource:
    return ImageSource(IMAGE, compression, file_size, size, size or 1000)


def stick(size: int = 16 * GB) -> tuple[Target, Drive]:
    target = Target(
        Path("/dev/sdb"), TargetKind.BLOCK, size, 512, False, "SanDisk Ultra 4C53 16.0 GB", (8, 16)
    )
    drive = Drive(
        "/dev/sdb", "/sys/block/sdb", (8, 16), "SanDisk", "Ultra", "4C53", size, "usb", True, False
    )
    return target, drive


def test_a_missing_checksum_is_never_a_pass() -> None:
    for state in (ChecksumState.NO_FILE, ChecksumState.NOT_LISTED):
        result = ChecksumResult(state, IMAGE, checksum_file=SUMS)
        lines = checksum_lines(result)
        assert [line.tone for line in lines] == [Tone.WARN]
        assert "NOT checked" in lines[0].text and "good" not in lines[0].text
    assert (
        "No checksum file found"
        in checksum_lines(ChecksumResult(ChecksumState.NO_FILE, IMAGE))[0].text
    )


@pytest.mark.parametrize(
    ("state", "tone", "words"),
    [
        (SignatureState.GOOD, Tone.GOOD, "good, by Alice"),
        (SignatureState.UNKNOWN_KEY, Tone.WARN, "unknown key ABCD"),
        (SignatureState.BAD, Tone.BAD, "BAD"),
        (SignatureState.ERROR, Tone.WARN, "could not be checked (broken)"),
        (SignatureState.NONE, Tone.WARN, "not signed"),
    ],
)
def test_signature_verdicts(state: SignatureState, tone: Tone, words: str) -> None:
    sig = SignatureResult(state, SUMS.with_name("SHA256SUMS.gpg"), "ABCD", "Alice", "broken")
    result = ChecksumResult(
        ChecksumState.MATCH,
        IMAGE,
        checksum_file=SUMS,
        algorithm="sha256",
        expected="aa",
        actual="aa",
        signature=sig,
    )
    first, second = checksum_lines(result)
    assert (
        first.tone is Tone.GOOD and first.text == "SHA256SUMS: good (SHA-256 of live.iso matches)"
    )
    assert second.tone is tone and words in second.text


def test_a_mismatch_names_both_hashes() -> None:
    result = ChecksumResult(
        ChecksumState.MISMATCH,
        IMAGE,
        checksum_file=SUMS,
        algorithm="sha512",
        expected="aa",
        actual="bb",
    )
    line = checksum_lines(result)[0]
    assert line.tone is Tone.BAD
    assert (
        "MISMATCH" in line.text
        and "SHA-512" in line.text
        and "aa" in line.text
        and "bb" in line.text
    )
    assert "&lt;" not in line.html() and "color:#b3261e" in line.html()


def test_image_facts() -> None:
    plain = image_facts(source(), [])
    assert plain[0].text == "live.iso: 16.8 MB (16,777,728 bytes)"
    assert plain[1].tone is Tone.GOOD and "boots from a USB stick" in plain[1].text
    packed = image_facts(source(3 * GB, Compression.XZ, GB), ["no partition table"])
    assert "xz-compressed, 1.0 GB file, 3.0 GB (3,000,000,000 bytes) when written" in packed[0].text
    assert packed[1].tone is Tone.WARN and len(packed) == 2
    unknown = image_facts(source(None, Compression.GZIP, GB), [])
    assert "not recorded (at least 1.0 kB)" in unknown[0].text


def test_the_confirmation_names_the_drive_and_warns_about_big_ones() -> None:
    target, drive = stick()
    words = confirmation(source(), target, drive, [("/dev/sdb1", "/media/u/STICK")], verify=True)
    assert words.text == "Everything on SanDisk Ultra (16.0 GB, /dev/sdb) will be erased."
    assert "live.iso (16.8 MB) will be written" in words.informative
    assert "unmounted first: /dev/sdb1 on /media/u/STICK" in words.informative
    assert "larger than" not in words.informative and words.button == "Erase and write"
    big_target, big_drive = stick(128 * GB)
    big = confirmation(source(), big_target, big_drive, [], verify=False)
    assert "larger than 64.0 GB (128.0 GB)" in big.informative
    assert "will not be verified" in big.informative
    # Named explicitly (no list entry): udev's description and the node.
    assert target_words(target) == "/dev/sdb (SanDisk Ultra 4C53 16.0 GB)"
    new_file = Target(Path("/vm/disk.raw"), TargetKind.FILE, 0, 512, False, "file", None)
    assert (
        confirmation(source(), new_file, None, [], verify=True).text
        == "A new image file /vm/disk.raw will be created."
    )


def test_progress_speed_and_time_left() -> None:
    meter = RateMeter(window=3.0)
    meter.reset(now=100.0)
    assert meter.rate() is None
    for second in range(1, 11):
        meter.add(second * 20_000_000, now=100.0 + second)
    assert meter.rate() == pytest.approx(20_000_000)
    amount, speed = progress_texts("write", 200_000_000, 1_400_000_000, meter.rate())
    assert amount == "200.0 MB of 1.4 GB"
    assert speed == "20.0 MB/s, about 60 s left".replace("60 s", "1:00")
    assert progress_texts("write", 5, 10, None, compressed_bytes=True) == (
        "5 B of 10 B of compressed data read",
        "measuring speed…",
    )
    assert format_duration(4.26) == "4.3 s" and format_duration(3725) == "1:02:05"


def test_results_say_exactly_what_happened() -> None:
    result = WriteResult("/isos/live.iso", "/dev/sdb", 123_000_000, True, "ab" * 16, 3.0, 1.5)
    verified = outcome_of_result(result)
    assert (
        verified.kind is OutcomeKind.VERIFIED and verified.title == "Written and verified: 123.0 MB"
    )
    assert "XXH3-128 of the image, hashed while writing: " + "ab" * 16 in verified.details
    unverified = outcome_of_result(WriteResult("/i", "/dev/sdb", 5, False, "ab", 1.0))
    assert unverified.kind is OutcomeKind.NOT_VERIFIED
    assert unverified.title == "Written, not verified: 5 B"

    wiped = outcome_of_error(
        Cancelled(
            "cancelled; the stick was wiped so it does not look half-bootable", where="/dev/sdb"
        ),
        ["write", "wipe"],
    )
    assert wiped.kind is OutcomeKind.CANCELLED
    assert wiped.title == "Cancelled; the stick was wiped so it does not look half-bootable"
    early = outcome_of_error(Cancelled(), ["unmount"])
    assert early.title == "Cancelled before anything was written"
    late = outcome_of_error(
        Cancelled("verification cancelled: the image was written but NOT verified"),
        ["write", "verify"],
    )
    assert late.kind is OutcomeKind.NOT_VERIFIED
    bad = outcome_of_error(VerificationError("byte 4096 differs", offset=4096), ["verify"])
    assert bad.kind is OutcomeKind.VERIFICATION_FAILED
    assert bad.title == "Verification failed at byte 4096"
    assert outcome_of_error(DeviceUnplugged("gone")).title == "The stick was unplugged"
    assert outcome_of_error(DeviceIOError("x", offset=7)).title == "Input/output error at byte 7"
    assert "read-only" in outcome_of_error(DeviceReadOnly("ro")).title
    assert "does not fit" in outcome_of_error(DeviceTooSmall("small")).title
    assert "in use" in outcome_of_error(DeviceBusy("busy")).title
    other = outcome_of_error(InputError("the xz data is damaged", where="/isos/x.xz"))
    assert other.kind is OutcomeKind.FAILED and other.title == "Writing failed"
    assert other.details == "/isos/x.xz: the xz data is damaged."


@pytest.mark.parametrize(
    "exc",
    [
        DeviceReadOnly("is read-only (refused at byte 8388608)", where="/dev/sdb"),
        DeviceTooSmall(
            "the image is larger than the device (33.6 MB, 33554432 bytes): it goes on "
            "past the device's end",
            where="/dev/sdb",
        ),
        DeviceBusy("is in use by another program", where="/dev/sdb"),
        DevicePermissionDenied("permission denied", where="/dev/sdb"),
    ],
)
def test_nothing_was_written_only_before_the_write_began(exc: Exception) -> None:
    # The same errors come from the checks before writing and from the write itself.
    before = outcome_of_error(exc, ["unmount"])
    assert before.kind is OutcomeKind.FAILED
    assert before.title.endswith("; nothing was written")
    for phases in (["write"], ["unmount", "write", "wipe"], ["wipe"]):
        during = outcome_of_error(exc, phases)
        assert during.kind is OutcomeKind.FAILED
        assert "nothing was written" not in during.title.lower()
        assert "nothing was written" not in during.details.lower()
        assert during.title.endswith(
            "after writing had begun: the drive does not hold the image"
        ), during.title


def test_a_swapped_drive_is_named_as_such() -> None:
    exc = DeviceChanged(
        "the drive you chose is gone; /dev/sdb is now a different drive "
        "(disk sequence number 14, not 12); nothing was written",
        where="/dev/sdb",
    )
    gone = outcome_of_error(exc, ["unmount"])
    assert gone.kind is OutcomeKind.FAILED
    assert gone.title == "The drive you chose is gone; nothing was written"
    assert "is now a different drive" in gone.details
    later = outcome_of_error(exc, ["write", "verify"])
    assert later.title == "The drive you chose went away during the write"


def _stick(name: str, *, result: WriteResult | None = None, error: Exception | None = None) -> Any:
    from app.usb.preflight import Preflight
    from app.usb.writer_state import StickEnd, StickRun

    target = Target(Path(f"/dev/{name}"), TargetKind.BLOCK, 1 << 30, 512, False, name, (8, 16))
    stick = StickRun(Preflight(target, ()), f"Stick {name}", phases=["write"])
    stick.result, stick.error = result, error
    stick.end = StickEnd.WRITTEN if result is not None else StickEnd.FAILED
    return stick


def test_several_sticks_are_each_named_in_the_result() -> None:
    from ui.writer_texts import OutcomeKind, sticks_outcome

    good = WriteResult("live.iso", "/dev/sdb", 1000, True, "ab", 1.0, 0.5)
    loose = WriteResult("live.iso", "/dev/sdd", 1000, False, "ab", 1.0)
    failed = DeviceIOError("refused data", where="/dev/sdc", offset=4096)
    outcome = sticks_outcome([_stick("sdb", result=good), _stick("sdc", error=failed)])
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.title == "1 of 2 sticks did not succeed: Stick sdc"
    parts = outcome.details.split("\n\n")
    assert parts[0].startswith("Stick sdb: \u2714 Written and verified")
    assert parts[1].startswith("Stick sdc: \u2718 Input/output error at byte 4096")
    both = sticks_outcome([_stick("sdb", result=good), _stick("sdd", result=good)])
    assert both.kind is OutcomeKind.VERIFIED
    assert both.title == "Written and verified: 1.0 kB \u2014 on all 2 sticks"
    mixed = sticks_outcome([_stick("sdb", result=good), _stick("sdd", result=loose)])
    assert mixed.kind is OutcomeKind.NOT_VERIFIED
    assert mixed.title == "Written to all 2 sticks, not all of them verified"
    one = sticks_outcome([_stick("sdb", result=good)])
    assert one.title == "Written and verified: 1.0 kB"  # one stick: as before

"""What the writer page says, in words: image facts, checksum verdicts, the confirmation,
progress figures and the final result. Plain functions, no widgets, so each is easy to test.

Rules: a missing checksum is never shown as a pass; a result says exactly what happened to
the stick (written and verified, written but not verified, wiped after a cancel, unplugged,
failed at byte N).
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.errors import Cancelled, LivesmithError, VerificationError
from app.usb.capacity import PHASE_TITLES as CHECK_TITLES
from app.usb.capacity import CapacityResult
from app.usb.checksums import ChecksumResult, ChecksumState, SignatureState
from app.usb.drives import LARGE_DRIVE, Drive
from app.usb.engine import PHASE_TITLES, PHASE_VERIFY, PHASE_WIPE, PHASE_WRITE, WriteResult
from app.usb.errors import (
    DeviceBusy,
    DeviceChanged,
    DeviceIOError,
    DeviceNotFound,
    DevicePermissionDenied,
    DeviceReadOnly,
    DeviceTooSmall,
    DeviceUnplugged,
)
from app.usb.preflight import PHASE_UNMOUNT, Preflight
from app.usb.source import ImageSource
from app.usb.target import Target, TargetKind, human_size
from app.usb.writer_state import PHASE_TEST, StickEnd, StickRun

TITLES = {
    **PHASE_TITLES,
    **CHECK_TITLES,
    PHASE_UNMOUNT: "Unmounting the drive's partitions",
    PHASE_TEST: "Testing the stick's real capacity",
}


class Tone(enum.Enum):
    GOOD = "good"
    NOTE = "note"  # neutral information
    WARN = "warn"  # not proven wrong, but not proven right either
    BAD = "bad"  # proven wrong: do not write

    @property
    def mark(self) -> str:
        return {"good": "\u2714", "note": "\u2022", "warn": "\u26a0", "bad": "\u2718"}[self.value]

    @property
    def color(self) -> str:
        return {"good": "#1b7f2a", "note": "", "warn": "#a15c00", "bad": "#b3261e"}[self.value]


@dataclass(frozen=True)
class Line:
    tone: Tone
    text: str

    def html(self) -> str:
        text = _escape(f"{self.tone.mark} {self.text}")
        if not self.tone.color:
            return text
        return f'<span style="color:{self.tone.color}">{text}</span>'


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def lines_html(lines: list[Line]) -> str:
    return "<br>".join(line.html() for line in lines)


# --- the image -------------------------------------------------------------------------------


def image_facts(source: ImageSource, layout_warnings: list[str] | tuple[str, ...]) -> list[Line]:
    """Size, compression, and whether a PC can boot it from a stick."""
    name = source.path.name
    if not source.compressed:
        size = f"{name}: {human_size(source.file_size)} ({source.file_size:,} bytes)"
    elif source.size is not None:
        size = (
            f"{name}: {source.compression.value}-compressed, {human_size(source.file_size)}"
            f" file, {human_size(source.size)} ({source.size:,} bytes) when written"
        )
    else:
        size = (
            f"{name}: {source.compression.value}-compressed, "
            f"{human_size(source.file_size)} file; the size when written is not recorded "
            f"(at least {human_size(source.size_at_least)})"
        )
    lines = [Line(Tone.NOTE, size)]
    if layout_warnings:
        lines += [Line(Tone.WARN, w) for w in layout_warnings]
    else:
        lines.append(
            Line(Tone.GOOD, "Hybrid image: it has a partition table, so it boots from a USB stick")
        )
    return lines


def checksum_lines(result: ChecksumResult) -> list[Line]:
    """The checksum verdict and the signature verdict, one line each."""
    if result.state is ChecksumState.NO_FILE:
        return [
            Line(
                Tone.WARN,
                "No checksum file found beside the image (SHA256SUMS, "
                "*.sha256 …): its integrity was NOT checked",
            )
        ]
    assert result.checksum_file is not None
    sums = result.checksum_file.name
    if result.state is ChecksumState.NOT_LISTED:
        return [
            Line(
                Tone.WARN,
                f"{sums} does not list {result.image.name}: its integrity was NOT checked",
            )
        ]
    label = {"sha256": "SHA-256", "sha512": "SHA-512"}.get(result.algorithm or "", "hash")
    what = "the decompressed image" if result.decompressed else result.image.name
    if result.state is ChecksumState.MATCH:
        first = Line(Tone.GOOD, f"{sums}: good ({label} of {what} matches)")
    else:
        first = Line(
            Tone.BAD,
            f"{sums}: MISMATCH — {label} of {what} is {result.actual}, "
            f"the file lists {result.expected}. Do not write this image",
        )
    return [first, signature_line(result)]


def signature_line(result: ChecksumResult) -> Line:
    sig = result.signature
    where = sig.signature_file.name if sig.signature_file else "signature"
    if sig.state is SignatureState.GOOD:
        return Line(Tone.GOOD, f"Signature ({where}): good, by {sig.signer or sig.key_id}")
    if sig.state is SignatureState.UNKNOWN_KEY:
        return Line(
            Tone.WARN,
            f"Signature ({where}): unknown key {sig.key_id} (not in a "
            "trusted keyring), so who made the checksum file is not known",
        )
    if sig.state is SignatureState.BAD:
        return Line(
            Tone.BAD,
            f"Signature ({where}): BAD — the checksum file was changed after it was signed",
        )
    if sig.state is SignatureState.ERROR:
        return Line(Tone.WARN, f"Signature ({where}): could not be checked ({sig.detail})")
    return Line(Tone.WARN, "Signature: none (the checksum file is not signed)")


# --- the target ------------------------------------------------------------------------------


def drive_words(drive: Drive) -> str:
    return f"{drive.name} ({drive.size_text}, {drive.devnode})"


def target_words(target: Target, drive: Drive | None = None) -> str:
    """How the target is named to the user: vendor, model, size and device."""
    if target.kind is TargetKind.FILE:
        return f"the file {target.path}"
    if drive is not None and Path(drive.devnode) == target.path:
        return drive_words(drive)
    return f"{target.path} ({target.description})"


def target_summary(target: Target, drive: Drive | None = None) -> str:
    if target.kind is TargetKind.FILE:
        if target.size:
            return f"The file {target.path} ({human_size(target.size)}): it will be overwritten"
        return f"A new image file {target.path} (for a virtual machine)"
    return f"Device: {target_words(target, drive)}"


@dataclass(frozen=True)
class Confirmation:
    title: str
    text: str
    informative: str
    button: str


def confirmation(
    source: ImageSource,
    target: Target,
    drive: Drive | None,
    mounted: list[tuple[str, str]] | tuple[tuple[str, str], ...],
    *,
    verify: bool,
) -> Confirmation:
    """The question asked before anything is written."""
    size = source.size if source.size is not None else source.size_at_least
    image = f"{source.path.name} ({human_size(size)})"
    notes: list[str] = []
    if target.kind is TargetKind.FILE:
        if target.size:
            text = f"The file {target.path} will be overwritten."
        else:
            text = f"A new image file {target.path} will be created."
        notes.append(f"{image} will be written to it.")
        button = "Write"
        title = "Write the image to a file?"
    else:
        who = target_words(target, drive)
        text = f"Everything on {who} will be erased."
        notes.append(f"{image} will be written to it. All files and partitions on it are lost.")
        if target.size > LARGE_DRIVE:
            notes.append(
                f"This drive is larger than {human_size(LARGE_DRIVE)} "
                f"({human_size(target.size)}): make sure it is the stick you mean, "
                "not a backup disk."
            )
        if mounted:
            listed = ", ".join(f"{node} on {point}" for node, point in mounted)
            notes.append(f"Its mounted partitions are unmounted first: {listed}.")
        button = "Erase and write"
        title = "Erase this drive?"
    if not verify:
        notes.append("It will not be verified afterwards.")
    return Confirmation(title, text, "\n\n".join(notes), button)


# --- progress --------------------------------------------------------------------------------


class RateMeter:
    """Bytes per second over the last few seconds (what the device does now, not on average)."""

    def __init__(self, window: float = 3.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()
        self._started = time.monotonic()

    def reset(self, now: float | None = None) -> None:
        self._samples.clear()
        self._started = time.monotonic() if now is None else now

    def add(self, done: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Bytes per second, or None until there is enough to say."""
        if not self._samples:
            return None
        last_t, last_done = self._samples[-1]
        first_t, first_done = self._samples[0]
        if last_t - first_t >= 0.5 and last_done >= first_done:
            return (last_done - first_done) / (last_t - first_t)
        if last_t - self._started >= 0.5:
            return last_done / (last_t - self._started)
        return None


def format_duration(seconds: float) -> str:
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f} s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_texts(
    phase: str, done: int, total: int, rate: float | None, *, compressed_bytes: bool = False
) -> tuple[str, str]:
    """("123.4 MB of 456.7 MB", "85.3 MB/s, about 0:12 left")."""
    amount = f"{human_size(done)} of {human_size(total)}" if total > 0 else human_size(done)
    if compressed_bytes and phase == PHASE_WRITE:
        amount += " of compressed data read"
    if rate is None or rate <= 0:
        return amount, "measuring speed…"
    speed = f"{human_size(int(rate))}/s"
    if total > done:
        return amount, f"{speed}, about {format_duration((total - done) / rate)} left"
    return amount, speed


# --- the result ------------------------------------------------------------------------------


class OutcomeKind(enum.Enum):
    VERIFIED = "verified"
    RESTORED = "restored"  # made a normal drive again ("Restore to a normal drive…")
    NOT_VERIFIED = "not-verified"
    CANCELLED = "cancelled"
    UNPLUGGED = "unplugged"
    VERIFICATION_FAILED = "verification-failed"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    title: str
    details: str

    @property
    def tone(self) -> Tone:
        if self.kind in (OutcomeKind.VERIFIED, OutcomeKind.RESTORED):
            return Tone.GOOD
        if self.kind in (OutcomeKind.NOT_VERIFIED, OutcomeKind.CANCELLED):
            return Tone.WARN
        return Tone.BAD


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?", ")")) else text + "."


def outcome_of_result(result: WriteResult, checksum: ChecksumResult | None = None) -> Outcome:
    size = human_size(result.image_size)
    details = [
        _sentence(result.summary()),
        f"XXH3-128 of the image, hashed while writing: {result.digest}",
    ]
    timing = f"Writing took {format_duration(result.write_seconds)}"
    if result.verified:
        timing += f", verifying {format_duration(result.verify_seconds)}"
    details.append(timing + ".")
    if checksum is not None:
        details += [line.text + "." for line in checksum_lines(checksum)]
    details += [_sentence(f"Warning: {w}") for w in result.warnings]
    if result.verified:
        return Outcome(OutcomeKind.VERIFIED, f"Written and verified: {size}", "\n".join(details))
    return Outcome(
        OutcomeKind.NOT_VERIFIED,
        f"Written, not verified: {size}",
        "\n".join(details + ["The stick was not read back: it may hold errors."]),
    )


def _writing_began(phases: list[str] | tuple[str, ...]) -> bool:
    """True once the writer may have changed the drive (writing, or wiping after a stop)."""
    return PHASE_WRITE in phases or PHASE_WIPE in phases


def outcome_of_error(exc: BaseException, phases: list[str] | tuple[str, ...] = ()) -> Outcome:
    """What happened, from the error that ended the write and the phases that were reached."""
    text = _sentence(str(exc))
    if isinstance(exc, Cancelled):
        message = exc.message
        if "not verified" in message.lower():
            return Outcome(
                OutcomeKind.NOT_VERIFIED, "Written, not verified (verification cancelled)", text
            )
        if not _writing_began(phases):
            return Outcome(
                OutcomeKind.CANCELLED,
                "Cancelled before anything was written",
                "Nothing was written; the drive is unchanged.",
            )
        return Outcome(OutcomeKind.CANCELLED, _sentence(message).rstrip("."), text)
    if isinstance(exc, DeviceUnplugged):
        return Outcome(OutcomeKind.UNPLUGGED, "The stick was unplugged", text)
    if isinstance(exc, VerificationError):
        offset = getattr(exc, "offset", None)
        title = "Verification failed" if offset is None else f"Verification failed at byte {offset}"
        return Outcome(OutcomeKind.VERIFICATION_FAILED, title, text)
    if isinstance(exc, DeviceIOError):
        offset = exc.offset
        title = "Input/output error" if offset is None else f"Input/output error at byte {offset}"
        return Outcome(OutcomeKind.FAILED, title, text)
    # These are raised before writing (the checks) and during it too (EROFS/EPERM from a
    # write-protect switch, a .gz image longer than its recorded size): only the phases
    # reached tell whether the drive is still untouched.
    began = _writing_began(phases)
    if isinstance(exc, DeviceChanged):
        return Outcome(
            OutcomeKind.FAILED,
            "The drive you chose went away during the write"
            if began
            else "The drive you chose is gone; nothing was written",
            text,
        )
    titles: tuple[tuple[type[LivesmithError], str, str], ...] = (
        (DeviceReadOnly, "The drive is read-only", "The drive refused writing (read-only)"),
        (
            DeviceTooSmall,
            "The image does not fit on the drive",
            "The image did not fit on the drive",
        ),
        (DeviceBusy, "The drive is in use", "The drive was in use"),
        (DevicePermissionDenied, "Permission denied", "Permission denied"),
    )
    for cls, before, during in titles:
        if isinstance(exc, cls):
            title = (
                f"{during} after writing had begun: the drive does not hold the image"
                if began
                else f"{before}; nothing was written"
            )
            return Outcome(OutcomeKind.FAILED, title, text)
    if isinstance(exc, DeviceNotFound):
        return Outcome(OutcomeKind.FAILED, "The drive is gone", text)
    if PHASE_VERIFY in phases:
        return Outcome(OutcomeKind.FAILED, "Written, but verifying failed", text)
    return Outcome(OutcomeKind.FAILED, "Writing failed", text)


def unplugged_outcome(words: str) -> Outcome:
    return Outcome(
        OutcomeKind.UNPLUGGED,
        "The stick was unplugged",
        f"{words} went away while it was being written. What is on it is "
        "incomplete: write it again before you boot from it.",
    )


# --- several sticks, the stop question, the capacity check -----------------------------------


def stick_outcome(stick: StickRun, checksum: ChecksumResult | None = None) -> Outcome:
    """How one stick's run ended, in words."""
    if stick.end is StickEnd.UNPLUGGED:
        return unplugged_outcome(stick.words)
    if stick.result is not None:
        return outcome_of_result(stick.result, checksum)
    if stick.error is not None:
        return outcome_of_error(stick.error, stick.phases)
    return Outcome(OutcomeKind.FAILED, "Writing did not end", "The writer stopped without a word.")


_WORST_FIRST = (
    OutcomeKind.FAILED,
    OutcomeKind.VERIFICATION_FAILED,
    OutcomeKind.UNPLUGGED,
    OutcomeKind.CANCELLED,
    OutcomeKind.NOT_VERIFIED,
    OutcomeKind.VERIFIED,
)


def sticks_outcome(sticks: Sequence[StickRun], checksum: ChecksumResult | None = None) -> Outcome:
    """The result of a write to one stick or several: each stick by name when several."""
    if len(sticks) == 1:
        return stick_outcome(sticks[0], checksum)
    outcomes = [stick_outcome(s) for s in sticks]  # the image's checksum once, at the end
    worst = min(outcomes, key=lambda o: _WORST_FIRST.index(o.kind)).kind
    written = (OutcomeKind.VERIFIED, OutcomeKind.NOT_VERIFIED)
    bad = [s.words for s, o in zip(sticks, outcomes, strict=True) if o.kind not in written]
    count = len(sticks)
    if len({o.kind for o in outcomes}) == 1:
        title = f"{outcomes[0].title} \u2014 on all {count} sticks"
    elif not bad:
        title = f"Written to all {count} sticks, not all of them verified"
    else:
        title = f"{len(bad)} of {count} sticks did not succeed: {', '.join(bad)}"
    details = [
        f"{s.words}: {o.tone.mark} {o.title}\n    " + o.details.replace("\n", "\n    ")
        for s, o in zip(sticks, outcomes, strict=True)
    ]
    if checksum is not None:
        details.append("\n".join(line.text + "." for line in checksum_lines(checksum)))
    return Outcome(worst, title, "\n\n".join(details))


def several_confirmation(
    source: ImageSource, about: Sequence[tuple[Target, Drive | None]], *, verify: bool
) -> Confirmation:
    """The question asked before writing to several drives at once."""
    size = source.size if source.size is not None else source.size_at_least
    names = "\n".join(f"\u2022 {target_words(t, d)}" for t, d in about)
    notes = [
        f"{source.path.name} ({human_size(size)}) will be written to each of them. All files "
        "and partitions on them are lost; their mounted partitions are unmounted first."
    ]
    if not verify:
        notes.append("They will not be verified afterwards.")
    return Confirmation(
        f"Erase these {len(about)} drives?",
        f"Everything on these {len(about)} drives will be erased:\n{names}",
        "\n\n".join(notes),
        f"Erase and write {len(about)}",
    )


def confirmation_of(
    source: ImageSource, about: Sequence[tuple[Preflight, Drive | None]], *, verify: bool
) -> Confirmation:
    """The question asked before writing to one target or several."""
    if len(about) == 1:
        pre, drive = about[0]
        return confirmation(source, pre.target, drive, pre.mounted, verify=verify)
    return several_confirmation(source, [(p.target, d) for p, d in about], verify=verify)


def stick_words(target: Target, drive: Drive | None) -> str:
    """How a target being written is named on its progress row and in the result."""
    if drive is not None and target.kind is TargetKind.BLOCK:
        return drive_words(drive)
    return target_summary(target).removeprefix("Device: ")


def stop_question(verifying: bool) -> tuple[str, str, str]:
    """(title, text, button) of the question asked before stopping a write."""
    if verifying:
        return (
            "Stop verifying?",
            "The image has been written, but it will not be verified: you will not know "
            "whether the stick holds it intact.",
            "Stop verifying",
        )
    return (
        "Stop writing?",
        "The stick is then wiped, so that it does not look half-bootable. It will hold no "
        "usable data.",
        "Stop writing",
    )


def phase_title(phase: str, steps: Sequence[str]) -> str:
    title = TITLES.get(phase, phase)
    if phase in steps and len(steps) > 1:
        title = f"Step {list(steps).index(phase) + 1} of {len(steps)}: {title}"
    return title


def capacity_line(result: CapacityResult) -> Line:
    """The verdict of "Test the stick…"."""
    if result.genuine:
        return Line(
            Tone.GOOD,
            f"{result.device} is genuine: all {result.probes} test blocks over its "
            f"{human_size(result.claimed)} held their data "
            f"(checked in {format_duration(result.seconds)}).",
        )
    assert result.failure is not None
    return Line(
        Tone.BAD,
        f"{result.device} is FAKE: it claims {human_size(result.claimed)} but "
        f"{result.failure.value} past {human_size(result.usable)}; only "
        f"{human_size(result.usable)} ({result.usable:,} bytes) can really be used.",
    )


def html_text(text: str) -> str:
    """`text` to show in a rich-text label."""
    return _escape(text)

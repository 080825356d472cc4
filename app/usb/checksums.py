"""Checking an image against the checksum file published beside it, and that file's signature.

Distributions publish `SHA256SUMS` (Debian, Ubuntu), `sha256sums.txt` (Arch), a clearsigned
`…-CHECKSUM` (Fedora, BSD-style lines) or `<image>.sha256`. We find such a file next to the
image, compute the listed hash and compare. A detached signature (`.gpg`, `.sig`, `.asc`,
`.sign`) or a clearsigned file is checked with `gpgv` against the keyrings given (by default
the user's `trustedkeys` keyring and the system keyrings in /usr/share/keyrings):
good / unknown key / bad. A missing checksum file is reported as exactly that — never as a pass.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import InputError, VerificationError
from app.reporter import NullReporter, Reporter, check_cancelled
from app.tools import find_tool
from app.usb.source import ImageSource, open_image

READ_BLOCK = 4 << 20

# Checksum files recognised beside an image, besides `<image>.<ext>` for these extensions.
SUMS_NAMES = (
    "SHA256SUMS",
    "SHA512SUMS",
    "sha256sums",
    "sha512sums",
    "SHA256SUMS.txt",
    "SHA512SUMS.txt",
    "sha256sums.txt",
    "sha512sums.txt",
    "sha256sum.txt",
    "sha512sum.txt",
    "CHECKSUM",
    "CHECKSUMS",
)
SUMS_SUFFIXES = (
    ".sha256",
    ".sha512",
    ".sha256sum",
    ".sha512sum",
    ".sha256sums",
    ".sha512sums",
    "-CHECKSUM",
    ".CHECKSUM",
)
SIGNATURE_SUFFIXES = (".gpg", ".sig", ".asc", ".sign")

ALGORITHMS = {64: "sha256", 128: "sha512"}
LABELS = {"sha256": "SHA-256", "sha512": "SHA-512"}

GNU_LINE = re.compile(r"^(?P<digest>[0-9a-fA-F]{64}|[0-9a-fA-F]{128})\s+[*]?(?P<name>.+?)\s*$")
BSD_LINE = re.compile(
    r"^(?P<algo>SHA256|SHA512)\s*\((?P<name>.+)\)\s*=\s*"
    r"(?P<digest>[0-9a-fA-F]{64}|[0-9a-fA-F]{128})\s*$"
)
BARE_LINE = re.compile(r"^(?P<digest>[0-9a-fA-F]{64}|[0-9a-fA-F]{128})\s*$")
CLEARSIGN_BEGIN = "-----BEGIN PGP SIGNED MESSAGE-----"
SIGNATURE_BEGIN = "-----BEGIN PGP SIGNATURE-----"


class ChecksumState(enum.Enum):
    MATCH = "match"
    MISMATCH = "mismatch"
    NOT_LISTED = "not-listed"  # checksum files exist, but none names this image
    NO_FILE = "no-checksum-file"


class SignatureState(enum.Enum):
    GOOD = "good"
    BAD = "bad"
    UNKNOWN_KEY = "unknown-key"
    NONE = "none"  # the checksum file is not signed
    ERROR = "error"  # gpgv could not check it (damaged signature file)


@dataclass(frozen=True)
class ChecksumEntry:
    algorithm: str  # "sha256" | "sha512"
    digest: str  # lower-case hex
    name: str  # file name as listed (without "./" or "*")


@dataclass(frozen=True)
class ChecksumFile:
    path: Path
    entries: tuple[ChecksumEntry, ...]
    clearsigned: bool
    signature: Path | None  # detached signature beside it

    def lookup(self, name: str) -> ChecksumEntry | None:
        for entry in self.entries:
            if Path(entry.name).name == name:
                return entry
        return None


@dataclass(frozen=True)
class SignatureResult:
    state: SignatureState
    signature_file: Path | None = None
    key_id: str | None = None
    signer: str | None = None
    detail: str = ""

    def describe(self) -> str:
        where = self.signature_file.name if self.signature_file else "signature"
        if self.state is SignatureState.GOOD:
            return f"{where}: good signature by {self.signer or self.key_id}"
        if self.state is SignatureState.BAD:
            return (
                f"{where}: BAD signature (key {self.key_id}) — the checksum file was "
                "changed after it was signed"
            )
        if self.state is SignatureState.UNKNOWN_KEY:
            return (
                f"{where}: signed by key {self.key_id}, which is not in any trusted "
                "keyring, so the signature could not be checked"
            )
        if self.state is SignatureState.ERROR:
            return f"{where}: the signature could not be checked ({self.detail})"
        return "the checksum file is not signed"


@dataclass(frozen=True)
class ChecksumResult:
    state: ChecksumState
    image: Path
    checksum_file: Path | None = None
    algorithm: str | None = None
    expected: str | None = None
    actual: str | None = None
    listed_name: str | None = None
    decompressed: bool = False  # the listed hash is of the decompressed image
    signature: SignatureResult = field(default_factory=lambda: SignatureResult(SignatureState.NONE))

    @property
    def verified(self) -> bool:
        """The image matches a checksum whose file carries a good signature."""
        return self.state is ChecksumState.MATCH and self.signature.state is SignatureState.GOOD

    @property
    def failed(self) -> bool:
        """The image or its checksum file is proven wrong: do not write it."""
        return self.state is ChecksumState.MISMATCH or self.signature.state is SignatureState.BAD

    def lines(self) -> list[str]:
        """What happened, in words, one finding a line."""
        if self.state is ChecksumState.NO_FILE:
            return [
                "no checksum file (SHA256SUMS, *.sha256, CHECKSUM …) beside the image: "
                "its integrity was NOT checked"
            ]
        assert self.checksum_file is not None
        sums = self.checksum_file.name
        if self.state is ChecksumState.NOT_LISTED:
            return [f"{sums} does not list {self.image.name}: its integrity was NOT checked"]
        label = LABELS.get(self.algorithm or "", self.algorithm or "hash")
        what = "the decompressed image" if self.decompressed else self.image.name
        if self.state is ChecksumState.MATCH:
            first = f"{label} of {what} matches {sums}"
        else:
            first = (
                f"{label} of {what} does NOT match {sums}: expected {self.expected}, "
                f"got {self.actual}"
            )
        return [first, self.signature.describe()]

    def error(self) -> VerificationError | None:
        """The error to stop with when `failed`."""
        if not self.failed:
            return None
        return VerificationError(
            "; ".join(self.lines()),
            where=str(self.image),
            hint="download the image (and its checksum file) again",
        )


# --- finding and parsing ---------------------------------------------------------------------


def find_checksum_files(image: Path) -> list[Path]:
    """Checksum files beside `image`: its own `<image>.sha256` etc. first, then shared ones."""
    folder = image.parent
    own = [folder / f"{image.name}{suffix}" for suffix in SUMS_SUFFIXES]
    shared = [folder / name for name in SUMS_NAMES]
    try:
        listing = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError:
        listing = []
    other = [
        p for p in listing if p.name.endswith(SUMS_SUFFIXES) and not p.name.startswith(image.name)
    ]
    found: list[Path] = []
    for path in [*own, *shared, *other]:
        if path.is_file() and path not in found:
            found.append(path)
    return found


def signed_text(text: str) -> tuple[str, bool]:
    """The signed body of a clearsigned message (dash-escaping undone), or the text itself."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != CLEARSIGN_BEGIN:
        return text, False
    body: list[str] = []
    i = 1
    while i < len(lines) and lines[i].strip():  # armor headers ("Hash: SHA256") end at a blank
        i += 1
    for line in lines[i + 1 :]:
        if line.strip() == SIGNATURE_BEGIN:
            break
        body.append(line[2:] if line.startswith("- ") else line)
    return "\n".join(body), True


def parse_checksum_file(path: Path, *, default_name: str | None = None) -> ChecksumFile:
    """Entries of a GNU (`hash  name`), BSD (`SHA256 (name) = hash`) or bare-hash file.

    Only the signed part of a clearsigned file is read. `default_name` names the file a bare
    hash belongs to (for `<image>.sha256` holding just the hash).
    """
    try:
        raw = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read the checksum file: {exc.strerror}", where=str(path)) from exc
    text, clearsigned = signed_text(raw)
    entries: list[ChecksumEntry] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = BSD_LINE.match(line) or GNU_LINE.match(line)
        if match:
            digest = match["digest"].lower()
            name = match["name"].removeprefix("./")
            entries.append(ChecksumEntry(ALGORITHMS[len(digest)], digest, name))
        elif default_name and (bare := BARE_LINE.match(line)):
            digest = bare["digest"].lower()
            entries.append(ChecksumEntry(ALGORITHMS[len(digest)], digest, default_name))
    signature = None
    if not clearsigned:
        for suffix in SIGNATURE_SUFFIXES:
            candidate = path.with_name(path.name + suffix)
            if candidate.is_file():
                signature = candidate
                break
    return ChecksumFile(path, tuple(entries), clearsigned, signature)


# --- signatures ------------------------------------------------------------------------------


def default_keyrings() -> list[Path]:
    """Keyrings trusted by default: the user's gpgv keyring and the system's keyrings."""
    home = Path(os.environ.get("GNUPGHOME") or Path.home() / ".gnupg")
    candidates = [home / "trustedkeys.kbx", home / "trustedkeys.gpg"]
    system = Path("/usr/share/keyrings")
    if system.is_dir():
        candidates += sorted(system.glob("*.gpg")) + sorted(system.glob("*.kbx"))
    return [p for p in candidates if p.is_file()]


def check_signature(
    checksum_file: ChecksumFile, *, keyrings: Iterable[Path] | None = None
) -> SignatureResult:
    if checksum_file.clearsigned:
        args = [str(checksum_file.path)]
        shown: Path | None = checksum_file.path
    elif checksum_file.signature is not None:
        args = [str(checksum_file.signature), str(checksum_file.path)]
        shown = checksum_file.signature
    else:
        return SignatureResult(SignatureState.NONE)
    rings = list(default_keyrings() if keyrings is None else keyrings)
    gpgv = find_tool("gpgv")
    # An empty private home, so gpgv reads only the keyrings we name and writes nothing.
    with tempfile.TemporaryDirectory(prefix="livesmith-gpgv-") as home:
        command = [gpgv, "--homedir", home, "--status-fd", "1"]
        for ring in rings:
            command += ["--keyring", str(Path(ring).resolve())]
        out = subprocess.run(
            command + args, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
    return parse_gpgv_status(out.stdout, out.stderr, shown)


def parse_gpgv_status(status: str, stderr: str, signature_file: Path | None) -> SignatureResult:
    """Verdict from gpgv's machine-readable status lines (`--status-fd`)."""
    found: dict[str, str] = {}
    for line in status.splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, _, rest = line[len("[GNUPG:] ") :].partition(" ")
            found.setdefault(keyword, rest)

    def key_and_uid(keyword: str) -> tuple[str | None, str | None]:
        key, _, uid = found[keyword].partition(" ")
        return key or None, uid or None

    if "BADSIG" in found:
        key, uid = key_and_uid("BADSIG")
        return SignatureResult(SignatureState.BAD, signature_file, key, uid)
    if "GOODSIG" in found and "VALIDSIG" in found:
        key, uid = key_and_uid("GOODSIG")
        return SignatureResult(SignatureState.GOOD, signature_file, key, uid)
    if "NO_PUBKEY" in found:
        key, _ = key_and_uid("NO_PUBKEY")
        return SignatureResult(SignatureState.UNKNOWN_KEY, signature_file, key)
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else "gpgv gave no verdict"
    return SignatureResult(SignatureState.ERROR, signature_file, detail=detail)


# --- hashing ---------------------------------------------------------------------------------


def hash_file(path: Path, algorithm: str, reporter: Reporter) -> str:
    digest = hashlib.new(algorithm)
    total = path.stat().st_size
    done = 0
    buf = bytearray(READ_BLOCK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(view):
            digest.update(view[:n])
            done += n
            reporter.progress(done, total)
            check_cancelled(reporter)
    return digest.hexdigest()


def hash_decompressed(source: ImageSource, algorithm: str, reporter: Reporter) -> str:
    digest = hashlib.new(algorithm)
    buf = bytearray(READ_BLOCK)
    view = memoryview(buf)
    with source.open() as reader:
        while n := reader.readinto(view):
            digest.update(view[:n])
            reporter.progress(reader.consumed, source.file_size)
            check_cancelled(reporter)
    return digest.hexdigest()


def _stem_without_compression(name: str) -> str | None:
    for suffix in (".xz", ".zst", ".gz"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def check_image(
    image: str | os.PathLike[str],
    *,
    reporter: Reporter | None = None,
    keyrings: Iterable[Path] | None = None,
) -> ChecksumResult:
    """Find a checksum file beside `image`, check its signature, hash the image, compare."""
    image = Path(image)
    reporter = reporter or NullReporter()
    files = find_checksum_files(image)
    if not files:
        return ChecksumResult(ChecksumState.NO_FILE, image)
    plain_name = _stem_without_compression(image.name)
    chosen: tuple[ChecksumFile, ChecksumEntry, bool] | None = None
    for path in files:
        own = path.name.startswith(image.name)
        parsed = parse_checksum_file(path, default_name=image.name if own else None)
        entry = parsed.lookup(image.name)
        decompressed = False
        if entry is None and plain_name:
            entry = parsed.lookup(plain_name)
            decompressed = entry is not None
        if entry is None:
            continue
        signed = parsed.clearsigned or parsed.signature is not None
        # Prefer a signed file, then the stronger hash.
        rank = (signed, entry.algorithm == "sha512")
        if chosen is None or rank > (
            chosen[0].clearsigned or chosen[0].signature is not None,
            chosen[1].algorithm == "sha512",
        ):
            chosen = (parsed, entry, decompressed)
    if chosen is None:
        return ChecksumResult(ChecksumState.NOT_LISTED, image, checksum_file=files[0])
    parsed, entry, decompressed = chosen
    signature = check_signature(parsed, keyrings=keyrings)
    reporter.step(f"checking {LABELS[entry.algorithm]} of {image.name}")
    if decompressed:
        actual = hash_decompressed(open_image(image), entry.algorithm, reporter)
    else:
        actual = hash_file(image, entry.algorithm, reporter)
    state = ChecksumState.MATCH if actual == entry.digest else ChecksumState.MISMATCH
    return ChecksumResult(
        state,
        image,
        checksum_file=parsed.path,
        algorithm=entry.algorithm,
        expected=entry.digest,
        actual=actual,
        listed_name=entry.name,
        decompressed=decompressed,
        signature=signature,
    )

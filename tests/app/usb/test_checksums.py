"""Checksum files beside an image and their gpgv signatures: good, bad, missing, unknown key."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import Cancelled
from app.reporter import NullReporter
from app.usb.checksums import (
    ChecksumState,
    SignatureState,
    check_image,
    find_checksum_files,
    parse_checksum_file,
)


def require_gpg() -> None:
    """Fail, not skip, without gpg or gpgv: the project installs both (make setup-test), so
    a missing one is a broken setup, and a skip would let signature checking go untested."""
    missing = [
        f"{tool} (Debian package {package})"
        for tool, package in (("gpg", "gnupg"), ("gpgv", "gpgv"))
        if shutil.which(tool) is None
    ]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed: see packaging/deps/apt-*.txt")


class GpgKey:
    """A throwaway signing key in its own GNUPGHOME, with its public key as a gpgv keyring."""

    def __init__(self, name: str) -> None:
        # GNUPGHOME holds agent sockets: keep the path short (sun_path is 108 bytes).
        self.home = Path(tempfile.mkdtemp(prefix="lsg", dir="/tmp"))
        self.env = {**os.environ, "GNUPGHOME": str(self.home)}
        self.gpg(
            ["--quick-gen-key", f"{name} <{name.lower()}@example.org>", "ed25519", "sign", "never"]
        )
        self.keyring = self.home / "public.gpg"
        self.keyring.write_bytes(self.gpg(["--export"]).stdout)

    def gpg(self, args: list[str]) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["gpg", "--batch", "--yes", "--passphrase", "", *args],
            env=self.env,
            capture_output=True,
            check=True,
        )

    def detach_sign(self, path: Path, suffix: str = ".gpg") -> Path:
        out = path.with_name(path.name + suffix)
        armor = ["--armor"] if suffix == ".asc" else []
        self.gpg([*armor, "--detach-sign", "-o", str(out), str(path)])
        return out

    def clearsign(self, path: Path) -> None:
        signed = path.with_name(path.name + ".tmp")
        self.gpg(["--clearsign", "-o", str(signed), str(path)])
        signed.replace(path)

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--kill", "gpg-agent"], env=self.env, check=False, capture_output=True
        )
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="module")
def keys() -> Iterator[tuple[GpgKey, GpgKey]]:
    require_gpg()
    signer, stranger = GpgKey("Signer"), GpgKey("Stranger")
    yield signer, stranger
    signer.close()
    stranger.close()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "distro-1.0-amd64.iso"
    path.write_bytes(os.urandom(3 << 20))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_sums(folder: Path, lines: list[str], name: str = "SHA256SUMS") -> Path:
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_missing_checksum_file_is_never_a_pass(image: Path) -> None:
    result = check_image(image)
    assert result.state is ChecksumState.NO_FILE
    assert not result.verified and not result.failed
    assert "NOT checked" in result.lines()[0]


def test_good_checksum_without_signature(image: Path) -> None:
    write_sums(image.parent, [f"{'0' * 64}  other.iso", f"{sha256(image)} *{image.name}"])
    result = check_image(image)
    assert result.state is ChecksumState.MATCH
    assert result.signature.state is SignatureState.NONE
    assert not result.verified  # a matching but unsigned hash is not called verified
    assert not result.failed
    assert result.lines() == [
        f"SHA-256 of {image.name} matches SHA256SUMS",
        "the checksum file is not signed",
    ]


def test_bad_checksum_fails_with_both_hashes(image: Path) -> None:
    write_sums(image.parent, [f"{'ab' * 32}  ./{image.name}"])
    result = check_image(image)
    assert result.state is ChecksumState.MISMATCH and result.failed
    error = result.error()
    assert error is not None and "does NOT match" in str(error) and "ab" * 32 in str(error)
    assert sha256(image) in str(error)


def test_checksum_file_not_listing_the_image(image: Path) -> None:
    write_sums(image.parent, [f"{'0' * 64}  other.iso"])
    result = check_image(image)
    assert result.state is ChecksumState.NOT_LISTED
    assert "does not list" in result.lines()[0] and not result.failed


def test_own_sha512_file_with_bare_hash(image: Path) -> None:
    digest = hashlib.sha512(image.read_bytes()).hexdigest()
    (image.parent / f"{image.name}.sha512").write_text(digest.upper() + "\n")
    result = check_image(image)
    assert result.state is ChecksumState.MATCH and result.algorithm == "sha512"


def test_listed_uncompressed_name_checks_the_decompressed_image(image: Path) -> None:
    write_sums(image.parent, [f"{sha256(image)}  {image.name}"])
    packed = image.with_name(image.name + ".zst")
    subprocess.run(["zstd", "-q", str(image), "-o", str(packed)], check=True)
    image.unlink()
    result = check_image(packed)
    assert result.state is ChecksumState.MATCH and result.decompressed
    assert "decompressed image" in result.lines()[0]


def test_hashing_can_be_cancelled(image: Path) -> None:
    write_sums(image.parent, [f"{sha256(image)}  {image.name}"])
    reporter = NullReporter()
    reporter.cancel()
    with pytest.raises(Cancelled):
        check_image(image, reporter=reporter)


def test_discovery_prefers_own_file_and_ignores_unrelated(image: Path) -> None:
    folder = image.parent
    (folder / "README").write_text("x")
    write_sums(folder, ["x"])
    own = folder / f"{image.name}.sha256"
    own.write_text("y")
    found = find_checksum_files(image)
    assert found[0] == own and folder / "SHA256SUMS" in found
    assert folder / "README" not in found


@pytest.mark.parametrize("suffix", [".gpg", ".sig", ".asc", ".sign"])
def test_detached_signature_good(image: Path, keys, suffix: str) -> None:
    signer, _ = keys
    sums = write_sums(image.parent, [f"{sha256(image)}  {image.name}"])
    signer.detach_sign(sums, suffix)
    result = check_image(image, keyrings=[signer.keyring])
    assert result.state is ChecksumState.MATCH
    assert result.signature.state is SignatureState.GOOD
    assert "Signer" in (result.signature.signer or "")
    assert result.verified


def test_signature_over_changed_sums_is_bad(image: Path, keys) -> None:
    signer, _ = keys
    sums = write_sums(image.parent, [f"{sha256(image)}  {image.name}"])
    signer.detach_sign(sums)
    # Someone adds a line after signing: the image still matches, the file does not.
    sums.write_text(sums.read_text() + f"{'1' * 64}  evil.iso\n")
    result = check_image(image, keyrings=[signer.keyring])
    assert result.state is ChecksumState.MATCH
    assert result.signature.state is SignatureState.BAD
    assert result.failed and not result.verified
    assert "BAD signature" in str(result.error())


def test_signature_by_unknown_key(image: Path, keys) -> None:
    signer, stranger = keys
    sums = write_sums(image.parent, [f"{sha256(image)}  {image.name}"])
    signer.detach_sign(sums)
    result = check_image(image, keyrings=[stranger.keyring])
    assert result.signature.state is SignatureState.UNKNOWN_KEY
    assert result.signature.key_id and len(result.signature.key_id) == 16
    assert not result.verified and not result.failed
    assert "not in any trusted keyring" in result.lines()[1]


def test_fedora_style_clearsigned_checksum(image: Path, keys) -> None:
    signer, _ = keys
    sums = image.parent / "Distro-1.0-x86_64-CHECKSUM"
    sums.write_text(
        f"# Distro-1.0-x86_64.iso: 3145728 bytes\nSHA256 ({image.name}) = {sha256(image)}\n"
    )
    signer.clearsign(sums)
    parsed = parse_checksum_file(sums)
    assert parsed.clearsigned and len(parsed.entries) == 1
    result = check_image(image, keyrings=[signer.keyring])
    assert result.state is ChecksumState.MATCH and result.verified
    assert result.signature.signature_file == sums


def test_lines_outside_the_clearsigned_part_are_ignored(tmp_path: Path) -> None:
    sums = tmp_path / "CHECKSUM"
    sums.write_text(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
        f"SHA256 (a.iso) = {'a' * 64}\n- -dash escaped\n"
        "-----BEGIN PGP SIGNATURE-----\nxyz\n-----END PGP SIGNATURE-----\n"
        f"{'b' * 64}  b.iso\n"
    )
    parsed = parse_checksum_file(sums)
    assert [e.name for e in parsed.entries] == ["a.iso"]

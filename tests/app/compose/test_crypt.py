from __future__ import annotations

import subprocess

import pytest

from app.compose.crypt import make_salt, sha512_crypt


@pytest.mark.parametrize("password", ["live", "pässwörd with spaces", "x" * 100])
def test_matches_openssl(password: str) -> None:
    salt = "saltsaltsalt1234"
    out = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, password],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sha512_crypt(password, salt) == out.stdout.strip()


def test_known_vector_from_the_specification() -> None:
    # From Drepper's specification test vectors.
    assert sha512_crypt("Hello world!", "saltstring") == (
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJu"
        "esI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
    )
    assert sha512_crypt("Hello world!", "saltstringsaltstring", rounds=10000) == (
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp"
        "8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."
    )


def test_empty_password_matches_glibc() -> None:
    # openssl refuses an empty password; this value is glibc crypt(3)'s answer.
    assert sha512_crypt("", "saltsaltsalt1234") == (
        "$6$saltsaltsalt1234$oMkYKCcZV8CfUBk1FvT.PvQ7icyvBsT3ul9rcwgQFz1yHWwuxn9u7j/uGj8VAEPZEYPQk7"
        "RQfpNr1jlc52kNL1"
    )


def test_random_salts_differ() -> None:
    assert make_salt() != make_salt()
    assert len(make_salt()) == 16

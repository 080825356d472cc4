"""SHA-512 crypt (`$6$`), the password hash glibc, musl and busybox `login` understand.

Python's `crypt` module is deprecated (gone in 3.13), so this follows Ulrich Drepper's
published specification ("Unix crypt using SHA-256 and SHA-512") directly.
"""

from __future__ import annotations

import hashlib
import secrets

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DEFAULT_ROUNDS = 5000
SALT_CHARS = _ITOA64


def make_salt(length: int = 16) -> str:
    return "".join(secrets.choice(SALT_CHARS) for _ in range(length))


def _repeat_to(block: bytes, length: int) -> bytes:
    return (block * (length // len(block) + 1))[:length]


def sha512_crypt(password: str, salt: str, rounds: int = _DEFAULT_ROUNDS) -> str:
    """Hash `password` with `salt` (up to 16 characters used) as `$6$salt$…`."""
    if not 1000 <= rounds <= 999_999_999:
        raise ValueError("rounds must be between 1000 and 999999999")
    pw = password.encode("utf-8")
    s = salt.encode("ascii")[:16]

    b = hashlib.sha512(pw + s + pw).digest()
    a = hashlib.sha512(pw + s)
    a.update(_repeat_to(b, len(pw)))
    n = len(pw)
    while n:
        a.update(b if n & 1 else pw)
        n >>= 1
    da = a.digest()

    p_bytes = _repeat_to(hashlib.sha512(pw * len(pw)).digest(), len(pw))
    s_bytes = _repeat_to(hashlib.sha512(s * (16 + da[0])).digest(), len(s))

    c = da
    for i in range(rounds):
        ctx = hashlib.sha512(p_bytes if i & 1 else c)
        if i % 3:
            ctx.update(s_bytes)
        if i % 7:
            ctx.update(p_bytes)
        ctx.update(c if i & 1 else p_bytes)
        c = ctx.digest()

    out = []
    for i in range(21):
        x, y, z = i, i + 21, i + 42
        triple = ((x, y, z), (y, z, x), (z, x, y))[i % 3]
        out.append(_b64_from_24bit(c[triple[0]], c[triple[1]], c[triple[2]], 4))
    out.append(_b64_from_24bit(0, 0, c[63], 2))
    prefix = "$6$" if rounds == _DEFAULT_ROUNDS else f"$6$rounds={rounds}$"
    return f"{prefix}{s.decode()}${''.join(out)}"


def _b64_from_24bit(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    chars = []
    for _ in range(n):
        chars.append(_ITOA64[w & 0x3F])
        w >>= 6
    return "".join(chars)

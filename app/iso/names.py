"""ISO 9660 (level 3) and Joliet names for the entries of one directory.

Rock Ridge keeps every real name, but the plain ISO 9660 and Joliet trees need names of
their own, and pycdlib needs an ISO 9660 name for every entry. The names here are
deterministic (they depend only on the set of real names in the directory, never on
the order they were found in) and never collide: the entry whose real name sorts first
keeps the natural name, the others get a numbered suffix.

ISO 9660 names are d-characters (A-Z, 0-9, _). A file name has at most 30 characters
of name plus extension (ECMA-119 7.5.2), a directory name at most 31 (7.6.3).
Joliet names are UCS-2: no characters outside the Basic Multilingual Plane, none of
`* / : ; ? \\` or control characters, and pycdlib caps them at 64 bytes of UTF-8.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence

ISO_FILE_MAX = 30  # name + extension, without the '.' and the ';1' version
ISO_DIR_MAX = 31
ISO_EXT_MAX = 8  # a longer "extension" is kept as part of the name instead
JOLIET_MAX_BYTES = 64  # pycdlib's limit, counted on the UTF-8 encoding
JOLIET_EXT_MAX = 16

_D_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_NOT_D_ASCII = re.compile(r"[^A-Z0-9_]")
_JOLIET_FORBIDDEN = frozenset("*/:;?\\")
_JOLIET_BAD = re.compile(r"[\x00-\x1f*/:;?\\\ud800-\udfff\U00010000-\U0010ffff]")


def _d_char(ch: str) -> str:
    upper = ch.upper()
    if len(upper) == 1 and upper in _D_CHARS:
        return upper
    # Keep the letter of an accented character (é -> E); anything else becomes '_'.
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if c.isascii()).upper()
    return base[0] if base and base[0] in _D_CHARS else "_"


def _d_chars(text: str) -> str:
    if text.isascii():  # the common case, without a Python-level loop
        return _NOT_D_ASCII.sub("_", text.upper())
    return "".join(_d_char(ch) for ch in text)


def _iso_parts(name: str, is_dir: bool) -> tuple[str, str]:
    """(name, extension) in d-characters, not yet shortened."""
    if is_dir:
        return _d_chars(name) or "_", ""
    body = name.lstrip(".")
    prefix = "_" if body != name else ""
    stem, dot, ext = body.rpartition(".")
    if dot and stem and 0 < len(ext) <= ISO_EXT_MAX:
        return prefix + _d_chars(stem), _d_chars(ext)
    return (prefix + _d_chars(body)) or "_", ""


def _iso_ident(stem: str, ext: str, is_dir: bool, suffix: str = "") -> str:
    if is_dir:
        return stem[: ISO_DIR_MAX - len(suffix)] + suffix
    room = ISO_FILE_MAX - len(ext) - len(suffix)
    return f"{stem[:room]}{suffix}.{ext}"


def _iso_key(ident: str) -> str:
    # "NAME." (a file without extension) and "NAME" (a directory) look the same to a
    # reader without Rock Ridge, so they must not both exist.
    return ident.rstrip(".")


def _assign(
    names: Sequence[str],
    natural: Callable[[int], str],
    numbered: Callable[[int, int], str],
    key: Callable[[str], str],
    reserved: Iterable[str],
) -> list[str]:
    """Natural names first (lowest real name wins), then numbered names for the rest."""
    order = sorted(range(len(names)), key=lambda i: names[i].encode("utf-8", "surrogateescape"))
    taken = {key(r) for r in reserved}
    result: list[str] = [""] * len(names)
    pending = []
    for i in order:
        ident = natural(i)
        if key(ident) in taken:
            pending.append(i)
        else:
            taken.add(key(ident))
            result[i] = ident
    for i in pending:
        number = 1
        while key(ident := numbered(i, number)) in taken:
            number += 1
        taken.add(key(ident))
        result[i] = ident
    return result


def iso9660_names(entries: Sequence[tuple[str, bool]], reserved: Iterable[str] = ()) -> list[str]:
    """ISO 9660 identifiers (without ';1') for (real name, is_dir) pairs of one directory.

    Returned in input order. Files get `NAME.EXT` (`NAME.` without extension),
    directories `NAME`. `reserved` names are never handed out (e.g. `RR_MOVED`).
    """
    names = [name for name, _ in entries]
    parts = [_iso_parts(name, is_dir) for name, is_dir in entries]

    def natural(i: int) -> str:
        return _iso_ident(parts[i][0], parts[i][1], entries[i][1])

    def numbered(i: int, number: int) -> str:
        return _iso_ident(parts[i][0], parts[i][1], entries[i][1], f"_{number}")

    return _assign(names, natural, numbered, _iso_key, reserved)


def _joliet_char(ch: str) -> str:
    code = ord(ch)
    if ch in _JOLIET_FORBIDDEN or code < 0x20 or code > 0xFFFF or 0xD800 <= code <= 0xDFFF:
        return "_"
    return ch


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _fit_utf8(text: str, limit: int) -> str:
    """The longest prefix of `text` (whole characters) whose UTF-8 form fits `limit` bytes."""
    encoded = text.encode("utf-8")[: max(limit, 0)]
    return encoded.decode("utf-8", "ignore")


def _joliet_ident(name: str, suffix: str = "") -> str:
    clean = "".join(_joliet_char(ch) for ch in name) if _JOLIET_BAD.search(name) else name
    if not suffix and _utf8_len(clean) <= JOLIET_MAX_BYTES:
        return clean
    stem, dot, ext = clean.rpartition(".")
    if not (dot and stem and len(ext) <= JOLIET_EXT_MAX):
        stem, dot, ext = clean, "", ""
    tail = f"{suffix}{dot}{ext}"
    return _fit_utf8(stem, JOLIET_MAX_BYTES - _utf8_len(tail)) + tail


def joliet_names(names: Sequence[str], reserved: Iterable[str] = ()) -> list[str]:
    """Joliet names for the real names of one directory, in input order."""
    return _assign(
        names,
        lambda i: _joliet_ident(names[i]),
        lambda i, number: _joliet_ident(names[i], f"_{number}"),
        lambda ident: ident,
        reserved,
    )

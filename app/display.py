"""Text from outside (names, volume ids, partition names of an ISO image) made safe to show.

An image is untrusted input: its names can hold terminal escapes (ESC, BEL), NUL, line
feeds that forge extra output lines, or bidi overrides. `printable` shows every such
character as a visible escape, so a terminal or a label only ever displays it.
"""

from __future__ import annotations

import re
import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SURROGATE_ESCAPES = range(0xDC80, 0xDD00)  # bytes that were not UTF-8 (surrogateescape)


def _escape(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code in _SURROGATE_ESCAPES:
        return f"\\x{code - 0xDC00:02x}"  # the original byte
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` with every control, format, surrogate, private-use or unassigned character
    (Unicode category C*) written as an escape: "\\x1b", "\\n", "\\u202e"; bytes that were
    not valid UTF-8 (surrogate escapes) as "\\xff". The result holds no category C
    character, and `printable(printable(t)) == printable(t)`."""
    if text.isprintable():  # the common case; isprintable() is False for every C* character
        return text
    return "".join(_escape(c) if unicodedata.category(c).startswith("C") else c for c in text)


def printable_lines(text: str) -> str:
    """`printable` line by line, keeping the "\n" between lines: for messages written to
    a terminal, where an escape sequence from a file name or a tool must not act."""
    return "\n".join(printable(line) for line in text.split("\n"))


# C0 controls, DEL, C1 controls (incl. NEL \x85) and the Unicode line/paragraph separators.
# None has a place in a name, and each can end a line in some file a later stage writes
# (mksquashfs pseudo files, the fakeroot listing, passwd, os-release, boot menus).
# A regular expression: this runs on every member of every package.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def control_character(text: str) -> str | None:
    """The first control character (or line separator) in `text`, or None."""
    found = _CONTROL.search(text)
    return found.group() if found else None

"""app.display.printable: what a name from an image may put on a terminal or a label."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from app.display import printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("a\x00b", "a\\x00b"),
        ("one\ntwo\r\tthree", "one\\ntwo\\r\\tthree"),
        ("\x7f\x9b[2J", "\\x7f\\x9b[2J"),  # DEL and the 8-bit CSI
        ("evil\u202egnp.exe", "evil\\u202egnp.exe"),  # a bidi override (category Cf)
        ("\U000e0041tag", "\\U000e0041tag"),  # a tag character (Cf, beyond the BMP)
        ("private\ue000", "private\\ue000"),  # private use (Co)
        (b"caf\xe9".decode("utf-8", "surrogateescape"), "caf\\xe9"),  # not UTF-8: the byte
    ],
)
def test_control_characters_become_visible_escapes(text: str, shown: str) -> None:
    assert printable(text) == shown


@pytest.mark.parametrize(
    "text", ["", "plain name.txt", "Grüße ∕ 日本語 🐧", "a\u00a0b", "<b>bold</b>", "back\\slash"]
)
def test_printable_text_is_unchanged(text: str) -> None:
    assert printable(text) == text


def test_no_category_c_character_survives_and_escaping_twice_changes_nothing() -> None:
    every = "".join(chr(c) for c in range(sys.maxunicode + 1))
    shown = printable(every)
    assert not [c for c in shown if unicodedata.category(c).startswith("C")]
    assert printable(shown) == shown


def test_one_control_check_serves_names_menus_and_profiles() -> None:
    # C1 controls (NEL ends a line for some readers) and U+2028/9 count too, everywhere.
    from app.compose.profile import name_problems
    from app.display import control_character
    from app.errors import InputError
    from app.packages.model import check_file_name_part

    for bad in ("a\x85b", "a\u2028b", "a\x9bb", "a\x7fb", "a\nb"):
        assert control_character(bad) == bad[1]
        assert name_problems(f"Live {bad}")
        try:
            check_file_name_part(bad, "version", "/repo/x/info")
        except InputError as error:
            assert "control character" in str(error)
        else:
            raise AssertionError(f"{bad!r} was accepted as a file name part")
    assert control_character("Grüße – ☃ tab-free") is None

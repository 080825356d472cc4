"""Volume labels: ISO 9660 d-characters, 1-32 of them, and a valid suggestion otherwise."""

from __future__ import annotations

import pytest

from app.iso.labels import FALLBACK_LABEL, suggest_label, validate_label


@pytest.mark.parametrize("label", ["A", "LIVE", "DEBIAN_12_AMD64", "X" * 32, "0_9"])
def test_valid_labels(label: str) -> None:
    assert validate_label(label) == []


def test_lower_case_and_punctuation_get_the_upper_case_form_offered() -> None:
    (problem,) = validate_label("my-live 1")
    assert problem.where == "label"
    assert problem.message == (
        "the volume label 'my-live 1' may only contain upper-case A-Z, "
        "digits 0-9 and _ (not ' ' '-' 'e' 'i' 'l' 'm' 'v' 'y')"
    )
    assert problem.hint == "use 'MY_LIVE_1'"


def test_too_long_label() -> None:
    (problem,) = validate_label("A" * 40)
    assert str(problem) == (
        "label: the volume label '" + "A" * 40 + "' has 40 characters; "
        "at most 32 are allowed (use '" + "A" * 32 + "')"
    )


def test_too_long_and_invalid_characters_are_two_problems() -> None:
    problems = validate_label("a" * 33)
    assert len(problems) == 2
    assert "has 33 characters; at most 32 are allowed" in problems[0].message
    assert "may only contain upper-case A-Z, digits 0-9 and _ (not 'a')" in problems[1].message
    assert all(p.hint == f"use '{'A' * 32}'" for p in problems)


def test_empty_label() -> None:
    (problem,) = validate_label("", where="wizard.label")
    assert str(problem) == (
        "wizard.label: the volume label is empty; it needs 1 to 32 "
        "characters of A-Z, 0-9 and _ (for example 'LIVESMITH')"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my live", "MY_LIVE"),
        ("Débian  12.4 (amd64)", "DEBIAN_12_4_AMD64"),
        ("---", FALLBACK_LABEL),
        ("", FALLBACK_LABEL),
        ("日本語", FALLBACK_LABEL),
        ("a" * 31 + "-b", "A" * 31),  # cut at 32, no trailing _
        ("LIVE", "LIVE"),
    ],
)
def test_suggestions(text: str, expected: str) -> None:
    assert suggest_label(text) == expected


@pytest.mark.parametrize("text", ["x", "Ünïcödé", "a b c " * 20, "...", "Grüße 😀", "ok_1"])
def test_every_suggestion_is_valid(text: str) -> None:
    assert validate_label(suggest_label(text)) == []

"""SOURCE_DATE_EPOCH is parsed in one place: app.epoch."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from itertools import chain

import pytest

from app.epoch import LATEST, VARIABLE, source_date_epoch
from app.errors import Problem
from tests.conftest import ROOT

PARSER = ROOT / "app" / "epoch.py"

EXPECTED = "is not a whole number of seconds from 0 to 4294967295"


@pytest.mark.parametrize("environ", [{}, {VARIABLE: ""}, {VARIABLE: "  "}])
def test_unset_or_empty_is_none(environ: dict[str, str]) -> None:
    assert source_date_epoch(environ) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0), ("1700000000", 1700000000), (" 1700000000\n", 1700000000), ("0042", 42)],
)
def test_whole_seconds_are_read(value: str, seconds: int) -> None:
    assert source_date_epoch({VARIABLE: value}) == seconds


def test_the_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "1700000000")
    assert source_date_epoch() == 1700000000
    monkeypatch.delenv(VARIABLE)
    assert source_date_epoch() is None


@pytest.mark.parametrize(
    "value", ["-1", "yesterday", "1.5", "1e9", "+5", "1_000", "٣", "0x10", "17 00", str(10**20)]
)
def test_anything_else_is_a_problem_naming_the_variable(value: str) -> None:
    problem = source_date_epoch({VARIABLE: value})
    assert problem == Problem(
        "SOURCE_DATE_EPOCH",
        f"{value!r} {EXPECTED}",
        hint="seconds since 1970-01-01 00:00:00 UTC, as `date +%s` prints them",
    )


def test_the_latest_second_every_format_holds_is_the_limit() -> None:
    assert source_date_epoch({VARIABLE: str(LATEST)}) == LATEST
    assert datetime.fromtimestamp(LATEST, UTC) == datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC)
    problem = source_date_epoch({VARIABLE: str(LATEST + 1)})
    assert isinstance(problem, Problem) and problem.message == f"'4294967296' {EXPECTED}"


@pytest.mark.parametrize("value", ["9" * 5000, "1" + "0" * 100_000])
def test_huge_values_are_a_problem_and_quoted_short(value: str) -> None:
    # Beyond 4300 digits int() itself refuses; 10**20 (above) would overflow datetime.
    problem = source_date_epoch({VARIABLE: value})
    assert isinstance(problem, Problem) and problem.where == "SOURCE_DATE_EPOCH"
    assert problem.message == f"'{value[:40]}...' {EXPECTED}"


def _reads_of_the_variable(source: str) -> list[int]:
    """Lines that read SOURCE_DATE_EPOCH: .get / getenv / pop calls, [] loads and `in`
    tests. Setting or unsetting it for a child process (a dict key, a name in a tuple) is
    not reading it."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            named = node.args[:1] if name in ("get", "getenv", "pop") else []
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            named = [node.slice]
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            named = [node.left]
        else:
            continue
        if any(isinstance(n, ast.Constant) and n.value == VARIABLE for n in named):
            lines.append(node.lineno)
    return lines


def test_only_the_parser_reads_source_date_epoch() -> None:
    sources = chain(
        (ROOT / "app").rglob("*.py"), (ROOT / "ui").rglob("*.py"), [ROOT / "packaging/make-manpage"]
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sources
        if path != PARSER
        for line in _reads_of_the_variable(path.read_text())
    ]
    assert offenders == []


def test_the_scan_finds_every_way_of_reading_it() -> None:
    source = (
        "import os\n"
        "a = os.environ.get('SOURCE_DATE_EPOCH', '')\n"
        "b = os.getenv('SOURCE_DATE_EPOCH')\n"
        "c = os.environ['SOURCE_DATE_EPOCH']\n"
        "d = 'SOURCE_DATE_EPOCH' in os.environ\n"
        "env = {'SOURCE_DATE_EPOCH': '1'}\n"  # set for a child: fine
        "run(args, unset_env=('SOURCE_DATE_EPOCH',))\n"  # unset for a child: fine
    )
    assert _reads_of_the_variable(source) == [2, 3, 4, 5]

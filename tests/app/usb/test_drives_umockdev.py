"""Drive listing and hotplug on fake devices: umock_cases.py, run under umockdev-wrapper.

The case file runs once per session in a subprocess (umockdev's preload library must be
there from process start); each of its cases is reported here as its own test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.usb.umock_support import CaseRun, case_names, run_umock_cases

CASES = Path(__file__).with_name("umock_cases.py")


@pytest.fixture(scope="module")
def umock_run(tmp_path_factory: pytest.TempPathFactory) -> CaseRun:
    return run_umock_cases(CASES, tmp_path_factory.mktemp("umock"))


@pytest.mark.parametrize("case", case_names(CASES))
def test_under_umockdev(umock_run: CaseRun, case: str) -> None:
    umock_run.check(case)


def test_every_case_ran(umock_run: CaseRun) -> None:
    ran = {name.split("[")[0] for name in umock_run.results}
    assert ran == set(case_names(CASES)), umock_run.output[-4000:]

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from ui.gui import GUI_SWITCH_INTERVAL


@pytest.fixture
def gui_switch_interval() -> Iterator[None]:
    """The GIL switch interval the app sets when it starts (ui/gui.py), for GUI figures."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(GUI_SWITCH_INTERVAL)
    yield
    sys.setswitchinterval(before)

"""Every Python child we start (`python -m app.…`) imports our `app`, never an `app` folder
in the directory the user started Livesmith from (with -m, Python looks there first)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.usb.helper import run_helper
from tests.app.compose.test_rootimage import erofs_image
from tests.app.usb.writer_support import MiB, make_image


@pytest.fixture
def impostor_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cwd"
    (folder / "app").mkdir(parents=True)
    (folder / "app" / "__init__.py").write_text("raise SystemExit('the wrong app package')\n")
    monkeypatch.chdir(folder)
    return folder


def test_the_usb_helper_imports_our_app(impostor_cwd: Path, tmp_path: Path) -> None:
    image = tmp_path / "live.iso"
    make_image(image, 2 * MiB)
    out = tmp_path / "vm.raw"
    run_helper("write", image, out)
    assert out.read_bytes() == image.read_bytes()


def test_the_erofs_fakeroot_step_imports_our_app(impostor_cwd: Path, tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    assert erofs_image(tmp_path / "build").stat().st_size > 0

"""Time zone, locale and keyboard: checked as typed against the build machine's lists,
written where Debian and systemd read them."""

from __future__ import annotations

from pathlib import Path

from app.compose.configure import RootWriter
from app.compose.live import region
from app.compose.manifest import Kind, RootManifest
from app.reporter import Level, RecordingReporter


def test_each_setting_is_checked_against_the_machines_lists() -> None:
    assert region.timezone_problems("Europe/Berlin") == []
    assert region.timezone_problems("UTC") == []
    assert region.timezone_problems("") == []
    for bad in ("Mars/Olympus_Mons", "../../etc/passwd", "Europe/Berlin\n"):
        [problem] = region.timezone_problems(bad)
        assert problem.where == "time zone" and "unknown time zone" in problem.message
    assert region.locale_problems("de_DE.UTF-8") == region.locale_problems("C.UTF-8") == []
    [problem] = region.locale_problems("xx_YY.UTF-8")
    assert "glibc cannot generate the locale 'xx_YY.UTF-8'" in problem.message
    assert "is not a locale name" in region.locale_problems("de_DE.UTF-8; rm -rf /")[0].message
    assert region.keyboard_problems("de") == region.keyboard_problems("de(nodeadkeys)") == []
    assert "unknown keyboard layout 'klingon'" in region.keyboard_problems("klingon")[0].message


def test_locale_gen_lines_come_from_glibcs_list() -> None:
    assert region.locale_gen_line("de_DE.UTF-8") == "de_DE.UTF-8 UTF-8"
    assert region.locale_gen_line("de_DE") == "de_DE ISO-8859-1"
    assert region.locale_gen_line("C.UTF-8") == region.locale_gen_line("") == ""


def root_with_tzdata(tmp_path: Path) -> tuple[Path, RootWriter]:
    root = tmp_path / "root"
    (root / "usr/share/zoneinfo/Europe").mkdir(parents=True)
    (root / "usr/share/zoneinfo/Europe/Berlin").write_bytes(b"TZif2")
    (root / "etc").mkdir()
    (root / "etc/localtime").symlink_to("/usr/share/zoneinfo/Etc/UTC")
    return root, RootWriter(root, RootManifest())


def test_time_zone_locale_and_keyboard_are_written(tmp_path: Path) -> None:
    root, writer = root_with_tzdata(tmp_path)
    (root / "usr/lib/locale/de_DE.utf8").mkdir(parents=True)
    reporter = RecordingReporter()
    region.configure_region(writer, "Europe/Berlin", "de_DE.UTF-8", "de(nodeadkeys)", reporter)
    assert (root / "etc/localtime").readlink() == Path("/usr/share/zoneinfo/Europe/Berlin")
    assert writer.manifest.get("etc/localtime").kind is Kind.SYMLINK
    assert (root / "etc/timezone").read_text() == "Europe/Berlin\n"
    assert (root / "etc/default/locale").read_text() == "LANG=de_DE.UTF-8\n"
    assert (root / "etc/locale.conf").read_text() == "LANG=de_DE.UTF-8\n"
    keyboard = (root / "etc/default/keyboard").read_text()
    assert 'XKBLAYOUT="de"\nXKBVARIANT="nodeadkeys"' in keyboard
    assert "KEYMAP=de\n" in (root / "etc/vconsole.conf").read_text()
    assert (
        '"XkbVariant" "nodeadkeys"' in (root / "etc/X11/xorg.conf.d/00-keyboard.conf").read_text()
    )
    assert not [m for level, m in reporter.logs if level is Level.WARNING]


def test_what_the_packages_cannot_do_is_said_not_faked(tmp_path: Path) -> None:
    root, writer = root_with_tzdata(tmp_path)
    reporter = RecordingReporter()
    region.configure_region(writer, "Asia/Tokyo", "fr_FR.UTF-8", "", reporter)
    warnings = [m for level, m in reporter.logs if level is Level.WARNING]
    assert any("no /usr/share/zoneinfo/Asia/Tokyo (add tzdata)" in m for m in warnings)
    assert any("fr_FR.UTF-8 is not generated" in m for m in warnings)
    assert (root / "etc/localtime").readlink() == Path("/usr/share/zoneinfo/Etc/UTC")

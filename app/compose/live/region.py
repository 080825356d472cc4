"""Time zone, locale and keyboard layout of the live system.

Checked against the build machine's own lists as they are typed (tzdata's zone names,
glibc's SUPPORTED locales, xkb-data's layouts), and written where Debian and systemd read
them: /etc/localtime and /etc/timezone; /etc/default/locale and /etc/locale.conf;
/etc/default/keyboard (console-setup and X through keyboard-configuration),
/etc/vconsole.conf (systemd) and an X11 snippet for other X servers. A locale is generated
inside the root by the distribution's own locale-gen (see install.debian); a root that
cannot have it is said in the log, not faked.
"""

from __future__ import annotations

import re
import zoneinfo
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import Problem
from app.reporter import Level, Reporter

if TYPE_CHECKING:
    from app.compose.configure import RootWriter

SUPPORTED_LOCALES = Path("/usr/share/i18n/SUPPORTED")
XKB_LAYOUTS = Path("/usr/share/X11/xkb/rules/evdev.lst")

_TIMEZONE = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")
_LOCALE = re.compile(r"(C|POSIX|[a-z]{2,3}(_[A-Z]{2})?)(\.[A-Za-z0-9-]+)?(@[a-z]+)?")
_LAYOUT = re.compile(r"[a-z]{2,3}(\([a-z0-9_-]+\))?")


@cache
def known_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@cache
def supported_locales(path: Path = SUPPORTED_LOCALES) -> frozenset[str]:
    """glibc's list of the locales it can generate ("de_DE.UTF-8 UTF-8" lines)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return frozenset()
    return frozenset(line.split()[0] for line in lines if line.strip())


@cache
def known_layouts(path: Path = XKB_LAYOUTS) -> frozenset[str]:
    """xkb-data's keyboard layouts (the `! layout` section of evdev.lst)."""
    try:
        text = path.read_text()
    except OSError:
        return frozenset()
    section = text.split("! layout", 1)[-1].split("!", 1)[0] if "! layout" in text else ""
    return frozenset(line.split()[0] for line in section.splitlines() if line.strip())


def locale_gen_line(locale: str) -> str:
    """The /etc/locale.gen line that makes `locale` ("de_DE.UTF-8 UTF-8"), as glibc's
    SUPPORTED list says; "" for the built-in ones."""
    if not locale or not is_generated_by_glibc(locale):
        return ""
    try:
        for line in SUPPORTED_LOCALES.read_text().splitlines():
            words = line.split()
            if len(words) == 2 and words[0] == locale:
                return line.strip()
    except OSError:
        pass
    charset = locale.partition(".")[2].partition("@")[0]
    return f"{locale} {charset or 'ISO-8859-1'}"


def is_generated_by_glibc(locale: str) -> bool:
    """C.UTF-8 and POSIX are built in; every other locale is generated."""
    return locale.split(".")[0] not in ("C", "POSIX")


def timezone_problems(timezone: str) -> list[Problem]:
    if not timezone:
        return []
    zones = known_timezones()
    if not _TIMEZONE.fullmatch(timezone) or ".." in timezone or (zones and timezone not in zones):
        return [
            Problem("time zone", f"unknown time zone {timezone!r}", "e.g. Europe/Berlin or UTC")
        ]
    return []


def locale_problems(locale: str) -> list[Problem]:
    if not locale:
        return []
    supported = supported_locales()
    if not _LOCALE.fullmatch(locale):
        return [Problem("locale", f"{locale!r} is not a locale name", "e.g. de_DE.UTF-8")]
    if is_generated_by_glibc(locale) and supported and locale not in supported:
        return [
            Problem(
                "locale",
                f"glibc cannot generate the locale {locale!r}",
                "use a name from /usr/share/i18n/SUPPORTED, e.g. de_DE.UTF-8",
            )
        ]
    return []


def keyboard_problems(layout: str) -> list[Problem]:
    if not layout:
        return []
    layouts = known_layouts()
    base = layout.split("(")[0]
    if not _LAYOUT.fullmatch(layout) or (layouts and base not in layouts):
        return [Problem("keyboard", f"unknown keyboard layout {layout!r}", "e.g. us, de or fr")]
    return []


def _layout_and_variant(layout: str) -> tuple[str, str]:
    base, _, variant = layout.partition("(")
    return base, variant.rstrip(")")


def configure_region(
    writer: RootWriter, timezone: str, locale: str, keyboard: str, reporter: Reporter
) -> None:
    if timezone:
        zone = f"usr/share/zoneinfo/{timezone}"
        if writer.host_path(zone).is_file():
            writer.remove("etc/localtime")
            writer.symlink("etc/localtime", f"/{zone}")
            writer.write("etc/timezone", timezone + "\n", keep_meta=False)
            reporter.log(Level.INFO, f"time zone: {timezone}")
        else:
            reporter.log(
                Level.WARNING,
                f"time zone: the system has no /{zone} (add tzdata); it keeps UTC",
            )
    if locale:
        writer.write("etc/default/locale", f"LANG={locale}\n", keep_meta=False)
        writer.write("etc/locale.conf", f"LANG={locale}\n", keep_meta=False)
        if is_generated_by_glibc(locale) and not _locale_present(writer, locale):
            reporter.log(
                Level.WARNING,
                f"locale: {locale} is not generated in the system (Debian: add locales); "
                "programs fall back to C",
            )
        else:
            reporter.log(Level.INFO, f"locale: {locale}")
    if keyboard:
        base, variant = _layout_and_variant(keyboard)
        writer.write(
            "etc/default/keyboard",
            f'XKBMODEL="pc105"\nXKBLAYOUT="{base}"\nXKBVARIANT="{variant}"\n'
            'XKBOPTIONS=""\nBACKSPACE="guess"\n',
            keep_meta=False,
        )
        writer.write(
            "etc/vconsole.conf",
            f"KEYMAP={base}\nXKBLAYOUT={base}\n" + (f"XKBVARIANT={variant}\n" if variant else ""),
            keep_meta=False,
        )
        writer.write(
            "etc/X11/xorg.conf.d/00-keyboard.conf",
            'Section "InputClass"\n    Identifier "system-keyboard"\n'
            '    MatchIsKeyboard "on"\n'
            f'    Option "XkbLayout" "{base}"\n'
            + (f'    Option "XkbVariant" "{variant}"\n' if variant else "")
            + "EndSection\n",
            keep_meta=False,
        )
        reporter.log(Level.INFO, f"keyboard: {keyboard}")


def _locale_present(writer: RootWriter, locale: str) -> bool:
    """Whether the root has `locale` compiled: in the archive locale-gen writes, or as a
    folder of its own (glibc normalises "de_DE.UTF-8" to "de_DE.utf8")."""
    folder = writer.host_path("usr/lib/locale")
    name, _, charset = locale.partition(".")
    normal = name + ("." + re.sub(r"[^a-z0-9]", "", charset.lower()) if charset else "")
    if (folder / normal).is_dir() or (folder / locale).is_dir():
        return True
    archive = folder / "locale-archive"
    try:
        return archive.is_file() and normal.encode() in archive.read_bytes()
    except OSError:
        return False

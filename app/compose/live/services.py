"""Services the profile enables or disables, as `systemctl enable/disable` would.

systemd: enabling reads the unit's [Install] section (WantedBy=, RequiredBy=, Alias=) and
makes the links; disabling removes every link to the unit under /etc/systemd/system,
including the ones the packages' maintainer scripts made. A name without a suffix is a
.service, as systemctl takes it.

BusyBox init (Livesmith's rcS, see live.busybox): a service is an init script a package
ships as /etc/init.d/NAME (start/stop, as Buildroot's); rcS starts every
/etc/init.d/S??NAME at boot in order, so enabling links S50NAME to it and disabling removes
those links.

A service no package ships stops the build with all such names at once.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from app.compose.live.systemd import unit_path
from app.errors import Problem, StageError
from app.reporter import Level, Reporter

if TYPE_CHECKING:
    from app.compose.configure import RootWriter

_UNIT = re.compile(
    r"[A-Za-z0-9:_][A-Za-z0-9:_.\-]*(@[A-Za-z0-9:_.\-]*)?"
    r"(\.(service|socket|timer|path|target|mount))?"
)
_SUFFIXES = (".service", ".socket", ".timer", ".path", ".target", ".mount")
INIT_D = "etc/init.d"
SYSTEM = "etc/systemd/system"


def unit_problems(units: tuple[str, ...], where: str) -> list[Problem]:
    """Names that cannot be units (checked as they are typed)."""
    return [
        Problem(where, f"{unit!r} is not a service name", "e.g. ssh.service or fstrim.timer")
        for unit in units
        if not _UNIT.fullmatch(unit)
    ]


def systemd_name(unit: str) -> str:
    """ssh -> ssh.service, as systemctl reads a name without a suffix."""
    return unit if unit.endswith(_SUFFIXES) else f"{unit}.service"


def busybox_name(unit: str) -> str:
    """ssh.service -> ssh: the init script's name."""
    return unit.rsplit(".", 1)[0] if unit.endswith(_SUFFIXES) else unit


def enable_script(writer: RootWriter, name: str) -> bool:
    if not writer.host_path(f"{INIT_D}/{name}").is_file():
        return False
    writer.symlink(f"{INIT_D}/S50{name}", name)
    return True


def disable_script(writer: RootWriter, name: str) -> bool:
    if not writer.host_path(f"{INIT_D}/{name}").is_file():
        return False
    folder = writer.host_path(INIT_D)
    for link in folder.iterdir():
        if re.fullmatch(rf"S\d\d{re.escape(name)}", link.name) and link.is_symlink():
            writer.remove(f"{INIT_D}/{link.name}")
    return True


def template_of(unit: str) -> str:
    """getty@tty2.service -> getty@.service; other names stay."""
    name, at, rest = unit.partition("@")
    return f"{name}@.{rest.rsplit('.', 1)[1]}" if at else unit


def install_section(text: str) -> dict[str, list[str]]:
    """The [Install] section's settings, each a list of words."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Install" and "=" in line and not line.startswith(("#", ";")):
            key, value = (part.strip() for part in line.split("=", 1))
            found.setdefault(key, []).extend(value.split())
    return found


def enable_unit(writer: RootWriter, unit: str, reporter: Reporter) -> bool:
    path = unit_path(writer, unit) or unit_path(writer, template_of(unit))
    if path is None:
        return False
    settings = install_section(writer.read(path.lstrip("/")) or "")
    instance = unit.partition("@")[2].rsplit(".", 1)[0]
    default = settings.get("DefaultInstance", [""])[0]
    name = unit if instance or "@" not in unit else unit.replace("@.", f"@{default}.")
    links = [
        f"{SYSTEM}/{target}.{kind}/{name}"
        for kind, key in (("wants", "WantedBy"), ("requires", "RequiredBy"))
        for target in settings.get(key, [])
    ]
    links += [f"{SYSTEM}/{alias}" for alias in settings.get("Alias", [])]
    if not links:
        reporter.log(Level.WARNING, f"services: {unit} has no [Install] section; nothing to enable")
    for link in links:
        writer.symlink(link, path)
    return True


def disable_unit(writer: RootWriter, unit: str) -> bool:
    """Remove the links that start `unit`; whether the unit exists."""
    path = unit_path(writer, unit) or unit_path(writer, template_of(unit))
    if path is None:
        return False
    system = writer.host_path(SYSTEM)
    if system.is_dir():
        for folder in system.iterdir():
            if (
                folder.is_dir()
                and not folder.is_symlink()
                and folder.suffix in (".wants", ".requires")
            ):
                link = folder / unit
                if link.is_symlink():
                    writer.remove(f"{SYSTEM}/{folder.name}/{unit}")
    for alias in install_section(writer.read(path.lstrip("/")) or "").get("Alias", []):
        if writer.host_path(f"{SYSTEM}").joinpath(alias).is_symlink():
            writer.remove(f"{SYSTEM}/{alias}")
    return True


def configure_services(
    writer: RootWriter,
    enable: tuple[str, ...],
    disable: tuple[str, ...],
    reporter: Reporter,
    *,
    systemd: bool,
    stage: str,
) -> None:
    if not enable and not disable:
        return
    if not systemd:
        missing = [u for u in enable if not enable_script(writer, busybox_name(u))]
        missing += [u for u in disable if not disable_script(writer, busybox_name(u))]
        if missing:
            raise StageError(
                f"no selected package ships the init script{'s' if len(missing) > 1 else ''} "
                + ", ".join(f"/{INIT_D}/{busybox_name(u)}" for u in missing),
                stage=stage,
                hint="the system boots with BusyBox init: a service is a script in /etc/init.d",
            )
        for verb, units in (("enabled", enable), ("disabled", disable)):
            if units:
                reporter.log(Level.INFO, f"init scripts {verb}: {', '.join(units)}")
        return
    enable = tuple(systemd_name(u) for u in enable)
    disable = tuple(systemd_name(u) for u in disable)
    missing = [unit for unit in enable if not enable_unit(writer, unit, reporter)]
    missing += [unit for unit in disable if not disable_unit(writer, unit)]
    if missing:
        raise StageError(
            f"no selected package ships the unit{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}",
            stage=stage,
            hint="check the names (systemctl list-unit-files on a system that has them), "
            "or add the package that ships them",
        )
    for verb, units in (("enabled", enable), ("disabled", disable)):
        if units:
            reporter.log(Level.INFO, f"services {verb}: {', '.join(units)}")

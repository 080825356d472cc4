"""Finding the data files shipped in the `resources` package (icons, profiles, boot files).

They are located through importlib.resources, so the same call works from a checkout, an
installed wheel and the Debian package. Qt-free: the GUI turns the paths into QIcons.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path, PurePosixPath

from app.errors import LivesmithError

# One reverse-DNS id everywhere: desktop file, AppStream metainfo, icon name, Flatpak app id.
# The GUI passes it to QGuiApplication.setDesktopFileName so Wayland compositors match the
# window to the desktop file (and its icon).
APP_ID = "io.github.livesmith.Livesmith"

# The application icon (SVG; PNG sizes are rendered from it at build time).
APP_ICON = "icons/livesmith.svg"

RESOURCE_PACKAGE = "resources"


def _checked_parts(relative: str) -> tuple[str, ...]:
    """`relative` split into path parts; it must stay inside the resources package."""
    path = PurePosixPath(relative)
    if not relative or path.is_absolute() or ".." in path.parts or "\\" in relative:
        raise ValueError(
            f"resource names are relative paths inside 'resources/', "
            f"like 'icons/livesmith.svg'; got {relative!r}"
        )
    return path.parts


def resource_path(relative: str) -> Path:
    """Filesystem path of the shipped file `relative` (e.g. "icons/livesmith.svg").

    Raises LivesmithError naming the file and the folder searched when it is missing,
    which means the installation is incomplete.
    """
    parts = _checked_parts(relative)
    root = resources.files(RESOURCE_PACKAGE)
    target = root.joinpath(*parts)
    if not isinstance(target, Path):
        # Only a zip import would get here; Livesmith is always installed unpacked.
        raise LivesmithError(
            f"the resource '{relative}' is inside an archive, not a file",
            where=str(root),
            hint="install Livesmith unpacked (pip, .deb)",
        )
    if not target.is_file():
        raise LivesmithError(
            f"the resource file '{relative}' is missing",
            where=str(Path(str(root))),
            hint="the installation is incomplete; reinstall Livesmith",
        )
    return target


def read_resource_bytes(relative: str) -> bytes:
    """Contents of the shipped file `relative`."""
    return resource_path(relative).read_bytes()


def app_icon_path() -> Path:
    """The application icon (SVG) as a file path, for QIcon(str(app_icon_path()))."""
    return resource_path(APP_ICON)

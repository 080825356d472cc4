"""The application icon loads in Qt (PySide6 wheels ship the SVG icon engine) at every size."""

from __future__ import annotations

from PySide6.QtGui import QIcon

from app.resources import app_icon_path


def test_the_svg_icon_renders_at_menu_and_window_sizes(qapp) -> None:
    icon = QIcon(str(app_icon_path()))
    assert not icon.isNull()
    for size in (16, 32, 64, 256):
        image = icon.pixmap(size, size).toImage()
        assert (image.width(), image.height()) == (size, size)
        # The centre is the disc's hub, the corner is transparent (rounded square).
        assert image.pixelColor(size // 2, size * 47 // 128).alpha() == 255
        assert image.pixelColor(0, 0).alpha() == 0

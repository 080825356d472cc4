"""Livesmith core: composing live ISOs, mastering, inspection and USB writing.

Nothing in this package may import Qt (PySide6) or the `ui` package; a test enforces it.
"""

__version__ = "0.1.0"

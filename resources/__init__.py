"""Data files shipped with the app (loaded through importlib.resources)."""

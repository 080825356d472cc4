"""Livesmith's Qt user interface. May import `app`; `app` never imports this package."""

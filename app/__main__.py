"""`python -m app`: the same entry point as the `livesmith` command."""

from app.cli import main

raise SystemExit(main())

"""One module per `livesmith` subcommand; see `app.cli` for the contract."""

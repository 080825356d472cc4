"""Making a root from packages, one module per kind of source."""

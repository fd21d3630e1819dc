"""One module per group of CLI commands; each command is ``name(args) -> exit status | None``."""

"""Subcommands of `node`; each module exposes `COMMANDS` (see `node/cli.py`)."""

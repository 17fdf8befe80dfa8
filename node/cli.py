"""The `node` command.

Subcommands live in `node/commands/`: every module there exposes `COMMANDS`, a list of click
commands or groups, and is picked up here, so a layer adds its commands without touching this file.
A user mistake (any `NodeError`) prints one line and exits non-zero, never a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

import node.commands
from node import __version__
from node.errors import NodeError
from node.runtime.cli_support import OneLineGroup


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="node")
def cli() -> None:
    """A consensus node: hashgraph over QUIC with mutual TLS, signed actions, federated origins.

    Inside its virtual environment this script shadows Node.js's `node`; `python -m node` is the
    same program and always works.
    """


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(node.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"node.commands.{info.name}")
        for command in getattr(module, "COMMANDS", []):
            cli.add_command(command)


_register_commands()


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except NodeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)

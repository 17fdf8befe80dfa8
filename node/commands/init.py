"""`node init`: create a node's home (config, key, data, run); idempotent, never overwrites a key."""

from __future__ import annotations

import os

import click

from node.config import PARSERS, resolve_home
from node.runtime.cli_support import OneLineCommand, home_option
from node.runtime.home import Home, init_home


@click.command("init", cls=OneLineCommand)
@click.option("--origin", required=True, help="the origin (cluster) this node belongs to, e.g. alpha.example")
@home_option
def init_cmd(origin: str, home: str | None) -> None:
    """Create the home layout and the node key; prints the node id."""
    PARSERS["origin"](origin)
    root, _ = resolve_home(home, os.environ)
    report = init_home(Home(root), origin)
    for path in report.created:
        click.echo(f"created  {path}")
    for path in report.existing:
        click.echo(f"exists   {path} (kept)")
    click.echo(f"node id: {report.node_id}")


COMMANDS = [init_cmd]

"""`node keys show|gen`: the node's Ed25519 identity key."""

from __future__ import annotations

import os

import click

from node.config import resolve_home
from node.crypto import PrivateKey, write_private_key
from node.runtime.cli_support import OneLineCommand, OneLineGroup, home_option
from node.runtime.home import Home


@click.group("keys", cls=OneLineGroup)
def keys_group() -> None:
    """Show or create the node key (HOME/keys/node.key)."""


@keys_group.command("show", cls=OneLineCommand)
@home_option
def keys_show(home: str | None) -> None:
    """Print the node id and public key."""
    node_home = Home(resolve_home(home, os.environ)[0])
    key = node_home.load_key()
    click.echo(f"node id:    {key.fingerprint}")
    click.echo(f"key type:   {key.key_type}")
    click.echo(f"public key: {key.public.hex()}")
    click.echo(f"key file:   {node_home.key_file}")


@keys_group.command("gen", cls=OneLineCommand)
@home_option
def keys_gen(home: str | None) -> None:
    """Create a node key; refuses when one exists."""
    node_home = Home(resolve_home(home, os.environ)[0])
    key = PrivateKey.generate("ed25519")
    write_private_key(node_home.key_file, key)
    click.echo(f"node id: {key.fingerprint}")


COMMANDS = [keys_group]

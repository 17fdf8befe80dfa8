"""`node start`: run the node daemon in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import sys

import click

from node.errors import ConfigError
from node.runtime.cli_support import OneLineCommand, home_option, settings_for
from node.runtime.logs import configure_logging


@click.command("start", cls=OneLineCommand)
@click.option("--origin", help="the origin this node belongs to (default: from config/node.toml)")
@home_option
@click.option("--listen", help="QUIC address for peers, HOST:PORT (default 127.0.0.1:7700)")
@click.option("--api", help="HTTP API address, HOST:PORT (default 127.0.0.1:7800)")
@click.option("--peer", "peers", multiple=True, help="a peer as NODE_ID@HOST:PORT (repeatable)")
@click.option("--redis-url", help="an external Redis (default: an embedded one on a unix socket in HOME/run)")
@click.option("--namespace", help="prefix of every Redis key (several nodes sharing one Redis)")
@click.option("--log-format", type=click.Choice(["auto", "plain", "json"]), help="log output format")
@click.option("--log-level", help="levels like info,consensus=debug")
@click.option("--heartbeat-interval", type=float, help="seconds between service heartbeats")
@click.option("--dns", help="answer DNS for this origin on HOST:PORT (UDP): its nodes' endpoints and CA pin")
@click.option("--federation-listen", help="QUIC address for other origins, HOST:PORT (advertised in our DNS)")
@click.option("--federation-origin", "federation_origins", multiple=True,
              help="an origin to federate with (repeatable)")
@click.option("--federation-nameserver", "federation_nameservers", multiple=True,
              help="a DNS server answering for the other origins, HOST:PORT (repeatable)")
@click.option("--federation-pin", "federation_pins", multiple=True,
              help="ORIGIN=SHA256HEX: the CA key pin trusted for an origin (repeatable)")
@click.option("--federation-timeout", type=float, help="seconds before a cross-origin request fails (default 120)")
def start_cmd(**flags: object) -> None:
    """Start the node daemon (foreground); SIGINT/SIGTERM stop it gracefully."""
    loaded = settings_for(dict(flags))
    settings = loaded.settings
    if settings.origin is None:
        raise ConfigError("no origin: give --origin or set origin in config/node.toml")
    configure_logging(settings.log_format, settings.log_level)
    from node.runtime.daemon import run_daemon  # imported here: other commands stay quick to start

    sys.exit(run_daemon(settings))


COMMANDS = [start_cmd]

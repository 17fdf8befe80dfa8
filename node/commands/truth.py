"""`node truth load|show`: the truth document (see node/runtime/truth.py for its schema).

`load` validates first and changes nothing on a bad file.  It stores the document in
HOME/config/truth.json (the node reads it at start) and writes it to Redis when one is known: the
`--redis-url` (or NODE_REDIS_URL / node.toml) one, else the embedded Redis of a node running on the
home (it notices within a second).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import redis

from node.runtime.cli_support import OneLineCommand, OneLineGroup, redis_options, redis_target, settings_for
from node.runtime.errors import HomeError, RedisUnavailable
from node.runtime.home import Home
from node.runtime.redis_bridge import make_client
from node.runtime.redis_keys import RedisKeys
from node.runtime.truth import load_file
from node.runtime.truth_service import read_truth, write_truth


@click.group("truth", cls=OneLineGroup)
def truth_group() -> None:
    """Load or show the truth document (the node's shared configuration)."""


@truth_group.command("load", cls=OneLineCommand)
@click.argument("file", type=click.Path(dir_okay=False))
@redis_options
def truth_load(file: str, home: str | None, redis_url: str | None, namespace: str | None) -> None:
    """Validate FILE (JSON or TOML) and store it in the home and in Redis."""
    truth = load_file(Path(file))
    loaded = settings_for({"home": home, "redis_url": redis_url, "namespace": namespace})
    node_home = Home(loaded.settings.home)
    target = redis_target(loaded)
    store_home = node_home.key_file.exists() and (home is not None or redis_url is None)
    if target is None and not store_home:
        raise HomeError(f"nowhere to load the truth: {node_home.root} is not a node home and no --redis-url given")
    if target is not None:
        url, namespace = target
        client = make_client(url)
        try:
            write_truth(client, RedisKeys(namespace), truth)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise RedisUnavailable(f"cannot reach redis at {url}: {exc}") from None
        finally:
            client.close()
        click.echo(
            f"truth version {truth.version} written to redis {url}" + (f" (namespace {namespace})" if namespace else "")
        )
    if store_home:
        tmp = node_home.truth_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(truth.doc, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, node_home.truth_file)
        click.echo(f"truth version {truth.version} stored in {node_home.truth_file}")


@truth_group.command("show", cls=OneLineCommand)
@redis_options
def truth_show(home: str | None, redis_url: str | None, namespace: str | None) -> None:
    """Print the truth: from Redis when reachable, else the home's stored copy."""
    loaded = settings_for({"home": home, "redis_url": redis_url, "namespace": namespace})
    target = redis_target(loaded)
    if target is not None:
        url, namespace = target
        client = make_client(url)
        try:
            truth = read_truth(client, RedisKeys(namespace))
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise RedisUnavailable(f"cannot reach redis at {url}: {exc}") from None
        finally:
            client.close()
        if truth is not None:
            click.echo(f"# from redis {url}, version {truth.version}")
            click.echo(json.dumps(truth.doc, indent=2, sort_keys=True))
            return
    node_home = Home(loaded.settings.home)
    if node_home.truth_file.exists():
        truth = load_file(node_home.truth_file)
        click.echo(f"# from {node_home.truth_file}, version {truth.version}")
        click.echo(json.dumps(truth.doc, indent=2, sort_keys=True))
        return
    raise HomeError("no truth loaded (neither in redis nor in the home)")


COMMANDS = [truth_group]

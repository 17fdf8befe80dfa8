"""`node action keygen|send` and `node actions list`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from node.actions.builtin import BUILTIN
from node.actions.client import ActionClient
from node.crypto import KEY_TYPES, PrivateKey, read_private_key, write_private_key
from node.errors import InvalidInput


@click.group("action")
def action_group() -> None:
    """Make actor keys, and sign and send actions to a node."""


@action_group.command("keygen")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Key file to write (0600).")
@click.option("--type", "key_type", type=click.Choice(KEY_TYPES), default="ed25519", show_default=True)
def keygen(out: Path, key_type: str) -> None:
    """Generate an actor key; refuses to overwrite an existing file."""
    key = PrivateKey.generate("rsa-pss" if key_type == "rsa-pss" else "ed25519")
    write_private_key(out, key)
    click.echo(f"actor {key.fingerprint} ({key.key_type}) written to {out}")


def _parse_args(text: str) -> dict[str, Any]:
    def no_float(value: str) -> Any:
        raise InvalidInput(f"ARGS_JSON: floats are not allowed ({value}); use integers")

    try:
        args = json.loads(text, parse_float=no_float, parse_constant=no_float)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"ARGS_JSON is not valid JSON: {exc}") from exc
    if not isinstance(args, dict):
        raise InvalidInput("ARGS_JSON must be a JSON object")
    return args


@action_group.command("send")
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path), help="Actor key file.")
@click.option("--node", "node_url", required=True, help="Node API base URL, e.g. http://127.0.0.1:8080.")
@click.option("--origin", default=None, help="Origin to sign for (default: asked from the node).")
@click.option("--target", default=None, help="Run at another origin (federation).")
@click.option("--ttl", "ttl_s", type=click.IntRange(1, 86400), default=300, show_default=True,
              help="Seconds until the action expires.")
@click.option("--wait", is_flag=True, help="Wait for the receipt.")
@click.argument("path")
@click.argument("args_json", required=False, default="{}")
def send(key_path: Path, node_url: str, origin: str | None, target: str | None, ttl_s: int, wait: bool,
         path: str, args_json: str) -> None:
    """Sign PATH with ARGS_JSON (a JSON object) and send it to the node."""
    args = _parse_args(args_json)
    key = read_private_key(key_path)
    with ActionClient(key, node_url, clock=time.time_ns, origin=origin, ttl_ns=ttl_s * 10**9) as client:
        envelope = client.build(path, args, target=target)
        answer = client.send(envelope, wait=wait)
    click.echo(json.dumps({"action_id": envelope.action_id.hex(), "answer": answer}, sort_keys=True))


@click.group("actions")
def actions_group() -> None:
    """Inspect the action paths this node knows."""


@actions_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_actions(as_json: bool) -> None:
    """Show every action path with its guards and description."""
    specs = BUILTIN.specs()
    if as_json:
        rows = [{"path": s.path, "guards": s.guard_names, "executors": s.executors, "description": s.description}
                for s in specs]
        click.echo(json.dumps(rows, indent=2))
        return
    for s in specs:
        marker = " [executors]" if s.executors else ""
        click.echo(f"{s.path}{marker}\n  guards: {', '.join(s.guard_names)}\n  {s.description}")


COMMANDS: list[click.Command] = [action_group, actions_group]

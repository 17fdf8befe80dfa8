"""`node leave` and `node join`: membership changes of this node, decided by the origin's chain.

`node join --via URL` signs `/membership/join` with this home's key and its CA-issued certificate
(`keys/node.crt`), submits it to a member's API and waits until the origin has decided the round
from which this node is a member, then writes the committed peer-set history the member shows
(`/history`) to `HOME/config/membership.json`, and the origin's genesis.json (from `/genesispeers`)
when the home has none.  With them (and the CA certificate, `config/ca.crt`), `node start` runs the
joined node: it catches up and creates events from its round on.

`node leave` signs `/membership/remove` for its own key with the node key (from the home), submits it to the
running node's API, waits for the receipt, then until the origin has decided the round where the
removal is in force (R + 6, R the round received of the block that committed it).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click
import httpx

from node.actions.client import ActionClient
from node.actions.errors import ClientError
from node.commands.status import find_api
from node.config import resolve_home
from node.consensus.peers import MEMBERSHIP_DELAY_ROUNDS
from node.engine.genesis import parse_genesis
from node.engine.paths import issued_certificate_path
from node.errors import InvalidInput
from node.fileutil import write_atomically
from node.membership.joined import write_joined
from node.membership.state import JOIN_PATH, REMOVE_PATH
from node.runtime.cli_support import OneLineCommand, home_option
from node.runtime.home import Home


class LeaveFailed(InvalidInput):
    """The origin refused the change, or it did not take effect in time."""


def _get(url: str, timeout: float) -> Any:
    try:
        response = httpx.get(url, timeout=timeout)
        return response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def wait_until_decided(url: str, rnd: int, deadline: float, echo: Any = None) -> int:
    """Poll `/status` until the node's decided round reaches `rnd`; returns it."""
    last = -1
    while time.monotonic() < deadline:
        status = _get(url + "/status", 5.0)
        decided = status.get("decided_round") if isinstance(status, dict) else None
        if isinstance(decided, int):
            if decided != last and echo is not None:
                echo(f"decided round {decided} of {rnd}")
            last = decided
            if decided >= rnd:
                return decided
        time.sleep(0.5)  # a CLI polling a remote node: nothing to wait on but its answers
    raise LeaveFailed(f"round {rnd} was not decided in time (last decided: {last})")


def _commit_and_wait(url: str, client: ActionClient, path: str, args: dict[str, Any], deadline: float,
                     echo: Any) -> tuple[int, int]:
    """Submit, wait for an accepted receipt, then until R + 6 is decided; (block, effective round)."""
    envelope = client.build(path, args)
    try:
        receipt = client.send(envelope, wait=True)
    except ClientError as exc:
        raise LeaveFailed(str(exc)) from None
    if not isinstance(receipt, dict) or not receipt.get("ok"):
        reason = receipt.get("reason") if isinstance(receipt, dict) else None
        detail = receipt.get("detail") if isinstance(receipt, dict) else None
        raise LeaveFailed(f"the origin refused {path}: {reason}{f' ({detail})' if detail else ''}")
    index = int(receipt["block"])
    if echo is not None:
        echo(f"committed in block {index}")
    block = _get(f"{url}/block/{index}", 5.0)
    rnd = block.get("round_received") if isinstance(block, dict) else None
    if not isinstance(rnd, int):
        raise LeaveFailed(f"block {index} does not name its round received")
    effective = rnd + MEMBERSHIP_DELAY_ROUNDS
    if echo is not None:
        echo(f"in force from round {effective}")
    wait_until_decided(url, effective, deadline, echo)
    return index, effective


def join_origin(via: str, home_root: Path, *, address: str | None, timeout: float, echo: Any = None) -> dict[str, Any]:
    """Ask the origin, through the member at `via`, to add this home's node; waits until in force."""
    key = Home(home_root).load_key()
    cert_path = issued_certificate_path(home_root)
    try:
        cert = cert_path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise LeaveFailed(f"no CA-issued certificate at {cert_path} ({exc}): ask the origin CA first") from None
    args: dict[str, Any] = {"cert": cert}
    if address is not None:
        args["address"] = address
    deadline = time.monotonic() + timeout
    with ActionClient(key, via, clock=time.time_ns, timeout_s=timeout) as client:
        index, effective = _commit_and_wait(via, client, JOIN_PATH, args, deadline, echo)
    written = save_history(via, home_root, key.public, effective)
    if echo is not None:
        echo(f"peer-set history written to {written}")
    return {"block": index, "effective_round": effective, "node_id": key.fingerprint, "history": str(written)}


def save_history(via: str, home_root: Path, own_key: bytes, effective: int) -> Path:
    """Fetch the committed peer-set history from the member and keep it in the home: the engine
    schedules it before catching up (a joiner is not in genesis.json)."""
    status, history = _get(via + "/status", 10.0), _get(via + "/history", 10.0)
    rows = history.get("history") if isinstance(history, dict) else None
    origin = status.get("origin") if isinstance(status, dict) else None
    if not isinstance(rows, list) or not isinstance(origin, str):
        raise LeaveFailed(f"{via} did not answer /status and /history: start this node after fetching them")
    mine = [r for r in rows if isinstance(r, dict) and r.get("effective_round") == effective
            and own_key.hex() in (r.get("members") or [])]
    if not mine:
        raise LeaveFailed(f"{via}/history does not show this node in the peer set from round {effective} yet")
    config = Home(home_root).config_file.parent
    fetch_genesis(via, config / "genesis.json", origin)
    return write_joined(config, origin, rows)


def fetch_genesis(via: str, path: Path, origin: str) -> None:
    """Write the origin's genesis.json from the member's `/genesispeers` when the home has none
    (an existing one is kept: the engine checks it names the same origin)."""
    if path.exists():
        return
    answer = _get(via + "/genesispeers", 10.0)
    if not isinstance(answer, dict) or answer.get("origin") != origin or not isinstance(answer.get("peers"), list):
        raise LeaveFailed(f"{via}/genesispeers did not give the genesis of {origin}: copy genesis.json from a member")
    genesis = parse_genesis(json.dumps({"origin": origin, "members": answer["peers"]}), f"{via}/genesispeers")
    write_atomically(path, genesis.to_json().encode())


def leave_origin(url: str, home_root: Path, *, timeout: float, echo: Any = None) -> dict[str, Any]:
    """Submit the removal of this node and wait until it is in force; returns a summary."""
    key = Home(home_root).load_key()
    deadline = time.monotonic() + timeout
    with ActionClient(key, url, clock=time.time_ns, timeout_s=timeout) as client:
        index, effective = _commit_and_wait(url, client, REMOVE_PATH, {"peer": key.public.hex()}, deadline, echo)
    return {"block": index, "effective_round": effective, "node_id": key.fingerprint}


@click.command("leave", cls=OneLineCommand)
@home_option
@click.option("--api", "api", metavar="URL", help="the node API base URL (default: read HOME/run/api)")
@click.option("--timeout", type=click.FloatRange(min=1, max=3600), default=120.0, show_default=True,
              help="seconds to wait for the removal to be in force")
def leave(home: str | None, api: str | None, timeout: float) -> None:
    """Remove this node from its origin's peer set (from round R+6) and wait until it is in force."""
    url = find_api(home, api)
    root, _ = resolve_home(home, os.environ)
    done = leave_origin(url, Path(root), timeout=timeout, echo=click.echo)
    click.echo(f"left: node {done['node_id']} is out of the peer set from round {done['effective_round']}")


@click.command("join", cls=OneLineCommand)
@home_option
@click.option("--via", "via", required=True, metavar="URL", help="the API base URL of a member of the origin")
@click.option("--address", metavar="HOST:PORT", help="where the members reach this node (its listen address)")
@click.option("--timeout", type=click.FloatRange(min=1, max=3600), default=120.0, show_default=True,
              help="seconds to wait for the join to be in force")
def join(home: str | None, via: str, address: str | None, timeout: float) -> None:
    """Ask the origin (through a member) to add this node from round R+6; waits until it is in force."""
    root, _ = resolve_home(home, os.environ)
    done = join_origin(via.rstrip("/"), Path(root), address=address, timeout=timeout, echo=click.echo)
    click.echo(f"joined: node {done['node_id']} is a member from round {done['effective_round']}")


COMMANDS = [leave, join]

"""`node status`: ask the running node's API how it is doing.

The node is found through `HOME/run/api` (written while it runs) unless `--api URL` is given.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click
import httpx

from node.config import resolve_home
from node.errors import InvalidInput
from node.runtime.cli_support import OneLineCommand, home_option
from node.runtime.home import Home


class NoNodeRunning(InvalidInput):
    """No API file in the home, or the API there does not answer."""


def find_api(home: str | None, api: str | None) -> str:
    if api:
        return api.rstrip("/")
    root, _ = resolve_home(home, os.environ)
    try:
        url = Home(root).api_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise NoNodeRunning(f"no node is running on {root} (no run/api); start one with `node start`") from None
    except OSError as exc:
        raise NoNodeRunning(f"cannot read {Home(root).api_file}: {exc.strerror}") from None
    if not url.startswith(("http://", "https://")):
        raise NoNodeRunning(f"{Home(root).api_file} does not hold an API URL")
    return url.rstrip("/")


def fetch_status(url: str, timeout: float) -> dict[str, Any]:
    try:
        response = httpx.get(url + "/status", timeout=timeout)
        body = response.json()
    except httpx.HTTPError as exc:
        raise NoNodeRunning(f"the node API at {url} does not answer ({type(exc).__name__})") from None
    except ValueError:
        raise NoNodeRunning(f"{url}/status did not answer JSON") from None
    if response.status_code != 200 or not isinstance(body, dict):
        raise NoNodeRunning(f"{url}/status answered {response.status_code}")
    return body


def render(status: dict[str, Any], url: str) -> str:
    def show(value: Any) -> str:
        return "-" if value is None else str(value)

    rows = [
        ("node", status.get("node_id")),
        ("origin", status.get("origin")),
        ("phase", f"{show(status.get('phase'))}{'' if status.get('ready') else ' (not ready)'}"),
        ("latest block", status.get("latest_block")),
        ("latest round", f"{show(status.get('latest_round'))} (decided {show(status.get('decided_round'))})"),
        ("catching up", "yes" if status.get("catching_up") else "no"),
        ("peers", status.get("peers")),
        ("version", status.get("version")),
        ("api", url),
    ]
    return "\n".join(f"{name:<13} {show(value)}" for name, value in rows)


@click.command("status", cls=OneLineCommand)
@home_option
@click.option("--api", "api", metavar="URL", help="the node API base URL (default: read HOME/run/api)")
@click.option("--json", "as_json", is_flag=True, help="print the /status document as JSON")
@click.option("--timeout", type=click.FloatRange(min=0.1, max=60), default=5.0, show_default=True,
              help="seconds to wait for the node")
def status(home: str | None, api: str | None, as_json: bool, timeout: float) -> None:
    """Show the running node's phase, latest block and round, and peers."""
    url = find_api(home, api)
    doc = fetch_status(url, timeout)
    click.echo(json.dumps(doc, indent=2, sort_keys=True) if as_json else render(doc, url))


COMMANDS = [status]

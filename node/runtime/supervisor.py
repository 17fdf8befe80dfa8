"""Starts services in one nursery, in the order and manner of the truth's `startup` section.

- blocking: must report ready (call `task_status.started()`) within `grace_timeout_sec` before any
  later component starts; a miss is fatal (`StartupFailed`).
- async: started at once and independently; a miss of the grace timeout is reported, not fatal.
- federated: waits for `ctx.mesh_ready`, then starts like an async component.

Every running service gets a heartbeat: `{svc}:heartbeat` (pub/sub JSON `{"svc","i","ts"}`) and
`svc:hb:{svc}` (a key with a TTL), skipped while the service's optional `healthy()` is False.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis
import trio

from node.runtime.errors import StartupFailed
from node.runtime.logs import get_logger
from node.runtime.redis_bridge import RedisBridge
from node.runtime.service import Service
from node.runtime.status import NodeStatus
from node.runtime.truth import Component

log = get_logger("runtime.supervisor")


async def heartbeat_loop(
    bridge: RedisBridge,
    name: str,
    interval: Callable[[], float],
    healthy: Callable[[], bool] | None = None,
) -> None:
    channel, key = bridge.keys.heartbeat_channel(name), bridge.keys.svc_hb(name)
    i = 0
    while True:
        period = interval()
        if healthy is None or healthy():
            i += 1
            payload = json.dumps({"svc": name, "i": i, "ts": time.time()})
            ttl_ms = int(max(3 * period, 1.0) * 1000)

            def beat(client: redis.Redis, payload: str = payload, ttl_ms: int = ttl_ms) -> None:
                pipe = client.pipeline(transaction=False)
                pipe.publish(channel, payload)
                pipe.set(key, payload, px=ttl_ms)
                pipe.execute()

            await bridge.try_call(beat)
        await trio.sleep(period)


class Supervisor:
    def __init__(
        self,
        *,
        plan: list[tuple[Component, Service | None]],
        grace: float,
        bridge: RedisBridge,
        status: NodeStatus,
        interval_for: Callable[[str], float],
        mesh_ready: trio.Event,
    ) -> None:
        self.plan = plan
        self.grace = grace
        self.bridge = bridge
        self.status = status
        self.interval_for = interval_for
        self.mesh_ready = mesh_ready
        self._running: list[tuple[str, trio.CancelScope, trio.Event]] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        for component, service in self.plan:
            self.status.set_service(component.name, "waiting" if service else "unknown", component.kind)
        async with trio.open_nursery() as nursery:
            for component, service in self.plan:
                if service is None:
                    log.warning("startup component has no registered service", component=component.name)
                    continue
                if component.kind == "blocking":
                    await self._start_blocking(nursery, service)
                elif component.kind == "async":
                    nursery.start_soon(self._start_watched, service, None)
                else:
                    nursery.start_soon(self._start_watched, service, self.mesh_ready)
            task_status.started()

    async def _start_blocking(self, nursery: trio.Nursery, service: Service) -> None:
        self.status.set_service(service.name, "starting")
        with trio.move_on_after(self.grace):
            await nursery.start(self._host, service)
            return
        self.status.set_service(service.name, "missed")
        raise StartupFailed(f"blocking component {service.name!r} was not ready within {self.grace:g} s")

    async def _start_watched(self, service: Service, gate: trio.Event | None) -> None:
        if gate is not None:
            await gate.wait()
        self.status.set_service(service.name, "starting")
        ready = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._grace_watch, service.name, ready)
            await nursery.start(self._host, service)
            ready.set()

    async def _grace_watch(self, name: str, ready: trio.Event) -> None:
        with trio.move_on_after(self.grace):
            await ready.wait()
            return
        self.status.set_service(name, "missed")
        log.warning("component missed its startup grace timeout; still waiting for it", component=name)

    async def stop(self, per_service: float = 1.0) -> None:
        """Graceful shutdown: cancel services in reverse start order, each after the later ones ended
        (so `redis` stops last and the others can still say goodbye through it).  Services still
        starting are left to the caller's final cancellation."""
        for name, scope, done in reversed(self._running):
            if self.status.services.get(name) != "ready":
                continue  # not started yet: cancelling it here would look like "exited without started"
            scope.cancel()
            with trio.move_on_after(per_service):
                await done.wait()
            if not done.is_set():
                log.warning("service did not stop in time", svc=name)

    async def _host(self, service: Service, *, task_status: trio.TaskStatus[None]) -> None:
        """Run one service and its heartbeat; the heartbeat ends when the service does."""
        healthy: Any = getattr(service, "healthy", None)
        scope, done = trio.CancelScope(), trio.Event()
        self._running.append((service.name, scope, done))
        try:
            with scope:
                await self._host_inner(service, healthy, task_status)
        finally:
            done.set()

    async def _host_inner(self, service: Service, healthy: Any, task_status: trio.TaskStatus[None]) -> None:
        try:
            async with trio.open_nursery() as inner:

                async def run_then_stop(*, task_status: trio.TaskStatus[Any]) -> None:
                    await service.run(task_status=task_status)
                    inner.cancel_scope.cancel()

                await inner.start(run_then_stop)
                self.status.set_service(service.name, "ready")
                log.info("service ready", svc=service.name)
                task_status.started()
                inner.start_soon(
                    heartbeat_loop, self.bridge, service.name, lambda: self.interval_for(service.name), healthy
                )
        except Exception as exc:
            self.status.set_service(service.name, "failed")
            log.error("service failed", svc=service.name, error=repr(exc))
            raise
        self.status.set_service(service.name, "stopped")

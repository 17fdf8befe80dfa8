"""The supervisor with a real Redis: start order by kind, grace misses, mesh gating, heartbeats, stop order."""

from __future__ import annotations

import json

import pytest
import redis
import trio

from node.runtime.errors import StartupFailed
from node.runtime.phases import PhaseMachine
from node.runtime.redis_bridge import RedisBridge
from node.runtime.redis_keys import RedisKeys
from node.runtime.status import NodeStatus
from node.runtime.supervisor import Supervisor
from node.runtime.truth import Component


class Recorder:
    """A real (trivial) service: reports ready after `delay`, or never."""

    def __init__(self, name: str, kind: str, events: list[str], delay: float = 0.0, never: bool = False) -> None:
        self.name, self.kind, self.events, self.delay, self.never = name, kind, events, delay, never

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.events.append(f"start {self.name}")
        try:
            if self.never:
                await trio.sleep_forever()
            await trio.sleep(self.delay)
            self.events.append(f"ready {self.name}")
            task_status.started()
            await trio.sleep_forever()
        finally:
            self.events.append(f"stop {self.name}")


async def poll(fn, what: str, limit: float = 5.0):
    """Poll a blocking Redis read with a deadline."""
    with trio.fail_after(limit):
        for _ in range(100_000):
            value = await trio.to_thread.run_sync(fn)
            if value:
                return value
            await trio.sleep(0.02)
    raise AssertionError(what)


def make(plan: list[Recorder], url: str, grace: float = 0.5, namespace: str = "t") -> tuple[Supervisor, NodeStatus]:
    status = NodeStatus("n1", PhaseMachine())
    bridge = RedisBridge(url, RedisKeys(namespace))
    sup = Supervisor(
        plan=[(Component(s.name, s.kind), s) for s in plan],
        grace=grace,
        bridge=bridge,
        status=status,
        interval_for=lambda _svc: 0.05,
        mesh_ready=trio.Event(),
    )
    return sup, status


async def test_start_order_misses_and_mesh_gate(redis_server: str) -> None:
    events: list[str] = []
    services = [
        Recorder("a", "blocking", events, delay=0.1),
        Recorder("slow", "async", events, never=True),
        Recorder("b", "blocking", events),
        Recorder("fed", "federated", events),
    ]
    sup, status = make(services, redis_server, grace=0.4)
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        # blocking a was ready before anything later started; async slow did not hold b back
        assert events.index("ready a") < events.index("start b")
        assert "ready b" in events and "ready slow" not in events
        assert "start fed" not in events and status.services["fed"] == "waiting"
        with trio.fail_after(5):
            while status.services["slow"] != "missed":
                await status.changed.wait()
        assert status.overall == "degraded" and status.services["b"] == "ready"
        sup.mesh_ready.set()
        with trio.fail_after(5):
            while status.services.get("fed") != "ready":
                await status.changed.wait()
        await poll(lambda: client.get("t:svc:hb:fed"), "fed's heartbeat key")
        beat = json.loads(await trio.to_thread.run_sync(client.get, "t:svc:hb:fed") or "{}")
        assert beat.get("svc") == "fed" and beat["i"] >= 1
        assert await trio.to_thread.run_sync(client.pttl, "t:svc:hb:a") > 0
        assert await trio.to_thread.run_sync(client.get, "t:svc:hb:slow") is None  # never ready: no heartbeat
        await sup.stop(per_service=1.0)
        nursery.cancel_scope.cancel()
    stops = [e for e in events if e.startswith("stop")]
    assert stops.index("stop fed") < stops.index("stop b") < stops.index("stop a")  # reverse start order
    client.close()


async def test_blocking_miss_is_fatal(redis_server: str) -> None:
    events: list[str] = []
    sup, status = make(
        [Recorder("stuck", "blocking", events, never=True), Recorder("after", "async", events)], redis_server, grace=0.2
    )
    with (
        pytest.RaisesGroup(StartupFailed, flatten_subgroups=True)
        if hasattr(pytest, "RaisesGroup")
        else pytest.raises(BaseExceptionGroup)
    ):
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                await nursery.start(sup.run)
    assert "start after" not in events and status.services["stuck"] == "missed"

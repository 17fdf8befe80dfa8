"""Component `node`: the node's own presence in Redis.

Keeps `truth:heartbeat:{node_id}` fresh (a key with a TTL), adds the node to `truth:mesh:nodes`
(and to `truth:mesh:ready` once the mesh is ready, i.e. from phase `consensus` on),
keeps `svc:list` and `svc:cfg:{svc}`, and publishes every status change (phase transitions,
services becoming ready) to `truth:system:startup_status` (key = latest JSON, channel = each change).
All of it is written again when Redis comes back after an outage.
"""

from __future__ import annotations

import json
import os
import time

import redis
import trio

from node.runtime.errors import RedisUnavailable
from node.runtime.logs import get_logger
from node.runtime.redis_bridge import RedisBridge
from node.runtime.status import NodeStatus

log = get_logger("runtime.node")


class NodeService:
    name = "node"
    kind = "async"

    def __init__(
        self,
        bridge: RedisBridge,
        status: NodeStatus,
        interval: float,
        meta: dict[str, str],
        mesh_ready: trio.Event | None = None,
    ) -> None:
        self.bridge = bridge
        self.mesh_ready = mesh_ready
        self.status = status
        self.interval = interval
        self.meta = meta  # origin, listen, api: shown to local tools
        bridge.on_republish(self.publish_all)

    async def publish_all(self) -> None:
        keys = self.bridge.keys
        snapshot = self.status.snapshot()
        text = json.dumps(snapshot)
        node_id = self.status.node_id
        beat = json.dumps(
            {"node": node_id, "phase": snapshot["phase"], "pid": os.getpid(), "ts": time.time(), **self.meta}
        )
        ttl_ms = int(max(3 * self.interval, 2.0) * 1000)
        services = dict(self.status.services)
        mesh_ready = self.mesh_ready is not None and self.mesh_ready.is_set()
        kinds = dict(self.status.kinds)

        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            pipe.set(keys.node_heartbeat(node_id), beat, px=ttl_ms)
            pipe.sadd(keys.mesh_nodes, node_id)
            if mesh_ready:
                pipe.sadd(keys.mesh_ready, node_id)
            if services:
                pipe.sadd(keys.svc_list, *services)
            for name, state in services.items():
                cfg = {"svc": name, "kind": kinds.get(name, "async"), "state": state, "node": node_id}
                pipe.set(keys.svc_cfg(name), json.dumps(cfg))
            pipe.set(keys.startup_status, text)
            pipe.publish(keys.startup_status, text)
            pipe.execute()

        await self.bridge.call(write)

    async def _beat(self) -> None:
        keys = self.bridge.keys
        node_id = self.status.node_id
        beat = json.dumps(
            {
                "node": node_id,
                "phase": self.status.phases.phase.value,
                "pid": os.getpid(),
                "ts": time.time(),
                **self.meta,
            }
        )
        ttl_ms = int(max(3 * self.interval, 2.0) * 1000)
        await self.bridge.call(lambda c: c.set(keys.node_heartbeat(node_id), beat, px=ttl_ms))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        changed = self.status.changed
        try:
            await self.publish_all()
        except RedisUnavailable:
            pass
        task_status.started()
        try:
            while True:
                with trio.move_on_after(self.interval) as scope:
                    await changed.wait()
                try:
                    if scope.cancelled_caught:
                        await self._beat()
                    else:
                        changed = self.status.changed  # taken before publishing: a change meanwhile is not lost
                        await self.publish_all()
                except RedisUnavailable:
                    pass
        finally:
            await self._farewell()

    async def _farewell(self) -> None:
        """Best effort at shutdown: say we are stopping and leave the mesh set."""
        keys = self.bridge.keys
        self.status.set_stopping()
        text = json.dumps(self.status.snapshot())
        node_id = self.status.node_id

        def write(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            pipe.set(keys.startup_status, text)
            pipe.publish(keys.startup_status, text)
            pipe.srem(keys.mesh_nodes, node_id)
            pipe.srem(keys.mesh_ready, node_id)
            pipe.delete(keys.node_heartbeat(node_id))
            pipe.execute()

        with trio.move_on_after(0.5, shield=True):
            await self.bridge.try_call(write)

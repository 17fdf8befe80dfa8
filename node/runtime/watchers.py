"""The healer and the sentinel: thin Redis shells around `HeartbeatMonitor`.

The healer subscribes to the `{svc}:heartbeat` channels named in the truth's `heartbeat.channels`,
publishes `heartbeat_miss` / `heartbeat_ok` on `healer:alerts`, writes `health:{svc}`, and keeps
the key `healer:heartbeat` fresh (its pub/sub heartbeat is the usual `healer:heartbeat` channel).
The sentinel watches that channel and publishes `healer_miss` / `healer_ok`.  Every alert is also
appended to the stream `log:healer:stream`, so a reader that subscribes late still sees it.
After a lost connection the monitor is reset: the warm-up starts again and the first beat of each
channel is reported as ok.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis
import trio

from node.runtime.errors import RedisUnavailable
from node.runtime.health import HealthEvent, HeartbeatMonitor, Watch
from node.runtime.logs import get_logger
from node.runtime.redis_bridge import RedisBridge
from node.runtime.truth_holder import TruthHolder

log = get_logger("runtime.healer")


class ChannelWatcher:
    kind = "async"

    def __init__(
        self,
        name: str,
        bridge: RedisBridge,
        watches: Callable[[], list[Watch]],
        *,
        alert_prefix: str,
        node_id: str | None = None,
        own_key_interval: Callable[[], float] | None = None,
    ) -> None:
        self.name = name
        self.bridge = bridge
        self.watches = watches
        self.alert_prefix = alert_prefix  # "heartbeat" -> heartbeat_miss / heartbeat_ok
        self.node_id = node_id
        self.own_key_interval = own_key_interval
        self._tick = 0.0
        self._key_set_at = -1e9

    def healthy(self) -> bool:
        return trio.current_time() - self._tick < 3.0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._tick = trio.current_time()
        monitor = HeartbeatMonitor(self.watches(), trio.current_time())
        started = False
        delay = 0.1
        while True:
            pubsub: Any = self.bridge.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                watches = self.watches()
                channels = await self._subscribe(pubsub, watches)
                monitor.configure(watches, trio.current_time())
                monitor.reset(trio.current_time())
                if not started:
                    task_status.started()
                    started = True
                delay = 0.1
                await self._loop(pubsub, monitor, watches, channels)
            except RedisUnavailable:
                pass
            finally:
                pubsub.close()
            if not started:  # Redis down at start: we are still a running watcher, just blind for now
                task_status.started()
                started = True
            self._tick = trio.current_time()
            await trio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _subscribe(self, pubsub: Any, watches: list[Watch]) -> dict[str, str]:
        channels = {self.bridge.keys.heartbeat_channel(w.name): w.name for w in watches}

        def subscribe(_: redis.Redis) -> None:
            if pubsub.channels:
                pubsub.unsubscribe()
            if channels:
                pubsub.subscribe(*channels)

        await self.bridge.call(subscribe)
        return channels

    async def _loop(
        self, pubsub: Any, monitor: HeartbeatMonitor, watches: list[Watch], channels: dict[str, str]
    ) -> None:
        while True:
            now = trio.current_time()
            self._tick = now
            current = self.watches()
            if current != watches:  # the truth changed: follow the new channel list, keep known states
                watches = current
                channels = await self._subscribe(pubsub, watches)
                monitor.configure(watches, now)
            await self._own_key(now)
            deadline = monitor.next_deadline()
            timeout = 0.25 if deadline is None else max(0.01, min(0.25, deadline - now))

            def receive(_: redis.Redis, wait: float = timeout) -> dict[str, Any] | None:
                result: dict[str, Any] | None = pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
                return result

            message = await self.bridge.call(receive)
            now = trio.current_time()
            events: list[HealthEvent] = []
            if message is not None and message.get("type") == "message":
                name = channels.get(str(message.get("channel")))
                if name is not None:
                    events += monitor.observe(name, now)
            events += monitor.check(now)
            for event in events:
                await self._report(event)

    async def _own_key(self, now: float) -> None:
        if self.own_key_interval is None:
            return
        interval = self.own_key_interval()
        if now - self._key_set_at < interval:
            return
        self._key_set_at = now
        key = self.bridge.keys.healer_heartbeat
        payload = json.dumps({"svc": self.name, "ts": time.time(), "node": self.node_id})
        ttl_ms = int(max(3 * interval, 1.0) * 1000)
        await self.bridge.call(lambda c: c.set(key, payload, px=ttl_ms))

    async def _report(self, event: HealthEvent) -> None:
        keys = self.bridge.keys
        alert = {
            "type": f"{self.alert_prefix}_{event.status}",
            "svc": event.name,
            "ts": time.time(),
            "silent_for": None if event.silent_for is None else round(event.silent_for, 3),
            "by": self.name,
            "node": self.node_id,
        }
        text = json.dumps(alert)
        health = json.dumps({"status": event.status, "ts": alert["ts"], "silent_for": alert["silent_for"]})

        def publish(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            pipe.publish(keys.healer_alerts, text)
            pipe.set(keys.health(event.name), health)
            pipe.xadd(keys.log_stream("healer"), {"alert": text}, maxlen=1000, approximate=True)
            pipe.execute()

        emit = log.warning if event.status == "miss" else log.info
        emit(alert["type"], svc=event.name, silent_for=alert["silent_for"], by=self.name)
        await self.bridge.call(publish)


def make_healer(bridge: RedisBridge, truth: TruthHolder, node_id: str | None = None) -> ChannelWatcher:
    def watches() -> list[Watch]:
        return [Watch(c.svc, c.interval_sec, c.timeout_sec) for c in truth.current.channels]

    return ChannelWatcher(
        "healer",
        bridge,
        watches,
        alert_prefix="heartbeat",
        node_id=node_id,
        own_key_interval=lambda: truth.current.healer_interval_sec,
    )


def make_sentinel(bridge: RedisBridge, truth: TruthHolder, node_id: str | None = None) -> ChannelWatcher:
    def watches() -> list[Watch]:
        return [Watch("healer", truth.current.healer_interval_sec, truth.current.healer_timeout_sec)]

    return ChannelWatcher("sentinel", bridge, watches, alert_prefix="healer", node_id=node_id)

"""Component `truth`: keeps the node's truth and the Redis copy (`truth:doc|version|ts`) in step.

Where a truth comes from: `node truth load FILE --home H` always stores the validated document in
`H/config/truth.json` and, when a node is running on H (or `--redis-url` is given), writes it to
that Redis too.  At start the node takes the home file (or the built-in default, version 0); this
service then adopts a Redis truth of a higher-or-equal version, writes ours when Redis has none or
an older one (e.g. after the embedded Redis restarted empty), and polls for updates every second.
"""

from __future__ import annotations

import time

import redis
import trio

from node.runtime.errors import RedisUnavailable, TruthInvalid
from node.runtime.logs import get_logger
from node.runtime.redis_bridge import RedisBridge
from node.runtime.redis_keys import RedisKeys
from node.runtime.truth import Truth, parse_text, validate
from node.runtime.truth_holder import TruthHolder

log = get_logger("runtime.truth")


def write_truth(client: redis.Redis, keys: RedisKeys, truth: Truth) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.truth_doc, truth.to_json())
    pipe.set(keys.truth_version, truth.version)
    pipe.set(keys.truth_ts, f"{time.time():.6f}")
    pipe.execute()


def read_truth(client: redis.Redis, keys: RedisKeys) -> Truth | None:
    """The Redis truth; None when absent.  TruthInvalid when someone wrote a bad document."""
    text = client.get(keys.truth_doc)
    if text is None:
        return None
    return validate(parse_text(str(text), hint=".json"), allow_default=True)


class TruthService:
    name = "truth"

    def __init__(
        self, bridge: RedisBridge, holder: TruthHolder, *, kind: str = "async", poll: float = 1.0, writer: bool = True
    ) -> None:
        self.bridge = bridge
        self.holder = holder
        self.kind = kind
        self.poll = poll
        self.writer = writer  # standalone healers only read
        self._bad_logged = False
        bridge.on_republish(self.sync)

    async def sync(self) -> None:
        """One reconciliation step; raises RedisUnavailable during an outage."""
        keys = self.bridge.keys
        try:
            remote = await self.bridge.call(lambda c: read_truth(c, keys))
            self._bad_logged = False
        except TruthInvalid as exc:
            if not self._bad_logged:
                log.warning("truth in redis is invalid; keeping the current one", error=str(exc))
                self._bad_logged = True
            return
        local = self.holder.current
        if remote is None or (remote.version < local.version and self.holder.source != "redis"):
            if self.writer:
                await self.bridge.call(lambda c: write_truth(c, keys, local))
            return
        if (remote.version >= local.version or self.holder.source == "redis") and self.holder.set(remote, "redis"):
            log.info("truth updated", version=remote.version)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        while True:
            try:
                await self.sync()
            except RedisUnavailable:
                pass
            if self.kind != "blocking" or self.holder.loaded.is_set():
                break
            await trio.sleep(min(self.poll, 0.2))
        task_status.started()
        while True:
            await trio.sleep(self.poll)
            try:
                await self.sync()
            except RedisUnavailable:
                pass

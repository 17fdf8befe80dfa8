"""A signed-action workload against real nodes: many actors, one global rate, spread over nodes.

Each actor registers (`/users/create`), creates its own point and then posts signals to it, with
increasing nonces, always waiting for the previous answer so its nonces reach a node in order.
Actors are pinned to one node of their origin and move to the next node when theirs does not
answer (crashed, paused).  A share of the actions is sent with `?wait=true`: the time from
submit to the final receipt is their latency.  Every acknowledged action id is remembered so
the end check can prove none was lost.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from node.actions import Envelope
from node.crypto import PrivateKey
from simulations.local_cluster import LocalCluster, NodeProcess

EXPIRY_S = 1800
WIRE_HEADERS = {"content-type": "application/octet-stream"}


@dataclass
class Actor:
    index: int
    origin: str
    key: PrivateKey
    node_slot: int
    nonce: int = 0

    def next_action(self) -> tuple[str, dict[str, Any]]:
        self.nonce += 1
        if self.nonce == 1:
            return "/users/create", {"name": f"actor{self.index}"}
        if self.nonce == 2:
            return "/points/create", {"point": f"p{self.index}"}
        return "/signals/post", {"point": f"p{self.index}", "body": {"n": self.nonce}}


class RateLimiter:
    """One global pace: slot k is at start + k/rate; callers queue on a fair trio.Lock."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_slot = 0.0
        self.lock = trio.Lock()

    async def take(self) -> None:
        async with self.lock:
            now = trio.current_time()
            self.next_slot = max(self.next_slot, now)
            slot = self.next_slot
            self.next_slot += self.interval
        await trio.sleep_until(slot)


@dataclass
class WorkloadStats:
    submitted: int = 0
    acked: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # HTTP status or error class -> count
    latencies: list[float] = field(default_factory=list)  # submit -> final receipt, seconds
    ack_latencies: list[float] = field(default_factory=list)  # submit -> 202, seconds
    receipts_ok: int = 0
    receipts_rejected: Counter[str] = field(default_factory=Counter)
    acked_at: list[float] = field(default_factory=list)  # seconds since the workload began
    acked_ids: dict[str, set[str]] = field(default_factory=dict)  # origin -> action ids answered 202/200
    acked_by: dict[str, tuple[str, float, str]] = field(default_factory=dict)  # id -> (node, t, path)


class Workload:
    def __init__(self, cluster: LocalCluster, client: httpx.AsyncClient, *, rate: float, actors: int,
                 wait_share: float, seed: int = 1, wait_timeout: float = 60.0) -> None:
        self.cluster = cluster
        self.client = client
        self.rate = rate
        self.wait_share = wait_share
        self.wait_timeout = wait_timeout
        self.rng = random.Random(seed)
        self.stats = WorkloadStats(acked_ids={o: set() for o in cluster.origins})
        origins = cluster.origins
        self.actors = [
            Actor(i, origins[i % len(origins)], PrivateKey.from_seed(f"sim-actor-{seed}-{i}".encode()),
                  node_slot=i // len(origins))
            for i in range(actors)
        ]
        self.started = 0.0

    def node_for(self, actor: Actor) -> NodeProcess:
        nodes = self.cluster.of(actor.origin)
        return nodes[actor.node_slot % len(nodes)]

    async def run(self, duration: float) -> None:
        limiter = RateLimiter(self.rate)
        self.started = trio.current_time()
        with trio.move_on_after(duration):
            async with trio.open_nursery() as nursery:
                for actor in self.actors:
                    nursery.start_soon(self._drive, actor, limiter)

    async def _drive(self, actor: Actor, limiter: RateLimiter) -> None:
        while True:
            await limiter.take()
            path, args = actor.next_action()
            env = Envelope.sign(actor.key, origin=actor.origin, path=path, args=args, nonce=actor.nonce,
                                expiry_ns=time.time_ns() + EXPIRY_S * 10**9)
            wait = actor.nonce <= 2 or self.rng.random() < self.wait_share
            if not await self._send(actor, env, wait):
                actor.node_slot += 1  # that node did not answer: try the next one of the origin
                await trio.sleep(0.2)

    async def _send(self, actor: Actor, env: Envelope, wait: bool) -> bool:
        """False when the node did not answer (the actor should move on to another node)."""
        node = self.node_for(actor)
        url = node.api + "/actions" + (f"?wait=true&timeout={self.wait_timeout:g}" if wait else "")
        self.stats.submitted += 1
        t0 = trio.current_time()
        try:
            response = await self.client.post(url, content=env.to_wire(), headers=WIRE_HEADERS,
                                              timeout=self.wait_timeout + 10 if wait else 10)
        except httpx.HTTPError as exc:
            self.stats.refused[type(exc).__name__] += 1
            return False
        code = response.status_code
        if code == 202:
            self.stats.ack_latencies.append(trio.current_time() - t0)
        if code in (200, 202) or (code == 504 and wait):
            self._acked(actor.origin, env.action_id.hex(), t0, node.name, env.path)
            if code == 200:
                self.stats.latencies.append(trio.current_time() - t0)
                receipt = response.json()
                if receipt.get("ok"):
                    self.stats.receipts_ok += 1
                else:
                    self.stats.receipts_rejected[str(receipt.get("reason"))] += 1
            elif code == 504:
                self.stats.refused["504 no receipt in time"] += 1
            return True
        self.stats.refused[str(code)] += 1
        if code == 503:
            await trio.sleep(0.2)  # a full pool is back-pressure from a live node: stay, slow down
        return True

    def _acked(self, origin: str, action_id: str, t0: float, node: str, path: str) -> None:
        self.stats.acked += 1
        self.stats.acked_by[action_id] = (node, round(t0 - self.started, 2), path)
        self.stats.acked_ids[origin].add(action_id)
        self.stats.acked_at.append(t0 - self.started)

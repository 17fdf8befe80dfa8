"""Watching running nodes: /status once a second and each node's chain fetched incrementally.

The chain copy (block hash, state hash, action ids per index) feeds the live table, the
throughput series and, at the end, the agreement and no-loss checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from simulations.local_cluster import LocalCluster, NodeProcess

PAGE = 50
MAX_PAGES_PER_TICK = 20


@dataclass
class BlockRow:
    index: int
    hash: str
    state_hash: str
    action_ids: list[str]


@dataclass
class NodeWatch:
    node: NodeProcess
    status: dict[str, Any] = field(default_factory=dict)
    reachable: bool = False
    chain: list[BlockRow] = field(default_factory=list)
    committed: int = 0  # transactions in the fetched chain
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, committed, latest_block)
    errors: list[str] = field(default_factory=list)

    @property
    def latest_block(self) -> int:
        value = self.status.get("latest_block")
        return -1 if value is None else int(value)

    async def get(self, client: httpx.AsyncClient, path: str) -> httpx.Response:
        response = await client.get(self.node.api + path, timeout=5)
        response.raise_for_status()
        return response

    def rate(self, window: float = 5.0) -> float:
        """Committed actions per second over the last `window` seconds of samples."""
        if len(self.samples) < 2:
            return 0.0
        t_end, c_end, _ = self.samples[-1]
        for t, c, _ in self.samples:
            if t_end - t <= window:
                return (c_end - c) / (t_end - t) if t_end > t else 0.0
        return 0.0


class Monitor:
    def __init__(self, cluster: LocalCluster, client: httpx.AsyncClient, every: float = 1.0) -> None:
        self.cluster = cluster
        self.client = client
        self.every = every
        self.watches = {n.name: NodeWatch(n) for n in cluster.nodes}
        self.started = trio.current_time()

    def elapsed(self) -> float:
        return trio.current_time() - self.started

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self.tick()
            await trio.sleep(self.every)

    async def tick(self) -> None:
        async with trio.open_nursery() as nursery:
            for watch in self.watches.values():
                nursery.start_soon(self.refresh, watch)

    async def refresh(self, watch: NodeWatch) -> None:
        node = watch.node
        if node.paused or not node.running:
            watch.reachable = False
            return
        try:
            response = await self.client.get(node.api + "/status", timeout=2)
            watch.status = response.json()
            watch.reachable = True
            await self.fetch_chain(watch)
        except (httpx.HTTPError, ValueError) as exc:
            watch.reachable = False
            watch.errors.append(type(exc).__name__)
            return
        watch.samples.append((self.elapsed(), watch.committed, watch.latest_block))

    async def fetch_chain(self, watch: NodeWatch, max_pages: int = MAX_PAGES_PER_TICK) -> None:
        for _ in range(max_pages):
            start = len(watch.chain)
            if start > watch.latest_block:
                return
            response = await watch.get(self.client, f"/blocks/{start}?count={PAGE}")
            page = response.json()
            for doc in page["blocks"]:
                if doc["index"] != len(watch.chain):
                    raise ValueError(f"{watch.node.name}: block {doc['index']} where {len(watch.chain)} was due")
                ids = [t["action_id"] for t in doc.get("transactions", []) if "action_id" in t]
                watch.chain.append(BlockRow(doc["index"], doc["hash"], str(doc.get("state_hash")), ids))
                watch.committed += len(ids)
            if not page["blocks"]:
                return


"""Issue 6 acceptance on real processes: kill -9 under a write load, then restart.

Two of four nodes are killed together in the middle of a stream of actions (the other two cannot
decide alone: 2 < SM(4) = 3), then restarted from their stores without wiping anything.  All four
must decide again, every action that got a final receipt must be in every chain exactly once, and
the chains (block hashes, state hashes) must agree.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from node.actions import Envelope
from node.crypto import PrivateKey

from .harness import Cluster, NodeProc, eventually
from .test_cluster_consensus import chain_of, summary

pytestmark = pytest.mark.slow

ORIGIN = "alpha.example"
RETRY_PACE_S = 0.2  # pacing of a load worker whose node is down (not a wait for an outcome)


def action(name: str) -> bytes:
    key = PrivateKey.generate()
    return Envelope.sign(
        key, origin=ORIGIN, path="/users/create", args={"name": name}, nonce=1,
        expiry_ns=time.time_ns() + 600 * 10**9,
    ).to_wire()


async def submit_and_wait(node: NodeProc, wire: bytes) -> str | None:
    """The action id once its final receipt came back, or None (node down, timeout)."""
    try:
        async with httpx.AsyncClient(timeout=20) as client:
            response = await client.post(
                node.api + "/actions?wait=true&timeout=15", content=wire,
                headers={"content-type": "application/octet-stream"},
            )
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    receipt: dict[str, Any] = response.json()
    assert receipt["ok"], receipt
    action_id: str = receipt["action_id"]
    return action_id


async def test_two_of_four_killed_under_load_come_back(tmp_path: Path) -> None:
    rng = random.Random(6)
    cluster = Cluster.create(tmp_path / "net", nodes=4)
    cluster.start()
    acknowledged: list[str] = []
    try:
        await cluster.wait_ready(within=60)
        stop_load = trio.Event()

        async def load(worker: int) -> None:
            i = 0
            while not stop_load.is_set():
                node = cluster.nodes[(worker + i) % len(cluster.nodes)]
                i += 1
                done = await submit_and_wait(node, action(f"w{worker}-{i}"))
                if done is not None:
                    acknowledged.append(done)
                else:
                    await trio.sleep(RETRY_PACE_S)

        async with trio.open_nursery() as nursery:
            for worker in range(4):
                nursery.start_soon(load, worker)
            await eventually(lambda: _at_least(acknowledged, 8), within=60, what="load before the crash")
            await trio.sleep(rng.uniform(0.0, 1.0))  # a random point in the write stream
            victims = cluster.nodes[2:]
            for node in victims:
                node.kill()
            await trio.sleep(rng.uniform(1.0, 3.0))
            for node in victims:
                node.start()
            before = len(acknowledged)
            await eventually(lambda: _at_least(acknowledged, before + 8), within=60,
                             what="all four deciding again after the restart")
            stop_load.set()

        async def everyone_has_all() -> bool:
            for node in cluster.nodes:
                ids = [t for _, _, _, txs in summary(await chain_of(cluster, node)) for t in txs]
                if not set(acknowledged) <= set(ids):
                    return False
                assert len(ids) == len(set(ids)), "an action was applied twice"
            return True

        await eventually(everyone_has_all, within=60, what="every final action on every node")
        chains = [summary(await chain_of(cluster, n)) for n in cluster.nodes]
        shortest = min(len(c) for c in chains)
        assert all(c[:shortest] == chains[0][:shortest] for c in chains), "chains differ after the crash"
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


async def _at_least(items: list[Any], count: int) -> bool:
    return len(items) >= count

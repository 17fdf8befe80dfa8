"""Issue 6: a node whose data directory is empty joins a running origin and reaches its state.

The origin keeps only 8 processed rounds in memory here, so by the time the empty node comes back
its peers have pruned the early history: they must serve it from their stores.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .harness import Cluster, eventually
from .test_cluster_consensus import chain_of, submit, summary, user_create

pytestmark = pytest.mark.slow


async def test_empty_node_catches_up_from_pruned_peers(tmp_path: Path) -> None:
    from node.crypto import PrivateKey

    cluster = Cluster.create(tmp_path / "net", nodes=4)
    for node in cluster.nodes:
        node.extra_env["NODE_KEEP_ROUNDS"] = "8"
    cluster.start()
    try:
        await cluster.wait_ready(within=60)
        late = cluster.nodes[3]
        assert late.stop() == 0
        shutil.rmtree(late.home / "data")
        alive = cluster.nodes[:3]

        async def pruned() -> bool:
            for i in range(3):
                await submit(alive[i % 3], user_create(PrivateKey.generate(), f"u{i}"))
            stats = await cluster.get(alive[0], "/stats")
            return bool(stats["pruned_below_round"] > 0)

        await eventually(pruned, within=120, what="peers pruning early rounds from memory")
        reference = summary(await chain_of(cluster, alive[0]))
        assert reference, "the origin made no blocks"

        late.start()

        async def caught_up() -> bool:
            mine = summary(await chain_of(cluster, late))
            return len(mine) >= len(reference) and mine[: len(reference)] == reference

        await eventually(caught_up, within=120, what="the emptied node reaching the origin's chain")
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()

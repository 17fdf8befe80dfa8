"""`GET /history`: the origin's peer sets over time, following membership changes."""

from __future__ import annotations

import httpx

from node.consensus.peers import PeerSet
from node.crypto import PrivateKey


async def test_history_lists_genesis_then_a_change(api) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        first = (await client.get("/history")).json()["history"]
        assert [row["effective_round"] for row in first] == [0]
        assert first[0]["count"] == len(api.node.keys)
        grown = PeerSet.of([*(k.public for k in api.node.keys), PrivateKey.from_seed(b"joiner").public])
        api.node.graph.set_peer_set(40, grown)
        rows = (await client.get("/history")).json()["history"]
        assert [(r["effective_round"], r["count"]) for r in rows] == [(0, len(api.node.keys)), (40, len(grown))]
        assert rows[1]["supermajority"] == grown.supermajority
        validators = (await client.get("/validators/41")).json()
        assert validators["count"] == len(grown) and validators["effective_from"] == 40

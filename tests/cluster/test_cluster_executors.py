"""Issue 3/7 on real processes: the executor committee is elected from consensus and answers.

Every node derives the same committee from the election seeds the blocks carry; an executor
action (`/points/attest`) is run by the committee members only, their signed responses go
through consensus, and the request completes with the agreed result on every node.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from node.actions import Envelope
from node.crypto import PrivateKey

from .harness import Cluster, eventually

pytestmark = pytest.mark.slow

ORIGIN = "alpha.example"


def signed(key: PrivateKey, path: str, args: dict[str, Any], nonce: int) -> bytes:
    return Envelope.sign(
        key, origin=ORIGIN, path=path, args=args, nonce=nonce, expiry_ns=time.time_ns() + 600 * 10**9
    ).to_wire()


async def send_and_wait(api: str, wire: bytes) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=70) as client:
        response = await client.post(
            api + "/actions?wait=true&timeout=60", content=wire, headers={"content-type": "application/octet-stream"}
        )
    assert response.status_code == 200, response.text
    receipt: dict[str, Any] = response.json()
    return receipt


async def test_committee_elected_from_consensus_runs_an_executor_action(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path / "net", nodes=4)
    cluster.start()
    try:
        await cluster.wait_ready(within=60)
        nodes = cluster.nodes

        async def same_committee() -> list[str] | None:
            views = [await cluster.get(n, "/executors") for n in nodes]
            committees = {tuple(v["committee"]) for v in views}
            if len(committees) != 1 or not views[0]["committee"]:
                return None
            return list(views[0]["committee"])

        committee = await eventually(same_committee, within=60, what="one committee on all four nodes")
        assert len(committee) == 3  # the default size: a supermajority of 4

        alice = PrivateKey.generate()
        assert (await send_and_wait(nodes[0].api, signed(alice, "/users/create", {"name": "alice"}, 1)))["ok"]
        assert (await send_and_wait(nodes[1].api, signed(alice, "/points/create", {"point": "p"}, 2)))["ok"]
        opened = await send_and_wait(nodes[2].api, signed(alice, "/points/attest", {"point": "p"}, 3))
        assert opened["ok"] and opened["result"]["status"] == "pending", opened
        request = opened["result"]["request"]

        async def completed_everywhere() -> list[dict[str, Any]] | None:
            views = [await cluster.get(n, f"/executors/{request}") for n in nodes]
            if any(v is None or v["status"] == "pending" for v in views):
                return None
            return views

        views = await eventually(completed_everywhere, within=90, what="the attestation decided on every node")
        assert all(v["status"] == "completed" for v in views), views
        assert all(v["result"] == views[0]["result"] for v in views)
        assert views[0]["result"]["point"] == "p" and views[0]["result"]["owner"] == alice.fingerprint
        # Only the request's committee members answered, and every node saw the same responders.
        request_committee = {m["id"] for m in views[0]["committee"]}
        assert len(request_committee) == 3
        responded = {tuple(sorted(m["id"] for m in v["responded"])) for v in views}
        assert len(responded) == 1 and set(next(iter(responded))) <= request_committee
        for node in nodes:
            mine = (await cluster.get(node, "/executors"))["this_node"]
            assert (node.node_id in request_committee) == (mine["responses_submitted"] > 0), (node.node_id, mine)
    finally:
        cluster.stop()

"""A member with valid credentials that lies: forged event signatures and malformed gossip.

Three of four `node testnet` nodes run as real processes; the fourth member's home (its key and
CA-issued certificate) is used in this process through `node.transport.Endpoint`, so its handshakes
pass and only what it sends is wrong. Each honest node it lies to refuses the input, penalises it
(logged; forged events also counted in /metrics), refuses its next handshakes, and the three
honest nodes keep deciding with each other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from node.actions import Envelope
from node.config import split_host_port
from node.consensus.event import Event
from node.consensus.sync import EagerPush, SyncRequest, encode_message
from node.crypto import PrivateKey
from node.engine.identity import load_identity
from node.errors import InvalidInput
from node.runtime.home import Home
from node.transport import Endpoint, PeerInfo, PeerRefused, RemoteError, TransportError

from .harness import Cluster, NodeProc, eventually, manifest

pytestmark = pytest.mark.slow

ORIGIN = "alpha.example"


def user_create(name: str) -> bytes:
    envelope = Envelope.sign(
        PrivateKey.generate(), origin=ORIGIN, path="/users/create", args={"name": name},
        nonce=1, expiry_ns=time.time_ns() + 600 * 10**9,
    )
    return envelope.to_wire()


async def metric(node: NodeProc, line_start: str) -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(node.api + "/metrics")).text
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[1])
    return 0.0


async def latest_block(cluster: Cluster, node: NodeProc) -> int:
    status = await cluster.get(node, "/status")
    return int(status.get("latest_block") or 0)


def liar_endpoint(root: Path) -> tuple[Endpoint, dict[str, Any], PrivateKey]:
    """An endpoint with the fourth member's own credentials, bound where its peers expect it."""
    entries = manifest(root)["origins"][0]["nodes"]
    liar = entries[3]
    home = Home(Path(liar["home"]))
    key = home.load_key()
    members = frozenset(e["id"] for e in entries)
    identity = load_identity(home.root, key, ORIGIN, members, dt.datetime.now(dt.UTC))
    assert identity.ca_issued, "the liar must hold a real CA-issued certificate"

    async def answer_nothing(peer: PeerInfo, payload: bytes) -> bytes:
        raise InvalidInput("this member does not gossip back")

    endpoint = Endpoint(
        bind=split_host_port(liar["listen"]), identity=identity.identity, authenticator=identity.authenticator,
        handler=answer_nothing,
    )
    return endpoint, liar, key


async def send(endpoint: Endpoint, node: NodeProc, address: str, payload: bytes) -> str:
    """Send one gossip payload; how it ended (the honest node answers with an error or closes)."""
    try:
        await endpoint.request(node.node_id, split_host_port(address), payload)
    except RemoteError as exc:
        return f"error: {exc}"
    except TransportError as exc:
        return f"closed: {exc}"
    return "accepted"


async def refused_now(endpoint: Endpoint, node: NodeProc, address: str, payload: bytes) -> bool:
    endpoint.disconnect(node.node_id)  # a fresh handshake, not the connection already closed
    try:
        await endpoint.request(node.node_id, split_host_port(address), payload)
    except PeerRefused:
        return True
    except TransportError:
        return False  # e.g. the redial backoff after the closed connection: try again
    raise AssertionError(f"{node.node_id} still serves a penalised peer")


async def test_forged_events_and_garbage_are_refused_and_penalised(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path / "net", nodes=4, offline_certs=True)
    honest = cluster.nodes[:3]
    addresses = {e["id"]: e["listen"] for e in manifest(cluster.root)["origins"][0]["nodes"]}
    for node in honest:
        node.start()
    endpoint, liar, key = liar_endpoint(cluster.root)
    try:
        honest_cluster = Cluster(cluster.root, honest)
        await honest_cluster.wait_ready(within=60)
        async with trio.open_nursery() as nursery:
            await nursery.start(endpoint.run)
            victim, garbled, bystander = honest

            # The handshake passes: a well-formed sync request is answered (the liar is a member).
            sync = encode_message(SyncRequest(key.public, {}))
            assert await send(endpoint, victim, addresses[victim.node_id], sync) == "accepted"

            # 1. Events whose signatures are forged (the body signed, then the signature altered).
            genuine = Event.create(key, index=0, self_parent=None, other_parent=None, timestamp=time.time_ns(),
                                   transactions=(b"forged",))
            bad = bytearray(genuine.signature)
            bad[0] ^= 0xFF
            forged = dataclasses.replace(genuine, signature=bytes(bad))
            rejected_before = await metric(victim, 'node_events_rejected_total{reason="bad_signature"}')
            # The answer may or may not leave before the victim closes the connection: what counts is below.
            await send(endpoint, victim, addresses[victim.node_id], encode_message(EagerPush((forged,))))

            async def rejected() -> bool:
                now = await metric(victim, 'node_events_rejected_total{reason="bad_signature"}')
                return now >= rejected_before + 1

            await eventually(rejected, within=20, what="the forged event counted as rejected")
            await eventually(lambda: refused_now(endpoint, victim, addresses[victim.node_id], sync), within=20,
                             what="the victim refusing the liar's handshakes")
            events = cluster.log_events(victim, "peer penalised")
            assert any(e.get("peer") == liar["id"] and "BAD_SIGNATURE" in e.get("reason", "") for e in events), events

            # 2. Malformed gossip (not msgpack) to another honest node.
            outcome = await send(endpoint, garbled, addresses[garbled.node_id], b"\xc1not msgpack at all")
            assert outcome != "accepted", outcome
            await eventually(lambda: refused_now(endpoint, garbled, addresses[garbled.node_id], sync), within=20,
                             what="the second node refusing the liar's handshakes")
            events = cluster.log_events(garbled, "peer penalised")
            assert any(e.get("peer") == liar["id"] and "malformed" in e.get("reason", "") for e in events), events

            # Nobody stored the forged event.
            for node in honest:
                assert await cluster.get(node, f"/events/{forged.hash.hex()}") is None

            # 3. The honest three keep deciding with each other: a new action reaches a block everywhere.
            wire = user_create("after-the-liar")
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(
                    bystander.api + "/actions", content=wire, headers={"content-type": "application/octet-stream"}
                )
            assert response.status_code == 202, response.text
            action_id = response.json()["action_id"]

            async def in_chain_everywhere() -> bool:
                for node in honest:
                    found = False
                    for index in range(await latest_block(cluster, node), -1, -1):
                        block = await cluster.get(node, f"/block/{index}")
                        if block and any(t.get("action_id") == action_id for t in block["transactions"]):
                            found = True
                            break
                    if not found:
                        return False
                return True

            await eventually(in_chain_everywhere, within=60, what="the honest nodes deciding after the attacks")
            nursery.cancel_scope.cancel()
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        for node in honest:
            node.stop()

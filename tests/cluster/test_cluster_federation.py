"""Issue 9 acceptance: two origins of 3 nodes on 127.0.0.1, each finding the other only through the
other's DNS responders (`node testnet --origins 2`), real processes, QUIC with mutual TLS.

A user of alpha joins a point of beta and posts a signal there: both chains record it, and
alpha's member receives beta's signals. A target origin that does not resolve is refused at once;
with beta stopped, a request ends in a timeout on every node of alpha.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import Request, TextMessage

from node.actions import Envelope
from node.crypto import PrivateKey

from .harness import Cluster, NodeProc, eventually

pytestmark = pytest.mark.slow

ALPHA, BETA = "alpha.example", "beta.example"
TIMEOUT_S = 15  # long enough for a round trip on a loaded 2-core machine


class User:
    def __init__(self, name: str, origin: str) -> None:
        self.key = PrivateKey.from_seed(f"{name}-{time.time_ns()}".encode())
        self.origin = origin
        self.nonce = time.time_ns()

    def sign(self, path: str, args: dict[str, Any], target: str | None = None) -> Envelope:
        self.nonce += 1
        return Envelope.sign(self.key, origin=self.origin, path=path, args=args, nonce=self.nonce,
                             expiry_ns=time.time_ns() + 600 * 10**9, target=target)


async def post(node: NodeProc, envelope: Envelope, wait: float = 40.0) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=wait + 10) as client:
        response = await client.post(f"{node.api}/actions?wait=1&timeout={wait:g}", content=envelope.to_wire(),
                                      headers={"content-type": "application/octet-stream"})
    return response.status_code, response.json()


async def federation(cluster: Cluster, node: NodeProc) -> dict[str, Any]:
    doc: dict[str, Any] = await cluster.get(node, "/federation")
    return doc


def test_testnet_wires_each_origin_to_the_others_dns_only(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path / "net", nodes=2, origins=2, offline_certs=True)
    manifest = json.loads((tmp_path / "net" / "testnet.json").read_text())
    dns = {entry["origin"]: entry["dns"] for entry in manifest["origins"]}
    for node in cluster.nodes:
        text = node.home.joinpath("config", "node.toml").read_text()
        other = BETA if node.origin == ALPHA else ALPHA
        assert f"federation_origins = {json.dumps([other])}" in text
        assert f"federation_nameservers = {json.dumps(dns[other])}" in text
        assert f"federation_pins = [\"{other}=" in text


async def test_two_origins_federate_through_dns(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path / "net", nodes=3, origins=2, offline_certs=True)
    for node in cluster.nodes:
        node.extra_env["NODE_FEDERATION_TIMEOUT"] = str(TIMEOUT_S)
    alpha = [n for n in cluster.nodes if n.origin == ALPHA]
    beta = [n for n in cluster.nodes if n.origin == BETA]
    cluster.start()
    try:
        await cluster.wait_ready(within=60)
        for node in cluster.nodes:
            async def up(node: NodeProc = node) -> bool:
                return bool((await federation(cluster, node))["up"])
            await eventually(up, within=45, what=f"{node.origin} {node.node_id} federated")

        bob, alice = User("bob", BETA), User("alice", ALPHA)
        for node, envelope in ((beta[0], bob.sign("/users/create", {"name": "bob"})),
                               (beta[0], bob.sign("/points/create", {"point": "lobby"})),
                               (alpha[1], alice.sign("/users/create", {"name": "alice"}))):
            status, receipt = await post(node, envelope)
            assert status == 200 and receipt["ok"], receipt

        join = alice.sign("/points/join", {"point": "lobby"}, target=BETA)
        status, receipt = await post(alpha[1], join)
        assert status == 200 and receipt["ok"] and receipt["result"] == {"point": "lobby", "role": "member"}, receipt

        signal = alice.sign("/signals/post", {"point": "lobby", "body": "hello from alpha"}, target=BETA)
        status, receipt = await post(alpha[1], signal)
        assert status == 200 and receipt["ok"] and receipt["result"]["point"] == "lobby", receipt
        status, receipt = await post(beta[1], bob.sign("/signals/post", {"point": "lobby", "body": "hello from beta"}))
        assert status == 200 and receipt["ok"], receipt
        # alpha's member receives beta's signals, on a node of alpha other than the one it used
        got = await signal_with_body(alpha[2], alice.key.fingerprint, "hello from beta", within=40)
        assert got["point"] == f"lobby@{BETA}" and got["from"] == bob.key.fingerprint, got

        # Both chains record it: alpha closed both requests with beta's receipts; beta ran them.
        for node in alpha:
            async def closed(node: NodeProc = node) -> bool:
                requests = (await federation(cluster, node))["requests"]
                return all(requests.get(e.action_id.hex(), {}).get("status") == "done" for e in (join, signal))
            await eventually(closed, within=20, what=f"alpha node {node.node_id} closed both requests")
        for node in beta:
            async def ran(node: NodeProc = node) -> bool:
                incoming = (await federation(cluster, node))["incoming"]
                return all(incoming.get(e.action_id.hex(), {}).get("receipt", {}).get("ok") for e in (join, signal))
            await eventually(ran, within=20, what=f"beta node {node.node_id} recorded both requests")

        # An origin nobody resolves: refused at once, with the reason.
        stray = alice.sign("/points/join", {"point": "lobby"}, target="gamma.example")
        status, body = await post(alpha[0], stray)
        assert status == 400 and body["reason"] == "not_found" and "does not resolve" in body["error"], body

        # Beta unreachable: the request times out on every node of alpha.
        for node in beta:
            node.stop()
        late = alice.sign("/points/join", {"point": "lobby-2"}, target=BETA)
        started = time.monotonic()
        status, receipt = await post(alpha[0], late)
        assert status == 200 and not receipt["ok"] and receipt["reason"] == "timeout", receipt
        assert time.monotonic() - started >= TIMEOUT_S - 1
        for node in alpha:
            async def timed_out(node: NodeProc = node) -> bool:
                requests = (await federation(cluster, node))["requests"]
                return requests.get(late.action_id.hex(), {}).get("status") == "timeout"
            await eventually(timed_out, within=20, what=f"alpha node {node.node_id} timed the request out")
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


async def signal_with_body(node: NodeProc, member: str, body: str, *, within: float) -> dict[str, Any]:
    """The first signal pushed (or queued) for `member` on the node's WebSocket `/signals` with this body."""
    host, port = node.api_address.split(":")
    with trio.fail_after(within):
        stream = await trio.open_tcp_stream(host, int(port))
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host=node.api_address, target=f"/signals?member={member}")))
        text = ""
        while True:
            data = await stream.receive_some(65536)
            assert data, "the node closed the signal stream"
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, TextMessage):
                    text += event.data
                    if event.message_finished:
                        message, text = json.loads(text), ""
                        if message.get("body") == body:
                            await stream.aclose()
                            return dict(message)

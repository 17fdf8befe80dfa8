"""POST /actions (admitted, forged, too large, waiting for the receipt) and WebSocket /signals."""

from __future__ import annotations

import dataclasses
import itertools

import httpx
import pytest
import trio

from node.actions import Envelope
from node.actions.client import ActionClient

OCTETS = {"content-type": "application/octet-stream"}


@pytest.fixture
async def client(api):
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as c:
        yield c


async def until(predicate, seconds: float = 5.0) -> None:
    """Poll a condition with a deadline (the engine side of these tests runs in the same loop)."""
    with trio.fail_after(seconds):
        for _ in itertools.count():
            if predicate():
                return
            await trio.sleep(0.005)


async def test_signed_action_is_admitted(api, client):
    node = api.node
    env = node.alice.env("/points/create", {"point": "garden"})
    r = await client.post("/actions", content=env.to_wire(), headers=OCTETS)
    assert r.status_code == 202 and r.json() == {"action_id": env.action_id.hex()}
    assert node.pool == [env.to_wire()]
    text = (await client.get("/metrics")).text
    assert "node_actions_submitted_total 1.0" in text


async def test_forged_and_bad_actions_are_400_with_reason(api, client):
    node = api.node
    env = node.alice.env("/points/create", {"point": "garden"})
    forged = dataclasses.replace(env, args={"point": "stolen"})  # same signature, other body
    r = await client.post("/actions", content=forged.to_wire(), headers=OCTETS)
    assert r.status_code == 400 and r.json()["reason"] == "bad_signature" and "error" in r.json()
    wrong_origin = node.bob.env("/points/join", {"point": "lobby"}, origin="beta.example")
    r = await client.post("/actions", content=wrong_origin.to_wire(), headers=OCTETS)
    assert r.status_code == 400 and r.json()["reason"] == "wrong_origin"
    r = await client.post("/actions", content=b"\x93garbage", headers=OCTETS)
    assert r.status_code == 400 and r.json()["reason"] == "malformed"
    r = await client.post("/actions", content=b"", headers=OCTETS)
    assert r.status_code == 400
    r = await client.post("/actions", content=b"x" * (64 * 1024 + 1), headers=OCTETS)
    assert r.status_code == 413 and r.json()["reason"] == "too_large"
    r = await client.post("/actions", params={"wait": "maybe"}, content=env.to_wire(), headers=OCTETS)
    assert r.status_code == 400
    r = await client.post("/actions", params={"wait": "true", "timeout": "nan"}, content=env.to_wire())
    assert r.status_code == 400
    assert node.pool == []
    text = (await client.get("/metrics")).text
    assert 'node_actions_refused_total{reason="bad_signature"} 1.0' in text


async def test_replayed_nonce_is_refused_at_admission(api, client):
    node = api.node
    replay = Envelope.sign(node.alice.key, origin="alpha.example", path="/points/create", args={"point": "x"},
                           nonce=1, expiry_ns=node.now_ns + 10**12)
    r = await client.post("/actions", content=replay.to_wire(), headers=OCTETS)
    assert r.status_code == 400 and r.json()["reason"] == "replayed_nonce"


async def test_wait_returns_the_receipt_once_the_block_is_applied(api, client):
    node = api.node
    env = node.bob.env("/points/create", {"point": "garden"})
    answers = []

    async def post() -> None:
        r = await client.post("/actions", params={"wait": "true"}, content=env.to_wire(), headers=OCTETS)
        answers.append(r)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(post)
        await until(lambda: node.pool)
        receipts = node.apply_pool()  # the engine applies the block and announces the receipt
    assert receipts[0]["ok"] is True
    (r,) = answers
    assert r.status_code == 200
    doc = r.json()
    assert doc["action_id"] == env.action_id.hex() and doc["ok"] is True and doc["block"] == 3
    assert doc["result"] == {"point": "garden", "role": "owner"}
    text = (await client.get("/metrics")).text
    assert "node_action_latency_seconds_count 1.0" in text
    # Asking again later (a duplicate submission is refused by nonce; the stored receipt is read).
    assert node.view.lookup_receipt(env.action_id)["ok"] is True


async def test_wait_times_out_with_504(api, client):
    node = api.node
    env = node.bob.env("/points/create", {"point": "never"})
    r = await client.post("/actions", params={"wait": "1", "timeout": "0.2"}, content=env.to_wire())
    assert r.status_code == 504 and r.json()["action_id"] == env.action_id.hex()
    assert node.view._waiters == {}  # the timed-out waiter left nothing behind


async def test_no_submit_means_503(api, client):
    api.node.view.submit = None
    env = api.node.bob.env("/points/create", {"point": "later"})
    r = await client.post("/actions", content=env.to_wire(), headers=OCTETS)
    assert r.status_code == 503 and r.json()["reason"] == "not_ready"


async def test_action_client_speaks_to_the_api(api):
    node = api.node
    client = ActionClient(node.alice.key, api.url, clock=lambda: node.now_ns + 10**9)

    def send() -> object:
        with client:
            return client.send(client.build("/points/create", {"point": "via-client"}))

    answer = await trio.to_thread.run_sync(send)
    assert isinstance(answer, dict) and len(answer["action_id"]) == 64
    assert len(node.pool) == 1


async def test_signals_reach_live_and_returning_members(api, ws_connect):
    node = api.node
    ws = await ws_connect(api.url, f"/signals?member={node.alice.id}")
    assert not isinstance(ws, int)
    try:
        hello = await ws.receive_json()
        assert hello == {"subscribed": node.alice.id, "queued": 1}  # the fixture's block posted one
        assert (await ws.receive_json())["body"] == {"hello": 1}
        post = node.bob.tx("/signals/post", {"point": "lobby", "body": "hi alice"})
        node.apply_block([post])
        got = await ws.receive_json()
        assert got["point"] == "lobby" and got["body"] == "hi alice" and got["from"] == node.bob.id
        assert got["seq"] == 1 and got["block"] == 3
    finally:
        await ws.aclose()
    await until(lambda: node.view.signals.subscriber_count() == 0)
    # Bob was never connected: both signals (the fixture's and this one) wait in his queue.
    assert node.view.signals.queued(node.bob.id) == 2
    ws = await ws_connect(api.url, f"/signals?member={node.bob.id}")
    try:
        assert (await ws.receive_json())["queued"] == 2
        assert [(await ws.receive_json())["seq"] for _ in range(2)] == [0, 1]
    finally:
        await ws.aclose()
    assert node.view.signals.queued(node.bob.id) == 0


async def test_signals_are_filtered_by_member(api, ws_connect):
    node = api.node
    carol = await ws_connect(api.url, "/signals?member=carol")
    dave = await ws_connect(api.url, "/signals?member=dave")
    try:
        await carol.receive_json()
        await dave.receive_json()
        node.view.publish_signal("lobby", ["dave"], {"seq": 9, "body": "only dave"})
        node.view.publish_signal("lobby", ["carol"], {"seq": 10, "body": "only carol"})
        assert (await dave.receive_json())["body"] == "only dave"
        assert (await carol.receive_json())["body"] == "only carol"
    finally:
        await carol.aclose()
        await dave.aclose()


async def test_signals_without_member_are_refused(api, ws_connect):
    refused = await ws_connect(api.url, "/signals")
    assert refused == 403


async def test_slow_subscriber_is_cut_off_and_resumes_from_its_queue(api, ws_connect):
    node = api.node
    hub = node.view.signals
    hub.subscriber_buffer = 2
    ws = await ws_connect(api.url, "/signals?member=slow")
    try:
        await ws.receive_json()
        for seq in range(5):  # synchronous: the socket task gets no chance to drain in between
            node.view.publish_signal("p", ["slow"], {"seq": seq})
        received = []
        while (item := await ws.receive_json()) is not None:
            received.append(item["seq"])
        assert ws.closed is not None and ws.closed.code == 1013
        # The buffer holds 2; one more goes straight to the socket task if it was already waiting.
        assert received in ([0, 1], [0, 1, 2])
    finally:
        await ws.aclose()
    rest = 5 - len(received)
    assert hub.queued("slow") == rest
    ws = await ws_connect(api.url, "/signals?member=slow")
    try:
        assert (await ws.receive_json())["queued"] == rest
        resumed = [(await ws.receive_json())["seq"] for _ in range(rest)]
        assert received + resumed == [0, 1, 2, 3, 4]  # nothing lost, nothing twice
    finally:
        await ws.aclose()


async def test_a_full_pool_is_503_and_retryable(api, client):
    from node.api.view import admitting_submit
    from node.consensus.node_core import TransactionRefused

    def full(wire: bytes) -> None:
        raise TransactionRefused("pending pool full")

    node = api.node
    node.view.submit = admitting_submit(full, origin="alpha.example", state=node.store.state,
                                        now_ns=lambda: node.now_ns)
    r = await client.post("/actions", content=node.alice.tx("/points/create", {"point": "z"}), headers=OCTETS)
    assert r.status_code == 503 and r.json() == {"error": "pending pool full", "reason": "refused"}

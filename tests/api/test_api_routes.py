"""Every read route over real HTTP, with good and bad input."""

from __future__ import annotations

import httpx
import pytest

from node.crypto import fingerprint


@pytest.fixture
async def client(api):
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as c:
        yield c


async def test_status_is_typed_and_matches_the_chain(api, client):
    r = await client.get("/status")
    assert r.status_code == 200
    doc = r.json()
    node = api.node
    assert doc["node_id"] == node.keys[0].fingerprint and doc["origin"] == "alpha.example"
    assert doc["phase"] == "consensus" and doc["ready"] is True and doc["catching_up"] is False
    assert doc["latest_block"] == 2
    assert doc["latest_round"] == node.graph.last_round and isinstance(doc["latest_round"], int)
    assert doc["decided_round"] == node.graph.next_to_process - 1
    assert doc["peers"] == 3


async def test_api_file_holds_the_bound_url(api):
    assert api.home.api_file.read_text().strip() == api.url
    assert not api.url.endswith(":0")


async def test_stats_peers_genesis(api, client):
    stats = (await client.get("/stats")).json()
    assert stats["latest_block"] == 2 and stats["blocks_committed"] == 3
    assert stats["events_in_memory"] == api.node.graph.event_count()
    assert stats["forkers"] == [api.node.keys[0].fingerprint]
    assert stats["events_inserted"] == len(api.node.events)
    peers = (await client.get("/peers")).json()["peers"]
    assert [p["id"] for p in peers] == [k.fingerprint for k in api.node.keys[1:]]
    genesis = (await client.get("/genesispeers")).json()
    assert genesis["origin"] == "alpha.example" and len(genesis["peers"]) == 4


async def test_validators(api, client):
    doc = (await client.get("/validators/3")).json()
    assert doc["count"] == 4 and doc["supermajority"] == 3 and doc["trust_count"] == 2
    assert {v["id"] for v in doc["validators"]} == {k.fingerprint for k in api.node.keys}
    for bad in ("-1", "x", "1.5", "99999999999999999999999"):
        r = await client.get(f"/validators/{bad}")
        assert r.status_code == 400 and "error" in r.json()


async def test_block_and_cache_headers(api, client):
    r = await client.get("/block/1")
    assert r.status_code == 200
    doc = r.json()
    assert doc["index"] == 1 and doc["transaction_count"] == 2
    assert [t["path"] for t in doc["transactions"]] == ["/points/create", "/points/join"]
    assert all(t["ok"] is True for t in doc["transactions"])
    assert len(doc["state_hash"]) == 64 and doc["state_hash"] == api.node.store.state_hash_at(1).hex()
    assert "immutable" in r.headers["cache-control"]
    latest = await client.get("/block/2")
    assert latest.status_code == 200 and "immutable" not in latest.headers["cache-control"]
    missing = await client.get("/block/3")
    assert missing.status_code == 404 and missing.json()["error"] == "no block 3"
    assert (await client.get("/block/abc")).status_code == 400


async def test_blocks_pages(api, client):
    doc = (await client.get("/blocks/0", params={"count": 2})).json()
    assert [b["index"] for b in doc["blocks"]] == [0, 1] and doc["next"] == 2 and doc["latest"] == 2
    listed = doc["blocks"][0]["transactions"][0]
    assert listed["path"] == "/users/create" and "ok" not in listed  # pages skip receipt lookups
    rest = (await client.get("/blocks/2")).json()
    assert [b["index"] for b in rest["blocks"]] == [2]
    assert (await client.get("/blocks/10")).json()["blocks"] == []
    for count in ("0", "51", "-3", "ten"):
        r = await client.get("/blocks/0", params={"count": count})
        assert r.status_code == 400, count
        assert "count" in r.json()["error"]


async def test_graph_window(api, client):
    node = api.node
    doc = (await client.get("/graph")).json()
    assert doc["consensus"] is True and doc["to_round"] == node.graph.last_round
    assert doc["to_round"] - doc["from_round"] == 7
    assert {m["id"] for m in doc["members"]} == {k.fingerprint for k in node.keys}
    hashes = {e["hash"] for e in doc["events"]}
    a, b = (e.hash.hex() for e in node.fork_pair)
    assert a in hashes and b in hashes
    forks = {e["hash"] for e in doc["events"] if e["fork"]}
    assert forks == {a, b}
    assert doc["forkers"] == [node.keys[0].fingerprint]
    assert [blk["index"] for blk in doc["blocks"]] == [0, 1, 2]
    witness = next(e for e in doc["events"] if e["witness"])
    assert isinstance(witness["round"], int) and isinstance(witness["lamport"], int)
    full = (await client.get("/graph", params={"from_round": 0, "to_round": 1000})).json()
    assert full["to_round"] - full["from_round"] <= 29  # bounded window
    first = (await client.get("/graph", params={"from_round": 0, "to_round": 0})).json()
    assert first["from_round"] == 0 and all(e["round"] == 0 for e in first["events"]) and first["events"]
    r = await client.get("/graph", params={"from_round": 5, "to_round": 2})
    assert r.status_code == 400
    assert (await client.get("/graph", params={"from_round": "x"})).status_code == 400


async def test_event_lookup(api, client):
    node = api.node
    e = node.events[-1]
    doc = (await client.get(f"/events/{e.hash.hex()}")).json()
    assert doc["hash"] == e.hash.hex() and doc["creator"] == fingerprint(e.creator)
    assert doc["index"] == e.index and doc["round"] == node.graph.round_of(e.hash)
    assert doc["transactions"] == [t.hex() for t in e.transactions]
    assert (await client.get(f"/events/{'ab' * 32}")).status_code == 404
    assert (await client.get("/events/xyz")).status_code == 400
    upper = await client.get(f"/events/{e.hash.hex().upper()}")
    assert upper.status_code == 200


async def test_rounds(api, client):
    node = api.node
    doc = (await client.get("/rounds/0")).json()
    assert doc["decided"] is True and len(doc["witnesses"]) == 4
    assert all(isinstance(w["famous"], bool) for w in doc["witnesses"])
    assert doc["received"] == [h.hex() for h in node.graph.ordered_rounds[0]]
    assert doc["stored"][0] == 0 and doc["stored"][1] == doc["received"]
    assert (await client.get(f"/rounds/{node.graph.last_round + 100}")).status_code == 404
    assert (await client.get("/rounds/-2")).status_code == 400


async def test_executors_federation_certificates(api, client):
    ex = (await client.get("/executors")).json()
    assert ex["round"] == 10 and ex["seed"] == "07" * 32
    assert {m["id"] for m in ex["committee"]} == {k.fingerprint for k in api.node.keys[1:3]}
    fed = (await client.get("/federation")).json()
    assert fed["origin"] == "alpha.example" and fed["enabled"] is False
    assert (await client.get("/certificates")).json() == {"certificates": []}


async def test_health_ready_metrics(api, client):
    assert (await client.get("/health")).json()["alive"] is True
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "phase": "consensus"}
    text = (await client.get("/metrics")).text
    assert 'node_phase{node_phase="consensus"} 1.0' in text
    assert "node_blocks_committed_total 3.0" in text
    assert "node_latest_block 2.0" in text and "node_peers 3.0" in text
    assert 'origin="alpha.example"' in text and "node_info{" in text
    assert "node_http_requests_total{" in text


async def test_unknown_routes_and_methods_are_json(api, client):
    r = await client.get("/nope")
    assert r.status_code == 404 and r.json() == {"error": "no such route"}
    r = await client.post("/status")
    assert r.status_code == 405 and "error" in r.json()
    r = await client.get("/actions")
    assert r.status_code == 405


async def test_openapi_lists_every_route(api, client):
    spec = (await client.get("/openapi.json")).json()
    paths = set(spec["paths"])
    for route in ("/", "/status", "/stats", "/peers", "/genesispeers", "/validators/{round}", "/block/{index}",
                  "/blocks/{start}", "/graph", "/events/{hash}", "/rounds/{round}", "/executors", "/federation",
                  "/certificates", "/health", "/ready", "/metrics", "/actions", "/signals", "/openapi.json"):
        assert route in paths, route
    from node.api.app import build_app

    app_paths = {getattr(r, "path", None) for r in build_app(api.node.view).routes}
    assert app_paths == paths


async def test_page_is_served_and_self_contained(api, client):
    r = await client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "/graph" in html and "<svg" in html
    import re

    external = [u for u in re.findall(r"https?://[^\"' )]+", html) if u != "http://www.w3.org/2000/svg"]
    assert external == []  # no CDN: the page must work without a network

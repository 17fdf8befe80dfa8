"""Issue 5 on real processes: a 4-node origin from `node testnet` whose certificates are issued
online by its CA node (node0), from nothing to phase `consensus`, renewed while it decides, and one
node revoked (back to self-signed, the rest decide on); and the same origin with the CA node started
late (the others stay self-signed, say so, raise the missed ca-issued deadline alert, and move on
once it is up). Transparency on the chain: every member's certificate in `/certificates` on every
node (online and offline-issued homes), a revocation recorded on the chain cutting the revoked
node off on every other node, and a certificate never recorded refused once the grace is over.

The time of each phase (from each node's `phase reached ... after_s=` log lines) is printed and
saved to artifacts/cluster_trust_phases.json.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from node.actions import Envelope
from node.crypto import PrivateKey
from node.engine.paths import ca_certificate_path, issued_certificate_path
from node.trust import load_certificate, verify_issued
from node.trust.ca_dir import CaDirectory

from .harness import Cluster, NodeProc, eventually, manifest

pytestmark = pytest.mark.slow

ORIGIN = "alpha.example"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SHORT_LIFETIME_S = "18"  # certificates renewed ~12 s after issuance (2/3 of the lifetime)


async def phase_of(cluster: Cluster, node: NodeProc) -> str | None:
    status = await cluster.get(node, "/status")
    return None if status is None else str(status["phase"])


async def all_in_phase(cluster: Cluster, nodes: list[NodeProc], phase: str) -> bool:
    for node in nodes:
        if await phase_of(cluster, node) != phase:
            return False
    return True


def phase_times(cluster: Cluster) -> dict[str, dict[str, float]]:
    """node id -> {phase: seconds after the engine started}, from the nodes' logs (first time each)."""
    out: dict[str, dict[str, float]] = {}
    for node in cluster.nodes:
        times: dict[str, float] = {}
        for record in cluster.log_events(node, "phase reached"):
            times.setdefault(record["phase"], float(record["after_s"]))
        out[node.node_id] = times
    return out


def record_phase_times(name: str, cluster: Cluster) -> dict[str, dict[str, float]]:
    times = phase_times(cluster)
    print(f"\n{name}: seconds after each engine started")
    for i, node in enumerate(cluster.nodes):
        t = times[node.node_id]
        print(f"  node{i} {node.node_id}: " + "  ".join(f"{p}={t[p]:.2f}" for p in t))
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "cluster_trust_phases.json"
    saved: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    saved[name] = times
    path.write_text(json.dumps(saved, indent=1) + "\n")
    return times


def check_issued_online(cluster: Cluster, ca_dir: Path) -> dict[str, int]:
    """Every node's home holds a certificate of the origin CA for its own key (not self-signed);
    returns node id -> serial."""
    ca = load_certificate((ca_dir / "ca.crt").read_bytes())
    issued = CaDirectory(ca_dir).load_issued()
    serials = {}
    for node in cluster.nodes:
        cert = load_certificate(issued_certificate_path(node.home).read_bytes())
        assert cert.issuer != cert.subject, f"{node.node_id} holds a self-signed certificate"
        identity = verify_issued(cert, ca=ca, origin=ORIGIN, now=dt.datetime.now(dt.UTC))
        assert identity.node_id == node.node_id
        assert ca_certificate_path(node.home).read_bytes() == (ca_dir / "ca.crt").read_bytes()
        # issued online by the running CA: it is in the CA's record of what it signed
        assert issued[cert.serial_number].node_id == node.node_id
        serials[node.node_id] = cert.serial_number
    return serials


async def submit(node: NodeProc, name: str) -> str:
    wire = Envelope.sign(PrivateKey.generate(), origin=ORIGIN, path="/users/create", args={"name": name}, nonce=1,
                         expiry_ns=time.time_ns() + 600 * 10**9).to_wire()
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(node.api + "/actions", content=wire,
                                     headers={"content-type": "application/octet-stream"})
    assert response.status_code == 202, response.text
    action_id: str = response.json()["action_id"]
    return action_id


async def committed(cluster: Cluster, node: NodeProc, action_id: str) -> bool:
    latest = (await cluster.get(node, "/status")).get("latest_block")
    for index in range(-1 if latest is None else latest, -1, -1):  # newest first
        block = await cluster.get(node, f"/block/{index}")
        if any(t["action_id"] == action_id for t in block["transactions"]):
            return True
    return False


async def test_online_issuance_from_nothing_to_consensus_then_renewal_and_revocation(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path / "net", nodes=4, tokens=True)
    ca_info = manifest(tmp_path / "net")["origins"][0]["ca"]
    ca_dir = Path(ca_info["dir"])
    assert ca_info["node"] == cluster.nodes[0].node_id and ca_dir.parent == cluster.nodes[0].home
    for node in cluster.nodes:  # nothing issued yet: only node0's CA exists
        assert not issued_certificate_path(node.home).exists()
    cluster.nodes[0].extra_env["NODE_CERT_LIFETIME"] = SHORT_LIFETIME_S
    for node in cluster.nodes:
        node.extra_env["NODE_REVOCATION_POLL"] = "0.5"
    try:
        cluster.start()
        await eventually(lambda: all_in_phase(cluster, cluster.nodes, "consensus"), within=60,
                         what="all four nodes in phase consensus")
        serials = check_issued_online(cluster, ca_dir)
        # each of node1..3 used its one-time token (node0 is the CA and needs none)
        tokens = json.loads((ca_dir / "tokens.json").read_text())
        assert len(tokens) == 3 and all(used == 1 for _, used in tokens.values())
        times = record_phase_times("online", cluster)
        for node in cluster.nodes:
            t = times[node.node_id]
            assert t["self-signed"] <= t["ca-issued"] <= t["consensus"], t

        # Renewal in the running origin: every node gets a new certificate before the old one
        # expires, and the origin keeps deciding with the renewed certificates.
        def renewed() -> Any:
            async def check() -> bool:
                for node in cluster.nodes:
                    cert = load_certificate(issued_certificate_path(node.home).read_bytes())
                    if cert.serial_number == serials[node.node_id]:
                        return False
                return True
            return check
        await eventually(renewed(), within=30, what="every certificate renewed")
        check_issued_online(cluster, ca_dir)
        action_id = await submit(cluster.nodes[2], "renewed")
        for node in cluster.nodes:
            await eventually(lambda node=node: committed(cluster, node, action_id), within=30,
                             what=f"action committed on {node.node_id} after renewal")
        assert await all_in_phase(cluster, cluster.nodes, "consensus")

        # Revocation in the running origin: the operator revokes node3 in node0's CA directory; the
        # CA node picks it up and refuses node3 from then on (handshakes, renewal), the others learn
        # it from the CA's list and drop it. node3 cannot renew, so it is back to self-signed when its
        # certificate expires (passive revocation, 18 s here), and is refused a new one; the other
        # three keep deciding without it.
        revoked, rest = cluster.nodes[3], cluster.nodes[:3]
        result = await trio.run_process(
            [sys.executable, "-m", "node", "certs", "revoke", "--ca", str(ca_dir), "--node", revoked.node_id],
            capture_stdout=True, capture_stderr=True,
        )
        assert b"revoked node" in result.stdout
        await eventually(lambda: all_in_phase(cluster, [revoked], "self-signed"), within=30,
                         what="the revoked node back in phase self-signed")
        assert cluster.log_events(revoked, "CA certificate lost: back to self-signed, gossip paused")

        async def refused() -> bool:
            reports = cluster.log_events(revoked, "still self-signed: no CA certificate yet")
            return any("refused" in r["error"] and "revoked" in r["error"] for r in reports)
        await eventually(refused, within=20, what="the revoked node refused a new certificate")
        action_id = await submit(cluster.nodes[1], "after-revocation")
        for node in rest:
            await eventually(lambda node=node: committed(cluster, node, action_id), within=30,
                             what=f"action committed on {node.node_id} after the revocation")
        assert await all_in_phase(cluster, rest, "consensus")
        assert await phase_of(cluster, revoked) == "self-signed"
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


async def test_unreachable_ca_at_start_then_ca_issued_once_it_is_up(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path / "net", nodes=4)  # members pinned by key: no tokens
    ca_node, others = cluster.nodes[0], cluster.nodes[1:]
    for node in others:
        node.extra_env["NODE_PHASE_DEADLINES"] = "ca-issued=3"  # missed while the CA is down
    try:
        for node in others:
            node.start()
        # They come up self-signed and say that the CA cannot be reached.
        for node in others:
            async def reported(node: NodeProc = node) -> bool:
                return bool(cluster.log_events(node, "still self-signed: no CA certificate yet"))
            await eventually(reported, within=30, what=f"{node.node_id} reporting the unreachable CA")
        for node in others:
            assert await phase_of(cluster, node) == "self-signed"
            stats = await cluster.get(node, "/stats")
            assert stats["events_inserted"] <= 1, stats  # no gossip while self-signed
            assert not issued_certificate_path(node.home).exists()
        waiting = cluster.log_events(others[0], "still self-signed: no CA certificate yet")[0]
        assert "CA unreachable" in waiting["error"]
        # The missed ca-issued deadline is an alert: an error line (repeated with backoff), the
        # trust service `missed` in the Redis startup status (overall degraded), a metric.
        for node in others:
            async def alerted(node: NodeProc = node) -> bool:
                alerts = [r for r in cluster.log_events(node, "phase deadline missed") if r["phase"] == "ca-issued"]
                return len(alerts) >= 2 and all(r["level"] == "error" for r in alerts)
            await eventually(alerted, within=20, what=f"{node.node_id} alerting twice on the ca-issued deadline")
            status = startup_status(node)
            assert status["services"]["trust"] == "missed" and status["status"] == "degraded", status
        metrics = await metrics_text(others[0])
        assert 'node_phase_deadline_missed_total{phase="ca-issued"}' in metrics

        ca_node.start()
        started = time.monotonic()
        await eventually(lambda: all_in_phase(cluster, cluster.nodes, "consensus"), within=45,
                         what="all four nodes in phase consensus once the CA is up")
        took = time.monotonic() - started
        check_issued_online(cluster, Path(manifest(tmp_path / "net")["origins"][0]["ca"]["dir"]))
        times = record_phase_times("ca-late", cluster)
        print(f"  consensus on all four {took:.1f} s after node0 was started")
        for node in others:
            t = times[node.node_id]
            assert t["ca-issued"] - t["self-signed"] > 3.0, t  # they did wait for the CA
            assert cluster.log_events(node, "phase reached after its deadline")
            await eventually(lambda node=node: trust_ready(node), within=10,
                             what=f"{node.node_id}'s trust service ready again in its startup status")
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


async def test_offline_issued_homes_recorded_and_offline_ca_revocation_through_a_member(tmp_path: Path) -> None:
    """Offline-issued homes (no CA node): each node records its own certificate, every node lists
    all four; the operator revokes node3 with the offline CA and `--chain-home` puts the CA-signed
    revocation on the chain through node1; the other nodes cut node3 off and refuse it from then on."""
    cluster = Cluster.create(tmp_path / "net", nodes=4, offline_certs=True)
    ca_dir = Path(manifest(tmp_path / "net")["origins"][0]["ca"]["dir"])
    for node in cluster.nodes:
        node.extra_env["NODE_CERT_GRACE"] = "5"
    try:
        cluster.start()
        await eventually(lambda: all_in_phase(cluster, cluster.nodes, "consensus"), within=45,
                         what="all four nodes in phase consensus")
        homes = {n.node_id: load_certificate(issued_certificate_path(n.home).read_bytes()) for n in cluster.nodes}
        expected = {(node_id, f"{cert.serial_number:x}") for node_id, cert in homes.items()}
        for node in cluster.nodes:
            async def listed(node: NodeProc = node) -> bool:
                entries = log_entries_of(await cluster.get(node, "/certificates"))
                return expected <= {(e["node_id"], e["serial"]) for e in entries if e["action"] == "issued"}
            await eventually(listed, within=30, what=f"every offline-issued certificate listed on {node.node_id}")

        revoked, rest = cluster.nodes[3], cluster.nodes[:3]
        result = await trio.run_process(
            [sys.executable, "-m", "node", "certs", "revoke", "--ca", str(ca_dir), "--node", revoked.node_id,
             "--chain-home", str(cluster.nodes[1].home)],
            capture_stdout=True, capture_stderr=True, check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        assert b"revocation recorded on the chain" in result.stdout, result.stdout
        for node in rest:
            async def cut(node: NodeProc = node) -> bool:
                return any(r["node"] == revoked.node_id for r in cluster.log_events(node, "peer cut off"))
            await eventually(cut, within=10, what=f"{node.node_id} cutting the revoked node off")

        async def refused() -> bool:  # node3 still holds its certificate and keeps dialling: refused
            return any(cluster.log_events(n, "handshakes refused by the chain's certificate log") for n in rest)
        await eventually(refused, within=15, what="the revoked node's handshakes refused")
        action_id = await submit(cluster.nodes[0], "after-offline-revocation")
        for node in rest:
            await eventually(lambda node=node: committed(cluster, node, action_id), within=20,
                             what=f"action committed on {node.node_id} after the revocation")
        assert not await committed(cluster, revoked, action_id)
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


async def test_certificate_never_recorded_is_refused_after_the_grace(tmp_path: Path) -> None:
    """Offline-issued homes; node3 runs without the trust layer (NODE_PLUGINS), so nobody puts its
    certificate on the chain. The origin reaches consensus (bootstrap within the grace), then, once
    the 6 s grace is over, the other nodes cut node3 off and refuse its handshakes; they decide on."""
    cluster = Cluster.create(tmp_path / "net", nodes=4, offline_certs=True)
    unrecorded, rest = cluster.nodes[3], cluster.nodes[:3]
    for node in cluster.nodes:
        node.extra_env["NODE_CERT_GRACE"] = "6"
    unrecorded.extra_env["NODE_PLUGINS"] = "engine,federation"
    try:
        cluster.start()
        await eventually(lambda: all_in_phase(cluster, cluster.nodes, "consensus"), within=45,
                         what="all four nodes in phase consensus")
        for node in rest:
            async def cut(node: NodeProc = node) -> bool:
                return any(r["node"] == unrecorded.node_id and "not on the chain" in r["reason"]
                           for r in cluster.log_events(node, "peer cut off"))
            await eventually(cut, within=25, what=f"{node.node_id} cutting off the unrecorded node after the grace")
        entries = log_entries_of(await cluster.get(rest[0], "/certificates"))
        recorded = {e["node_id"] for e in entries}
        assert recorded == {n.node_id for n in rest}, entries

        async def refused() -> bool:
            return any(cluster.log_events(n, "handshakes refused by the chain's certificate log") for n in rest)
        await eventually(refused, within=15, what="the unrecorded node's handshakes refused")
        action_id = await submit(rest[1], "without-the-unrecorded-node")
        for node in rest:
            await eventually(lambda node=node: committed(cluster, node, action_id), within=20,
                             what=f"action committed on {node.node_id} without the unrecorded node")
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


def startup_status(node: NodeProc) -> dict[str, Any]:
    """The node's `truth:system:startup_status` from its own (embedded) Redis."""
    import redis

    url = (node.home / "run" / "redis.url").read_text().splitlines()[0]
    client = redis.Redis.from_url(url)
    try:
        text = client.get("truth:system:startup_status")
    finally:
        client.close()
    return json.loads(text) if text else {}


async def trust_ready(node: NodeProc) -> bool:
    return bool(startup_status(node).get("services", {}).get("trust") == "ready")


async def metrics_text(node: NodeProc) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        return (await client.get(node.api + "/metrics")).text


def test_testnet_layouts_online_with_tokens_and_offline(tmp_path: Path) -> None:
    """No processes: what `node testnet` writes for online issuance (node0 holds the CA, the others
    only its id, address, fingerprint and a token) and with --offline-certs (certificates in every home)."""
    from node.commands.testnet import make_testnet
    from node.config import load_settings
    from node.trust import certificate_fingerprint
    from node.trust.tokens import token_hash

    online: Any = make_testnet(tmp_path / "online", 3, [ORIGIN], tokens=True)
    ca = online["origins"][0]["ca"]
    nodes = online["origins"][0]["nodes"]
    fingerprint = certificate_fingerprint(load_certificate((Path(ca["dir"]) / "ca.crt").read_bytes()))
    assert ca["online"] and ca["fingerprint"] == fingerprint and ca["node"] == nodes[0]["id"]
    given = []
    for i, entry in enumerate(nodes):
        home = Path(entry["home"])
        settings = load_settings(flags={"home": home}, env={}).settings
        assert not issued_certificate_path(home).exists() and not ca_certificate_path(home).exists()
        assert settings.ca_node == f"{nodes[0]['id']}@{nodes[0]['listen']}"
        assert settings.ca_fingerprint == fingerprint
        assert (settings.ca_dir == "ca") == (i == 0)
        assert (settings.bootstrap_token is not None) == (i > 0)
        if settings.bootstrap_token is not None:
            given.append(settings.bootstrap_token)
    tokens = json.loads((Path(ca["dir"]) / "tokens.json").read_text())
    assert len(tokens) == 2 and all(used == 0 for _, used in tokens.values())
    # the CA keeps only the tokens' hashes
    assert sorted(tokens) == sorted(token_hash(t) for t in given)
    assert not any(t in (Path(ca["dir"]) / "tokens.json").read_text() for t in given)

    offline: Any = make_testnet(tmp_path / "offline", 3, [ORIGIN], offline_certs=True)
    ca = offline["origins"][0]["ca"]
    assert not ca["online"] and Path(ca["dir"]) == tmp_path / "offline" / ORIGIN / "ca"
    ca_cert = load_certificate((Path(ca["dir"]) / "ca.crt").read_bytes())
    for entry in offline["origins"][0]["nodes"]:
        home = Path(entry["home"])
        settings = load_settings(flags={"home": home}, env={}).settings
        assert settings.ca_node is None and settings.ca_dir is None
        cert = load_certificate(issued_certificate_path(home).read_bytes())
        assert verify_issued(cert, ca=ca_cert, origin=ORIGIN, now=dt.datetime.now(dt.UTC)).node_id == entry["id"]


def log_entries_of(certificates: Any) -> list[dict[str, Any]]:
    return list(certificates["certificates"]) if certificates else []


async def test_transparency_log_on_every_node_and_revocation_cuts_off_through_the_chain(tmp_path: Path) -> None:
    """Every member's certificate is recorded on the chain and listed by `/certificates` on every
    node; with a short grace (5 s) the origin keeps deciding (records land within it); a revocation
    made at the CA is put on the chain and every other node cuts the revoked node off when it
    applies that block (their own revocation polling is off), while the rest keep deciding."""
    cluster = Cluster.create(tmp_path / "net", nodes=4, tokens=True)
    ca_dir = Path(manifest(tmp_path / "net")["origins"][0]["ca"]["dir"])
    grace = 5.0
    for node in cluster.nodes:
        node.extra_env["NODE_CERT_GRACE"] = str(grace)
        if node is not cluster.nodes[0]:
            node.extra_env["NODE_REVOCATION_POLL"] = "600"  # learn revocations from the chain only
    try:
        cluster.start()
        await eventually(lambda: all_in_phase(cluster, cluster.nodes, "consensus"), within=45,
                         what="all four nodes in phase consensus")
        consensus_at = time.monotonic()
        serials = check_issued_online(cluster, ca_dir)
        expected = {(node_id, f"{serial:x}") for node_id, serial in serials.items()}
        for node in cluster.nodes:
            async def listed(node: NodeProc = node) -> bool:
                entries = log_entries_of(await cluster.get(node, "/certificates"))
                return expected <= {(e["node_id"], e["serial"]) for e in entries if e["action"] != "revoked"}
            await eventually(listed, within=30, what=f"every member's certificate in /certificates on {node.node_id}")
        entries = log_entries_of(await cluster.get(cluster.nodes[1], "/certificates"))
        assert len({e["issuer"] for e in entries}) == 1 and all(e["block"] >= 0 for e in entries)
        # Past the grace, nobody was cut off for a missing record: an action still commits everywhere.
        await trio.sleep_until(trio.current_time() + max(0.0, consensus_at + grace + 1 - time.monotonic()))
        action_id = await submit(cluster.nodes[2], "after-grace")
        for node in cluster.nodes:
            await eventually(lambda node=node: committed(cluster, node, action_id), within=20,
                             what=f"action committed on {node.node_id} after the grace")
        assert not any(cluster.log_events(n, "peer cut off") for n in cluster.nodes)

        revoked, rest = cluster.nodes[3], cluster.nodes[:3]
        result = await trio.run_process(
            [sys.executable, "-m", "node", "certs", "revoke", "--ca", str(ca_dir), "--node", revoked.node_id],
            capture_stdout=True, capture_stderr=True,
        )
        assert b"revoked node" in result.stdout
        revoked_at = time.monotonic()
        for node in rest:
            async def on_chain(node: NodeProc = node) -> bool:
                entries = log_entries_of(await cluster.get(node, "/certificates"))
                return any(e["action"] == "revoked" and e["node_id"] == revoked.node_id for e in entries)
            await eventually(on_chain, within=20, what=f"the revocation in /certificates on {node.node_id}")
        for node in rest[1:]:  # not the CA node: it dropped node3 itself when it revoked it
            async def cut(node: NodeProc = node) -> bool:
                return any(r["node"] == revoked.node_id and "revoked on the chain" in r["reason"]
                           for r in cluster.log_events(node, "peer cut off"))
            await eventually(cut, within=10, what=f"{node.node_id} cutting the revoked node off")
            applied = [r for r in cluster.log_events(node, "revocation on chain") if r["node"] == revoked.node_id]
            assert applied, f"{node.node_id} did not log the revocation it applied"
        print(f"\n  revoked node cut off on every node {time.monotonic() - revoked_at:.1f} s after `certs revoke`")
        action_id = await submit(cluster.nodes[1], "after-chain-revocation")
        for node in rest:
            await eventually(lambda node=node: committed(cluster, node, action_id), within=20,
                             what=f"action committed on {node.node_id} after the revocation")
        assert await all_in_phase(cluster, rest, "consensus")
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()

"""Issue 11 on real processes: a member leaves (`node leave`) and the other three keep
deciding, under a peer set of three from round R + 6 on, and agree on every block; an equivocating
member is evicted with no human in the loop; a running origin grows from four to seven (`node join
--via`, then the joined node starts, catches up and creates events) while actions keep flowing, and
all five agree on every block."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from node.actions import Envelope
from node.commands.membership_cmd import leave_origin
from node.crypto import PrivateKey

from .harness import Cluster, NodeProc, eventually, manifest

pytestmark = pytest.mark.slow

ORIGIN = "alpha.example"


async def create_user(node: NodeProc, name: str) -> dict[str, Any]:
    key = PrivateKey.from_seed(f"membership-cluster-{name}".encode())
    wire = Envelope.sign(key, origin=ORIGIN, path="/users/create", args={"name": name}, nonce=1,
                         expiry_ns=time.time_ns() + 600 * 10**9).to_wire()
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(node.api + "/actions", params={"wait": "true"}, content=wire,
                                     headers={"content-type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    receipt: dict[str, Any] = response.json()
    assert receipt["ok"], receipt
    return receipt


async def test_a_member_leaves_and_the_other_three_keep_deciding(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path / "net", nodes=4)
    cluster.start()
    try:
        await cluster.wait_ready(within=90)
        await create_user(cluster.nodes[0], "before")
        stay, leaver = cluster.nodes[:3], cluster.nodes[3]
        with trio.fail_after(150):
            done = await trio.to_thread.run_sync(lambda: leave_origin(leaver.api, leaver.home, timeout=120))
        effective = done["effective_round"]
        for node in stay:
            validators = await cluster.get(node, f"/validators/{effective}")
            assert validators["count"] == 3 and validators["supermajority"] == 3, validators
            assert leaver.node_id not in [v if isinstance(v, str) else v.get("id") for v in validators["validators"]]
            earlier = await cluster.get(node, f"/validators/{effective - 1}")
            assert earlier["count"] == 4
        # The leaver is out: stop it; the three decide on their own under the new peer set.
        leaver.stop()
        receipt = await create_user(stay[1], "after")
        block = await cluster.get(stay[1], f"/block/{receipt['block']}")
        assert block["round_received"] > effective

        async def same_block() -> bool:
            seen = [await cluster.get(n, f"/block/{receipt['block']}") for n in stay]
            return all(b is not None for b in seen) and len({(b["hash"], b["state_hash"]) for b in seen}) == 1

        await eventually(same_block, within=60, what="the three remaining members agreeing on the new block")
        for node in stay:
            late = cluster.log_events(node, "membership change applied too late: rounds at or past its effective "
                                            "round were already placed with the old peer set")
            assert late == [], late
            assert cluster.log_events(node, "membership change scheduled"), node.log_tail()
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()


async def evict_block(cluster: Cluster, node: NodeProc, path: str = "/membership/evict") -> dict[str, Any] | None:
    """The block holding an accepted `path` record (an eviction by default), if any."""
    status = await cluster.get(node, "/status")
    for index in range(int(status.get("latest_block") or 0), -1, -1):
        block = await cluster.get(node, f"/block/{index}")
        for tx in (block or {}).get("transactions", []):
            if tx.get("path") == path and tx.get("ok"):
                return block
    return None


def certificate_log(answer: Any) -> list[dict[str, Any]]:
    """The transparency log entries of a `/certificates` answer (a list, or an object holding one)."""
    if isinstance(answer, dict):
        answer = next((v for v in answer.values() if isinstance(v, list)), [])
    return [e for e in answer or [] if isinstance(e, dict)]


async def test_a_member_that_forks_is_evicted_automatically(tmp_path: Path) -> None:
    from node.consensus.event import Event
    from node.consensus.sync import EagerPush, SyncRequest, encode_message

    from .test_cluster_forged import liar_endpoint, send

    cluster = Cluster.create(tmp_path / "net", nodes=4, offline_certs=True)
    honest = cluster.nodes[:3]
    addresses = {e["id"]: e["listen"] for e in manifest(cluster.root)["origins"][0]["nodes"]}
    for node in honest:
        node.start()
    endpoint, liar, key = liar_endpoint(cluster.root)
    try:
        await Cluster(cluster.root, honest).wait_ready(within=90)
        async with trio.open_nursery() as nursery:
            await nursery.start(endpoint.run)
            victim = honest[0]
            assert await send(endpoint, victim, addresses[victim.node_id],
                              encode_message(SyncRequest(key.public, {}))) == "accepted"
            # Two validly signed events by the fourth member at index 0: an equivocation.
            now = time.time_ns()
            twins = tuple(Event.create(key, index=0, self_parent=None, other_parent=None, timestamp=now + i,
                                       transactions=(f"branch-{i}".encode(),)) for i in range(2))
            await send(endpoint, victim, addresses[victim.node_id], encode_message(EagerPush(twins)))
            await create_user(honest[1], "after-the-fork")  # a block lets the followers look at the graph

            async def evicted() -> dict[str, Any] | None:
                blocks = [await evict_block(cluster, n) for n in honest]
                return blocks[0] if all(b is not None for b in blocks) else None

            block = await eventually(evicted, within=90, what="the forker's eviction committed on every node")
            effective = block["round_received"] + 6

            async def three_validators() -> bool:
                seen = [await cluster.get(n, f"/validators/{effective}") for n in honest]
                return all(v is not None and v["count"] == 3 for v in seen)

            await eventually(three_validators, within=30, what="the peer set without the forker")
            # The evidence (both signed events) is readable through the API on every honest node.
            for node in honest:
                proofs = (await cluster.get(node, "/history"))["evidence"]
                assert [p["creator"] for p in proofs] == [key.public.hex()]
                wires = {Event.from_wire(bytes.fromhex(proofs[0][s])) for s in ("a", "b")}
                assert {e.hash for e in wires} == {e.hash for e in twins}
            assert any(cluster.log_events(n, "fork detected: eviction reported") for n in honest)

            # The forker's certificate is revoked on the chain, with no human and no CA proof.
            async def revoked() -> bool:
                for node in honest:
                    entries = certificate_log(await cluster.get(node, "/certificates"))
                    if not any(e.get("action") == "revoked" and e.get("node_id") == key.fingerprint
                               and e.get("reason") == "evicted for forking" for e in entries):
                        return False
                return True

            await eventually(revoked, within=60, what="the forker's revocation committed on every node")
            assert any(cluster.log_events(n, "evicted node's certificate revocation submitted") for n in honest)
            # Consensus continues after the eviction is in force.
            receipt = await create_user(honest[2], "after-the-eviction")
            later = await cluster.get(honest[2], f"/block/{receipt['block']}")
            assert later["round_received"] >= effective
            nursery.cancel_scope.cancel()
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        for node in honest:
            node.stop()


def joiner_home(cluster: Cluster, root: Path) -> NodeProc:
    """A home for a node outside genesis, made like `node testnet` makes one: its own key, free
    ports, the origin's CA certificate and a certificate issued (offline) by the origin CA; no CA
    settings, so it presents that certificate as it is.  genesis.json comes with `node join`."""
    import datetime as dt
    import socket

    from node.commands.testnet import free_port
    from node.engine.paths import ca_certificate_path, issued_certificate_path
    from node.runtime.home import Home, init_home
    from node.trust import make_csr
    from node.trust.ca_dir import CaDirectory
    from node.trust.certs import certificate_pem

    home = Home(root)
    init_home(home, ORIGIN)
    ca = CaDirectory(Path(manifest(cluster.root)["origins"][0]["ca"]["dir"])).load_ca()
    issued = ca.issue(make_csr(home.load_key(), ORIGIN), dt.datetime.now(dt.UTC))
    issued_certificate_path(home.root).write_bytes(certificate_pem(issued))
    ca_certificate_path(home.root).write_bytes(ca.certificate_pem())
    listen = f"127.0.0.1:{free_port(socket.SOCK_DGRAM, '127.0.0.1')}"
    api = f"127.0.0.1:{free_port(socket.SOCK_STREAM, '127.0.0.1')}"
    home.config_file.write_text(f'origin = "{ORIGIN}"\nlisten = "{listen}"\napi = "{api}"\npeers = []\n')
    return NodeProc(ORIGIN, home.load_key().fingerprint, home.root, api)


async def keep_acting(nodes: list[NodeProc], count: list[int]) -> None:
    """Actions keep flowing while the origin grows: one user after the other, round-robin."""
    while True:
        await create_user(nodes[count[0] % len(nodes)], f"flow-{count[0]}")
        count[0] += 1


async def same_blocks(cluster: Cluster, nodes: list[NodeProc], upto: int) -> list[tuple[str, str]]:
    """Every node's blocks 0..upto as (hash, state hash); asserts they are all the same."""
    seen = []
    for node in nodes:
        rows: list[tuple[str, str]] = []
        while len(rows) <= upto:
            page = await cluster.get(node, f"/blocks/{len(rows)}?count=50")
            assert page["blocks"], (node.node_id, len(rows), upto)
            rows += [(b["hash"], b["state_hash"]) for b in page["blocks"]]
        seen.append(rows[:upto + 1])
    assert all(rows == seen[0] for rows in seen), "the nodes disagree on a block"
    return seen[0]


def listen_of(node: NodeProc) -> str:
    text = (node.home / "config" / "node.toml").read_text()
    return next(line.split('"')[1] for line in text.splitlines() if line.startswith("listen"))


async def grow(cluster: Cluster, joiner: NodeProc, via: NodeProc) -> int:
    """`node join` through `via`, start the joined node, wait until a member sees a witness it
    created; returns the round from which it is a member."""
    from node.commands.membership_cmd import join_origin

    size = len(cluster.nodes) + 1
    genesis = joiner.home / "config" / "genesis.json"

    def join() -> dict[str, Any]:
        assert not genesis.exists()
        done = join_origin(via.api, joiner.home, address=listen_of(joiner), timeout=90)
        assert genesis.exists()  # written from the member's /genesispeers
        return done

    started = trio.current_time()
    with trio.fail_after(100):
        done = await trio.to_thread.run_sync(join)
    joined_after = trio.current_time() - started
    effective: int = done["effective_round"]
    assert done["history"].endswith("membership.json")
    joiner.start()
    members = list(cluster.nodes)
    cluster.nodes.append(joiner)
    for node in members:
        validators = await cluster.get(node, f"/validators/{effective}")
        assert validators["count"] == size, validators
        assert validators["supermajority"] == 2 * size // 3 + 1, validators

    async def joiner_witness() -> int | None:
        status = await cluster.get(members[0], "/status")
        # From a few rounds before its own: a first event placed too early would show there.
        for rnd in range(max(0, effective - 4), int(status["latest_round"]) + 1):
            info = await cluster.get(members[0], f"/rounds/{rnd}")
            if info and any(w["creator"] == joiner.node_id for w in info.get("witnesses", [])):
                return rnd
        return None

    # The joined node catches up, then creates events from its round on (seen by a member); its
    # first event is a witness, so no earlier round holds one of its events.
    first = await eventually(joiner_witness, within=60, what=f"a witness created by joined node {joiner.node_id}")
    assert first >= effective
    print(f"node {size}: join in force after {joined_after:.1f}s (round {effective}); first witness "
          f"(round {first}) {trio.current_time() - started - joined_after:.1f}s after its start")
    return effective


async def test_a_running_origin_grows_from_four_to_seven_while_actions_flow(tmp_path: Path) -> None:
    from node.commands.membership_cmd import LeaveFailed, join_origin

    cluster = Cluster.create(tmp_path / "net", nodes=4)
    joiners = [joiner_home(cluster, tmp_path / f"joiner{i}") for i in range(3)]
    cluster.start()
    try:
        await cluster.wait_ready(within=90)
        await create_user(cluster.nodes[0], "before-join")
        flowed = [0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_acting, list(cluster.nodes), flowed)
            for i, joiner in enumerate(joiners):
                via = joiners[0] if i == 2 else cluster.nodes[1 + i]  # the last one joins through a joined node
                await grow(cluster, joiner, via=via)
                if i == 0:
                    five = await create_user(joiner, "through-the-fifth")
            receipt = await create_user(joiners[-1], "through-the-seventh")
            nursery.cancel_scope.cancel()
        assert flowed[0] > 0 and five["block"] < receipt["block"]
        last = receipt["block"]

        async def everyone_has_it() -> bool:
            seen = [await cluster.get(n, f"/block/{last}") for n in cluster.nodes]
            return all(b is not None for b in seen)

        await eventually(everyone_has_it, within=60, what="every node, the joined ones too, at the last block")
        blocks = await same_blocks(cluster, cluster.nodes, last)
        assert len(blocks) == last + 1 and len(cluster.nodes) == 7
        for node in cluster.nodes:
            late = cluster.log_events(node, "membership change applied too late: rounds at or past its effective "
                                            "round were already placed with the old peer set")
            assert late == [], (node.node_id, late)
        history = await cluster.get(joiners[-1], "/history")
        assert [h["count"] for h in history["history"]] == [4, 5, 6, 7]
        # The same key cannot join twice.
        with pytest.raises(LeaveFailed, match="exists"):
            await trio.to_thread.run_sync(
                lambda: join_origin(cluster.nodes[0].api, joiners[0].home, address=None, timeout=30))
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()

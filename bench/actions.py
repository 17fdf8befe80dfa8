"""End-to-end actions benchmark: signed actions into a 4-node origin of real node processes.

Pre-signs N independent actions (`/users/create`, one fresh key each, so no action waits for
another), starts a `node testnet` origin (`python -m node start` per node), sends the actions
round-robin over the nodes with C concurrent clients (a share with `?wait=true` to time submit
-> final receipt), and polls one node's chain until every acknowledged action is in a block.

Prints actions/s reaching finality, latency p50/p99 (submit -> final receipt), the 202 time, and
the same-run verify ceiling: PyNaCl Ed25519 verifies/s on one core x cores / nodes, i.e. how
many actions/s this machine could verify if every node checks every action once on its share
of the cores.  The ratio is finality rate / ceiling.  On a shared machine the figures move
with the other load: compare ratios, not absolute numbers.

    python bench/actions.py [--nodes 4] [--actions 3000] [--concurrency 64] [--wait-share 0.1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nacl.signing
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: `simulations`

from node.actions import Envelope  # noqa: E402
from node.crypto import PrivateKey  # noqa: E402
from simulations.local_cluster import LocalCluster  # noqa: E402
from simulations.local_report import percentile  # noqa: E402

ORIGIN = "alpha.example"
HEADERS = {"content-type": "application/octet-stream"}


def verify_ceiling(seconds: float = 1.0) -> float:
    """Ed25519 verifies per second on one core (best of three samples of CPU time)."""
    key = nacl.signing.SigningKey.generate()
    signed = key.sign(b"x" * 200)
    vk = key.verify_key
    best = 0.0
    for _ in range(3):
        n, start = 0, time.process_time()
        while time.process_time() - start < seconds / 3:
            for _ in range(100):
                vk.verify(signed)
            n += 100
        best = max(best, n / (time.process_time() - start))
    return best


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(x) for x in fields[11:15]) / ticks


def node_cpu(cluster: LocalCluster) -> float:
    return sum(cpu_seconds(n.proc.pid) for n in cluster.nodes if n.proc is not None and n.running)


def presign(count: int) -> list[bytes]:
    expiry = time.time_ns() + 3600 * 10**9
    return [Envelope.sign(PrivateKey.generate(), origin=ORIGIN, path="/users/create", args={"name": f"b{i}"},
                          nonce=1, expiry_ns=expiry).to_wire() for i in range(count)]


async def run(cluster: LocalCluster, wires: list[bytes], concurrency: int, wait_share: float) -> dict[str, float]:
    nodes = cluster.nodes
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
    async with httpx.AsyncClient(limits=limits) as client:
        await cluster.wait_ready(client, within=180)
        acked: list[str] = []
        latencies: list[float] = []
        ack_times: list[float] = []
        refused = 0
        wait_every = max(1, round(1 / wait_share)) if wait_share > 0 else 0
        queue = iter(enumerate(wires))

        async def sender() -> None:
            nonlocal refused
            for i, wire in queue:
                wait = wait_every and i % wait_every == 0
                url = nodes[i % len(nodes)].api + "/actions" + ("?wait=true&timeout=120" if wait else "")
                t0 = trio.current_time()
                try:
                    r = await client.post(url, content=wire, headers=HEADERS, timeout=130)
                except httpx.HTTPError:
                    refused += 1
                    continue
                if r.status_code == 202:
                    ack_times.append(trio.current_time() - t0)
                elif r.status_code == 200:
                    latencies.append(trio.current_time() - t0)
                else:
                    refused += 1
                    continue
                acked.append(r.json()["action_id"])

        events0 = await events_inserted(client, nodes[0].api)
        cpu0 = node_cpu(cluster)
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(sender)
        sent = trio.current_time() - start
        # Finality: poll node 0's chain until every acknowledged action is in a block.
        want, seen, next_index = set(acked), set[str](), 0
        with trio.move_on_after(300):
            while not want <= seen:
                page = (await client.get(f"{nodes[0].api}/blocks/{next_index}?count=50", timeout=10)).json()
                for block in page["blocks"]:
                    seen.update(t["action_id"] for t in block.get("transactions", []) if "action_id" in t)
                    next_index = block["index"] + 1
                if not page["blocks"]:
                    await trio.sleep(0.2)
        final = trio.current_time() - start
        cpu = node_cpu(cluster) - cpu0
        # Every node inserts every event, so one node's count is the origin's gossip volume.
        events = await events_inserted(client, nodes[0].api) - events0
        return {"acked": len(acked), "refused": refused, "final": len(want & seen), "sent_s": sent,
                "final_s": final, "p50": percentile(latencies, 0.5) or 0.0, "p99": percentile(latencies, 0.99) or 0.0,
                "ack_p50": percentile(ack_times, 0.5) or 0.0, "samples": len(latencies),
                "node_cpu_s": cpu, "events": events}


async def events_inserted(client: httpx.AsyncClient, api: str) -> float:
    """`node_events_inserted_total` from a node's Prometheus metrics."""
    text = (await client.get(api + "/metrics", timeout=10)).text
    for line in text.splitlines():
        if line.startswith("node_events_inserted_total "):
            return float(line.split()[1])
    return 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--actions", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--wait-share", type=float, default=0.1)
    args = p.parse_args()
    cores = os.cpu_count() or 1
    print(f"pre-signing {args.actions} actions ...", flush=True)
    wires = presign(args.actions)
    with tempfile.TemporaryDirectory(prefix="bench-actions-") as tmp:
        cluster = LocalCluster.create(Path(tmp) / "net", args.nodes, 1)
        try:
            cluster.start_all()
            r = trio.run(run, cluster, wires, args.concurrency, args.wait_share)
        finally:
            cluster.stop_all()
    ceiling_core = verify_ceiling()
    ceiling = ceiling_core * cores / args.nodes
    rate = r["final"] / r["final_s"]
    print(f"nodes {args.nodes}, cores {cores}, actions {args.actions}, concurrency {args.concurrency}")
    print(f"acknowledged {r['acked']:.0f}, refused {r['refused']:.0f}, final {r['final']:.0f}; "
          f"all sent in {r['sent_s']:.1f}s, all final after {r['final_s']:.1f}s")
    print(f"actions/s reaching finality: {rate:9.1f}")
    print(f"gossip events/s, origin-wide (events inserted by node 0): {r['events'] / r['final_s']:9.1f}")
    print(f"latency submit -> final receipt ({r['samples']:.0f} samples): p50 {r['p50']:.3f}s  p99 {r['p99']:.3f}s;"
          f"  submit -> 202 p50 {r['ack_p50'] * 1000:.1f}ms")
    print(f"verify ceiling: {ceiling_core:9.0f} Ed25519 verifies/s/core x {cores} cores / {args.nodes} nodes "
          f"= {ceiling:9.0f} actions/s")
    print(f"ratio finality rate / verify ceiling: {rate / ceiling:.4f}")
    # CPU time is what the nodes really spent, whatever else shares the machine.
    per_action = r["node_cpu_s"] / max(1.0, r["final"])
    print(f"node CPU: {r['node_cpu_s']:.1f}s over {args.nodes} nodes = {per_action * 1000:.2f} ms CPU per final action "
          f"(all nodes together); verify share {args.nodes / ceiling_core * 1000:.2f} ms; "
          f"CPU-bound capacity of {cores} idle cores: {cores / per_action:.0f} actions/s")


if __name__ == "__main__":
    main()

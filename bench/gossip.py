"""Gossip speed of a real origin: cluster-wide events/s and blocks/s of `node testnet` processes.

    python bench/gossip.py [--nodes 4] [--seconds 20] [--warmup 5] [--rate 10]

Starts an N-node origin (`node testnet`, one `python -m node start` per node, QUIC on 127.0.0.1),
keeps every node busy with a steady stream of pre-signed actions (`--rate` per node per second,
each a `/users/create` by a fresh key, so none waits for another), and after `--warmup` seconds
measures for `--seconds`:

- events/s, origin-wide: growth of `node_events_inserted_total` (every node inserts every event,
  its own included, so one node's count is the whole origin's; the mean over nodes is printed);
- blocks/s: growth of `last_block` in `/status`;
- gossip errors/s (from `/metrics`) and the nodes' CPU use (from /proc), and from it the CPU one
  event costs the whole origin and how many events/s the machine's cores could carry at that cost;
- the same-run Ed25519 verify ceiling: PyNaCl verifies/s on one core, and what it allows for
  events if every node verifies each event of the others once on its share of the cores:
  verifies/s/core x cores / (nodes - 1).

The stream is kept light on purpose: a member is busy (syncs at the busy heartbeat and makes an
event after each sync) while it holds payload or while loaded events wait for their order, so a
few actions per second per node keep the whole origin at full gossip speed without spending its
CPU on the HTTP path. On a shared machine the figures move with the other load: run it a few times.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: `bench`, `simulations`

from bench.actions import ORIGIN, cpu_seconds, verify_ceiling  # noqa: E402
from node.actions import Envelope  # noqa: E402
from node.crypto import PrivateKey  # noqa: E402
from simulations.local_cluster import LocalCluster, NodeProcess  # noqa: E402

HEADERS = {"content-type": "application/octet-stream"}


def presign(count: int) -> list[bytes]:
    expiry = time.time_ns() + 3600 * 10**9
    return [
        Envelope.sign(PrivateKey.generate(), origin=ORIGIN, path="/users/create", args={"name": f"g{i}"},
                      nonce=1, expiry_ns=expiry).to_wire()
        for i in range(count)
    ]


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def sample(client: httpx.AsyncClient, nodes: list[NodeProcess]) -> list[dict[str, float]]:
    out = []
    for n in nodes:
        status = (await client.get(n.api + "/status", timeout=10)).json()
        text = (await client.get(n.api + "/metrics", timeout=10)).text
        out.append({
            "events": metric(text, "node_events_inserted_total"),
            "block": float(status.get("latest_block") or 0),
            "errors": metric(text, 'node_gossip_errors_total{kind="sync"}'),
            "cpu": cpu_seconds(n.proc.pid) if n.proc is not None else 0.0,
            "at": time.monotonic(),
        })
    return out


async def drive(
    cluster: LocalCluster, wires: list[bytes], rate: float, warmup: float, seconds: float
) -> dict[str, float]:
    nodes = cluster.nodes
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as client:
        await cluster.wait_ready(client, within=180)
        queue = iter(wires)
        stats = {"sent": 0, "refused": 0}

        async def sender(node: NodeProcess, every: float) -> None:
            next_at = trio.current_time()
            for wire in queue:
                next_at += every
                try:
                    r = await client.post(node.api + "/actions", content=wire, headers=HEADERS, timeout=30)
                    stats["sent" if r.status_code == 202 else "refused"] += 1
                except httpx.HTTPError:
                    stats["refused"] += 1
                await trio.sleep_until(max(next_at, trio.current_time()))

        result: dict[str, float] = {}
        async with trio.open_nursery() as nursery:
            per_sender = 4  # a 202 waits until the action is in a stored event: a few senders per node
            for node in nodes:
                for _ in range(per_sender):
                    nursery.start_soon(sender, node, per_sender / rate)
            await trio.sleep(warmup)
            before = await sample(client, nodes)
            await trio.sleep(seconds)
            after = await sample(client, nodes)
            nursery.cancel_scope.cancel()
        spans = [a["at"] - b["at"] for a, b in zip(after, before, strict=True)]
        rates = {
            key: [(a[key] - b[key]) / s for a, b, s in zip(after, before, spans, strict=True)]
            for key in ("events", "block", "errors", "cpu")
        }
        for key, values in rates.items():
            result[key] = sum(values) / len(values) if key in ("events", "block") else sum(values)
        result["events_min"] = min(rates["events"])
        result["events_max"] = max(rates["events"])
        result["sent"] = stats["sent"]
        result["refused"] = stats["refused"]
        return result


def run_and_print(nodes: int, seconds: float, warmup: float, rate: float) -> dict[str, float]:
    cores = os.cpu_count() or 1
    total = int(rate * nodes * (seconds + warmup + 30)) + 100
    print(f"pre-signing {total} actions ...", flush=True)
    wires = presign(total)
    with tempfile.TemporaryDirectory(prefix="bench-gossip-") as tmp:
        cluster = LocalCluster.create(Path(tmp) / "net", nodes, 1)
        try:
            cluster.start_all()
            r = trio.run(drive, cluster, wires, rate, warmup, seconds)
        finally:
            cluster.stop_all()
    per_core = verify_ceiling()
    events_ceiling = per_core * cores / max(1, nodes - 1)
    print(f"nodes {nodes}, cores {cores}, {seconds:g}s measured after {warmup:g}s of load; "
          f"actions accepted {r['sent']:.0f}, refused {r['refused']:.0f}")
    spread = f"{r['events_min']:.1f} .. {r['events_max']:.1f}"
    print(f"events/s, origin-wide:  {r['events']:8.1f}  (by each node's count: {spread})")
    print(f"blocks/s:               {r['block']:8.2f}")
    print(f"gossip errors/s:        {r['errors']:8.2f}")
    per_event = r["cpu"] / max(r["events"], 1e-9)
    print(f"node CPU, all nodes:    {r['cpu']:8.2f} cores of {cores}: {per_event * 1000:.2f} ms CPU per event "
          f"(origin-wide), {cores / per_event:.0f} events/s if the nodes had all {cores} cores")
    print(f"verify ceiling: {per_core:.0f} Ed25519 verifies/s/core x {cores} cores / {nodes - 1} verifying "
          f"peers = {events_ceiling:.0f} events/s; ratio {r['events'] / events_ceiling:.3f}")
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=5.0, help="load before measuring")
    parser.add_argument("--rate", type=float, default=10.0, help="actions per second sent to each node")
    args = parser.parse_args()
    run_and_print(args.nodes, args.seconds, args.warmup, args.rate)


if __name__ == "__main__":
    main()

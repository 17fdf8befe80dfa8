"""Cross-origin round trips between two local origins of real node processes.

Starts `node testnet --origins 2` (N nodes each, offline certificates; each origin finds the other
only through the other's DNS responders), waits until every node is `federated`, lets a user of
alpha join a point of beta, then sends R signals to that point *through alpha* (`target=beta`)
with C concurrent clients, each waiting for its final receipt (`POST /actions?wait=1`): the
request is committed in alpha's chain, carried over QUIC to beta, decided by beta's chain and its
agreed answer committed back in alpha's chain. Prints round trips/s and latency p50/p99.

Same-run ceiling: the same number of local actions (`/users/create`, fresh keys) in alpha itself
(one chain, no federation), with the same concurrency. A cross-origin round trip needs at least three blocks
and two block proofs, so the ratio says what federation costs over a local action.

    python bench/federation.py [--nodes 3] [--requests 40] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: `simulations`

from node.actions import Envelope  # noqa: E402
from node.crypto import PrivateKey  # noqa: E402
from simulations.local_cluster import LocalCluster, NodeProcess  # noqa: E402
from simulations.local_report import percentile  # noqa: E402

ALPHA, BETA = "alpha.example", "beta.example"
HEADERS = {"content-type": "application/octet-stream"}


class User:
    def __init__(self, name: str, origin: str) -> None:
        self.key = PrivateKey.from_seed(f"{name}-{time.time_ns()}".encode())
        self.origin = origin
        self.nonce = time.time_ns()

    def sign(self, path: str, args: dict[str, Any], target: str | None = None) -> Envelope:
        self.nonce += 1
        return Envelope.sign(self.key, origin=self.origin, path=path, args=args, nonce=self.nonce,
                             expiry_ns=time.time_ns() + 900 * 10**9, target=target)


async def post(client: httpx.AsyncClient, node: NodeProcess, envelope: Envelope) -> dict[str, Any]:
    response = await client.post(f"{node.api}/actions?wait=1&timeout=120", content=envelope.to_wire(),
                                 headers=HEADERS, timeout=130)
    body: dict[str, Any] = response.json()
    if response.status_code != 200 or not body.get("ok"):
        raise RuntimeError(f"{envelope.path} at {node.name}: {response.status_code} {body}")
    return body


async def wait_federated(client: httpx.AsyncClient, cluster: LocalCluster, within: float = 180.0) -> None:
    with trio.fail_after(within):
        for node in cluster.nodes:
            while True:
                try:
                    if (await client.get(f"{node.api}/federation", timeout=5)).json().get("up"):
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                await trio.sleep(0.5)


async def timed(client: httpx.AsyncClient, nodes: list[NodeProcess], envelopes: list[Envelope],
                concurrency: int) -> tuple[float, list[float]]:
    """Send every envelope (round-robin over `nodes`, `concurrency` at once); (elapsed s, latencies)."""
    latencies: list[float] = []
    queue = list(enumerate(envelopes))

    async def worker() -> None:
        while queue:
            i, envelope = queue.pop(0)
            started = time.perf_counter()
            await post(client, nodes[i % len(nodes)], envelope)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    return time.perf_counter() - started, latencies


async def run(cluster: LocalCluster, requests: int, concurrency: int) -> dict[str, Any]:
    alpha, beta = cluster.of(ALPHA), cluster.of(BETA)
    async with httpx.AsyncClient() as client:
        await cluster.wait_ready(client)
        await wait_federated(client, cluster)
        bob, alice = User("bob", BETA), User("alice", ALPHA)
        await post(client, beta[0], bob.sign("/users/create", {"name": "bob"}))
        await post(client, beta[0], bob.sign("/points/create", {"point": "bench"}))
        await post(client, alpha[0], alice.sign("/users/create", {"name": "alice"}))
        await post(client, alpha[0], alice.sign("/points/join", {"point": "bench"}, target=BETA))
        # Independent local actions (one fresh key each: concurrent actions of one actor could be
        # ordered against their nonces); remote ones skip the actor's nonce (the request id counts).
        local = [User(f"local-{i}", ALPHA).sign("/users/create", {"name": f"u{i}"}) for i in range(requests)]
        remote = [alice.sign("/signals/post", {"point": "bench", "body": i}, target=BETA) for i in range(requests)]
        local_s, local_lat = await timed(client, alpha, local, concurrency)
        remote_s, remote_lat = await timed(client, alpha, remote, concurrency)
    return {"local": (local_s, local_lat), "remote": (remote_s, remote_lat)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=3, help="nodes per origin")
    p.add_argument("--requests", type=int, default=40)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--keep", type=Path, help="write the homes (and logs) here and keep them")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-federation-") as tmp:
        root = args.keep if args.keep is not None else Path(tmp) / "net"
        cluster = LocalCluster.create(root, args.nodes, 2, offline_certs=True)
        cluster.start_all()
        try:
            result = trio.run(run, cluster, args.requests, args.concurrency)
        finally:
            cluster.stop_all()
    rates = {}
    for name, (elapsed, latencies) in result.items():
        rates[name] = len(latencies) / elapsed
        p50, p99 = percentile(latencies, 0.5) or 0.0, percentile(latencies, 0.99) or 0.0
        label = "cross-origin (alpha -> beta -> alpha)" if name == "remote" else "same-origin ceiling (alpha)"
        print(f"{label:40s} {rates[name]:7.2f} round trips/s   p50 {p50 * 1000:7.0f} ms   p99 {p99 * 1000:7.0f} ms"
              f"   ({len(latencies)} requests, concurrency {args.concurrency}, {args.nodes} nodes per origin)")
    print(f"ratio cross-origin / same-origin: {rates['remote'] / rates['local']:.2f}")


if __name__ == "__main__":
    main()

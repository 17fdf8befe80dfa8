"""Issue 4 acceptance: a 4-node origin from `node testnet`, real processes, QUIC with mutual TLS.

Actions submitted to different nodes end in identical blocks on all four; with one node stopped
the other three keep deciding; restarted, it comes back to the same chain.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from node.actions import Envelope
from node.crypto import PrivateKey
from node.storage.timeseries import BlockRow, LatencyRow, TimeSeriesStore

from .harness import Cluster, NodeProc, eventually

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

ORIGIN = "alpha.example"


def user_create(key: PrivateKey, name: str) -> bytes:
    envelope = Envelope.sign(
        key, origin=ORIGIN, path="/users/create", args={"name": name},
        nonce=1, expiry_ns=time.time_ns() + 600 * 10**9,
    )
    return envelope.to_wire()


async def submit(node: NodeProc, wire: bytes) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            node.api + "/actions", content=wire, headers={"content-type": "application/octet-stream"}
        )
    assert response.status_code == 202, response.text
    action_id: str = response.json()["action_id"]
    return action_id


async def chain_of(cluster: Cluster, node: NodeProc) -> list[dict[str, Any]]:
    status = await cluster.get(node, "/status")
    latest = status.get("latest_block")
    if latest is None:
        return []
    blocks = []
    for index in range(latest + 1):
        block = await cluster.get(node, f"/block/{index}")
        blocks.append(block)
    return blocks


def summary(blocks: list[dict[str, Any]]) -> list[tuple[int, str, str, list[str]]]:
    return [
        (b["index"], b["hash"], b["state_hash"], [t["action_id"] for t in b["transactions"]]) for b in blocks
    ]


async def check_dag_page_in_chromium(node: NodeProc) -> None:
    """The live DAG page of a running node, rendered by a real headless Chromium: no console
    errors, and the origin's events drawn (one clickable dot per event)."""
    if not HAVE_CHROMIUM:
        warnings.warn(f"NO CHROMIUM at {CHROMIUM}: the DAG page of a running origin was not rendered", stacklevel=1)
        return
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "cluster_dag_page.png"
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--enable-logging=stderr", "--v=0",
             "--window-size=1400,900", "--virtual-time-budget=5000"]
    dom = await trio.run_process([*flags, "--dump-dom", node.api + "/"], capture_stdout=True,
                                 capture_stderr=True, check=False)
    await trio.run_process([*flags, f"--screenshot={shot}", node.api + "/"], capture_stdout=True,
                           capture_stderr=True, check=False)
    log = dom.stderr.decode(errors="replace")
    errors = [ln for ln in log.splitlines() if "CONSOLE" in ln and ("Error" in ln or "Uncaught" in ln)]
    assert errors == [], errors
    html = dom.stdout.decode(errors="replace")
    dots = re.findall(r"<circle[^>]*>", html)
    assert len(dots) >= 4, f"no events drawn on the page ({len(dots)} circles)"
    assert shot.exists() and shot.stat().st_size > 1000


async def committed_ids(cluster: Cluster, node: NodeProc) -> set[str]:
    ids: set[str] = set()
    for _, _, _, txs in summary(await chain_of(cluster, node)):
        ids.update(txs)
    return ids


async def test_four_nodes_agree_and_survive_a_stopped_member(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path / "net", nodes=4)
    cluster.start()
    try:
        await cluster.wait_ready(within=60)
        first = [await submit(node, user_create(PrivateKey.generate(), f"user{i}")) for i, node in
                 enumerate(cluster.nodes)]

        async def all_have(ids: list[str], nodes: list[NodeProc]) -> bool:
            for node in nodes:
                if not set(ids) <= await committed_ids(cluster, node):
                    return False
            return True

        await eventually(lambda: all_have(first, cluster.nodes), within=60, what="first actions on all nodes")
        chains = [summary(await chain_of(cluster, n)) for n in cluster.nodes]
        shortest = min(len(c) for c in chains)
        assert shortest >= 1
        assert all(c[:shortest] == chains[0][:shortest] for c in chains), "nodes disagree on a block"

        # The engine feeds the node's Prometheus metrics.
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(cluster.nodes[0].api + "/metrics")).text
        values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                  if line and not line.startswith("#") and len(line.split()) == 2}
        assert values["node_events_inserted_total"] > 0
        assert values["node_rounds_decided_total"] > 0
        assert values['node_gossip_bytes_total{direction="received"}'] > 0
        assert values["node_redis_bridge_up"] == 1

        await check_dag_page_in_chromium(cluster.nodes[1])

        # One member stops: three of four are still a supermajority and keep deciding.
        stopped = cluster.nodes[3]
        assert stopped.stop() == 0
        alive = cluster.nodes[:3]
        second = [await submit(node, user_create(PrivateKey.generate(), f"later{i}")) for i, node in enumerate(alive)]
        await eventually(lambda: all_have(second, alive), within=60, what="decisions without the stopped member")

        # Restarted, it catches up to the same chain.
        stopped.start()
        await eventually(lambda: all_have(first + second, [stopped]), within=90, what="restarted member catching up")
        chains = [summary(await chain_of(cluster, n)) for n in cluster.nodes]
        shortest = min(len(c) for c in chains)
        assert all(c[:shortest] == chains[0][:shortest] for c in chains), "nodes disagree after the restart"

        # Block statistics and action latencies reach each node's DuckDB time series.
        cluster.stop()
        series = TimeSeriesStore(cluster.nodes[0].home / "data" / "timeseries.duckdb")
        try:
            assert series.count(BlockRow) >= 1
            assert series.count(LatencyRow) >= 2  # node 0 took one action in each wave
        finally:
            series.close()
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()

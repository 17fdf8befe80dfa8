"""Local multi-process simulation: a `node testnet` of real node processes under a signed-action load.

    python -m simulations.local --nodes 4 --origins 2 --duration 60 --rate 500 --report DIR \
        [--faults kill,pause,redis,restart,partition,latency,loss,slow,byzantine] [--keep] [--out DIR]

Starts every node (`python -m node start`), waits until all are ready, drives many actors at one
global rate spread over nodes and origins, shows per-node progress live, optionally injects
faults (see `local_faults`), then checks agreement, convergence, no lost acknowledged action, no
double application and liveness after every fault (and, with a byzantine member, that every honest
node flagged it), and writes `report.json` and `report.html`.  Every process started is stopped
(SIGTERM, then SIGKILL), also on Ctrl-C.  Exit status 0 only if every invariant held.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import nacl.signing
import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from simulations import local_netns
from simulations.local_byzantine import ByzantineProcess
from simulations.local_checks import check_all, heights, settle
from simulations.local_cluster import LocalCluster
from simulations.local_faults import KINDS, NETNS_KINDS, FaultRunner, FaultTools, skipped_reasons, victim_of
from simulations.local_monitor import Monitor
from simulations.local_relay import LatencyPaths
from simulations.local_report import percentile, rate_series, write_report
from simulations.local_workload import Workload


class Options(argparse.Namespace):
    nodes: int = 4
    origins: int = 1
    duration: float = 60.0
    rate: float = 500.0
    actors: int = 200
    wait_share: float = 0.1
    faults: str = ""
    report: Path | None = None
    out: Path | None = None
    keep: bool = False
    ready_within: float = 180.0
    settle_within: float = 90.0
    recovery_limit: float = 20.0
    quiet: bool = False
    seed: int = 1
    latency_ms: float = 200.0
    loss_percent: int = 20
    slow_share: float = 0.1
    byzantine_branches: int = 2
    byzantine_gossip: bool = False
    byzantine_penalised_after: float = 8.0


def parse(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(prog="python -m simulations.local", description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=4, help="nodes per origin")
    p.add_argument("--origins", type=int, default=1)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load (longer if faults need it)")
    p.add_argument("--rate", type=float, default=500.0, help="actions per second offered, all origins together")
    p.add_argument("--actors", type=int, default=200, help="signing actors, spread over origins and nodes")
    p.add_argument("--wait-share", type=float, default=0.1, help="share of actions sent with ?wait=true")
    p.add_argument("--faults", default="", help=f"comma list of {','.join(KINDS)}")
    p.add_argument("--report", type=Path, default=None, help="directory for report.json and report.html")
    p.add_argument("--out", type=Path, default=None, help="testnet directory (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the testnet directory (homes, logs)")
    p.add_argument("--ready-within", type=float, default=180.0)
    p.add_argument("--settle-within", type=float, default=90.0)
    p.add_argument("--recovery-limit", type=float, default=20.0, help="seconds allowed after a fault heals")
    p.add_argument("--quiet", action="store_true", help="no live table")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--latency-ms", type=float, default=200.0, help="latency fault: added delay each way")
    p.add_argument("--loss-percent", type=int, default=20, help="loss fault: datagrams dropped, in percent")
    p.add_argument("--slow-share", type=float, default=0.1, help="slow fault: share of one CPU left to the node")
    p.add_argument("--byzantine-branches", type=int, default=2, help="byzantine fault: events signed per forked index")
    p.add_argument("--byzantine-gossip", action="store_true",
                   help="byzantine fault: the member also keeps gossiping as a member while it attacks")
    p.add_argument("--byzantine-penalised-after", type=float, default=8.0,
                   help="byzantine fault: seconds of forks before impersonation and garbage (penalised) begin")
    return p.parse_args(argv, namespace=Options())


def live_table(monitor: Monitor, workload: Workload, faults: FaultRunner | None) -> Table:
    s = workload.stats
    title = (f"t={monitor.elapsed():5.0f}s  submitted {s.submitted}  acknowledged {s.acked}  "
             f"refused {sum(s.refused.values())}  p50 {percentile(s.latencies, 0.5) or 0:.2f}s")
    table = Table(title=title, caption=f"fault: {faults.current}" if faults and faults.current else None)
    for col in ("node", "phase", "round", "block", "committed", "final/s", "state"):
        table.add_column(col, justify="right" if col not in ("node", "phase", "state") else "left")
    for name, w in monitor.watches.items():
        state = "paused" if w.node.paused else "up" if w.reachable else "down"
        table.add_row(name, str(w.status.get("phase", "-")), str(w.status.get("latest_round", "-")),
                      str(w.status.get("latest_block", "-")), str(w.committed), f"{w.rate():.0f}", state)
    return table


async def show(monitor: Monitor, workload: Workload, faults: FaultRunner | None, console: Console) -> None:
    if console.is_terminal:
        with Live(live_table(monitor, workload, faults), console=console, auto_refresh=False) as live:
            while True:
                await trio.sleep(1)
                live.update(live_table(monitor, workload, faults), refresh=True)
    while True:  # not a terminal: a line every 10 s
        await trio.sleep(10)
        blocks = " ".join(f"{n}:{w.latest_block}" for n, w in monitor.watches.items())
        console.print(f"t={monitor.elapsed():.0f}s acked={workload.stats.acked} blocks {blocks}")


def final_rate(monitor: Monitor, origin: str, t0: float, t1: float) -> float:
    """Actions finalised per second in [t0, t1] on the origin's most advanced node."""
    best = 0.0
    for w in monitor.watches.values():
        if w.node.origin != origin:
            continue
        inside = [(t, c) for t, c, _ in w.samples if t0 <= t <= t1]
        if len(inside) >= 2 and inside[-1][0] > inside[0][0]:
            best = max(best, (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]))
    return best


async def final_chains(monitor: Monitor, reached: dict[str, int], within: float = 20.0) -> None:
    """A fresh full copy of every chain for the final check, each at least up to the block its
    origin had reached when the chains settled (a node a block or two behind gets `within` s)."""
    for w in monitor.watches.values():
        w.chain, w.committed = [], 0
    with trio.move_on_after(within):
        while True:
            for w in monitor.watches.values():
                try:
                    w.status = (await w.get(monitor.client, "/status")).json()
                    await monitor.fetch_chain(w, max_pages=10**6)
                except (httpx.HTTPError, ValueError) as exc:
                    w.errors.append(f"final fetch: {exc!r}")
            if all(len(w.chain) > reached.get(w.node.origin, -1) for w in monitor.watches.values()):
                return
            await trio.sleep(0.5)


STARTED: list[LocalCluster] = []  # stopped again by main() should a second Ctrl-C cut a stop short
STARTED_BYZANTINE: list[ByzantineProcess] = []


def prepare(opts: Options, kinds: list[str], root: Path) -> tuple[LocalCluster, FaultTools]:
    """The testnet, and what the faults need before any node starts.  A byzantine member (the first
    origin's last node) leaves the cluster: it is run by `local_byzantine`, never as a node, and the
    workload, monitor and checks see only the honest nodes."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    # The byzantine process presents the member's CA-issued certificate: issue them all now.
    cluster = LocalCluster.create(root, opts.nodes, opts.origins, offline_certs="byzantine" in kinds)
    tools = FaultTools(latency_ms=opts.latency_ms, loss_percent=opts.loss_percent, slow_share=opts.slow_share)
    if "byzantine" in kinds:
        member = victim_of(cluster, 0)
        cluster.nodes.remove(member)
        tools.byzantine = ByzantineProcess(member, seed=opts.seed, branches=opts.byzantine_branches,
                                           keep_gossip=opts.byzantine_gossip,
                                           penalised_after=opts.byzantine_penalised_after)
    if "latency" in kinds:
        slow = victim_of(cluster, kinds.index("latency"))
        tools.latency = LatencyPaths(slow, [n for n in cluster.of(slow.origin) if n is not slow])
    return cluster, tools


async def simulate(opts: Options, root: Path, console: Console) -> dict[str, Any]:
    kinds = [k for k in opts.faults.split(",") if k]
    cluster, tools = prepare(opts, kinds, root)
    STARTED.append(cluster)
    try:
        async with trio.open_nursery() as relays:  # the latency fault's relays live as long as the run
            report = await run_cluster(opts, kinds, cluster, tools, relays, console)
            relays.cancel_scope.cancel()
        return report
    finally:
        if tools.byzantine is not None:
            tools.byzantine.stop()
        codes = cluster.stop_all()
        console.print(f"stopped {len(codes)} nodes (exit codes {sorted(set(map(str, codes.values())))})")


async def run_cluster(opts: Options, kinds: list[str], cluster: LocalCluster, tools: FaultTools,
                      relays: trio.Nursery, console: Console) -> dict[str, Any]:
    if tools.latency is not None:
        await tools.latency.start(relays)
    cluster.start_all()
    if tools.byzantine is not None:
        STARTED_BYZANTINE.append(tools.byzantine)
        tools.byzantine.start()
    limits = httpx.Limits(max_connections=opts.actors + 64, max_keepalive_connections=opts.actors + 64)
    async with httpx.AsyncClient(limits=limits) as client:
        t_ready0 = trio.current_time()
        ready = await cluster.wait_ready(client, within=opts.ready_within)
        console.print(f"all {len(cluster.nodes)} nodes ready after {trio.current_time() - t_ready0:.1f}s")
        monitor = Monitor(cluster, client)
        workload = Workload(cluster, client, rate=opts.rate, actors=opts.actors, wait_share=opts.wait_share,
                            seed=opts.seed)
        faults = FaultRunner(cluster, monitor, kinds, recovery_limit=opts.recovery_limit,
                             tools=tools) if kinds else None
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            if not opts.quiet:
                nursery.start_soon(show, monitor, workload, faults, console)
            load = trio.CancelScope()

            async def drive() -> None:
                with load:
                    await workload.run(float("inf"))

            load_t0 = monitor.elapsed()
            nursery.start_soon(drive)
            if faults:
                nursery.start_soon(faults.run, max(5.0, 0.15 * opts.duration))
            await trio.sleep(opts.duration)
            if faults:
                with trio.move_on_after(300):
                    await faults.done.wait()
            load.cancel()
            load_t1 = monitor.elapsed()
            console.print(f"load stopped at t={load_t1:.0f}s; waiting for the chains to settle")
            settle_s = await settle(monitor, workload.stats.acked_ids, opts.settle_within)
            reached = heights(monitor)
            nursery.cancel_scope.cancel()
        await final_chains(monitor, reached)
        byzantine = {tools.byzantine.node.origin: tools.byzantine.node.node_id} if tools.byzantine else None
        invariants = await check_all(client, monitor, workload.stats.acked_ids,
                                     workload.stats.acked_by, byzantine, reached)
        graph_node = cluster.nodes[0]
        try:
            graph = (await client.get(graph_node.api + "/graph", timeout=10)).json()
        except (httpx.HTTPError, ValueError):
            graph = None
    report = build_report(opts, kinds, cluster, monitor, workload, faults, ready, settle_s, invariants,
                          (load_t0, load_t1), graph_node.name)
    report["graph"] = graph  # written into the HTML only
    return report


def ed25519_verifies_per_core(seconds: float = 1.0) -> float:
    """The same-run ceiling: PyNaCl Ed25519 verifies per second of CPU time on one core (best sample)."""
    key = nacl.signing.SigningKey(b"\x07" * 32)
    signed = key.sign(b"\x01" * 200)
    verify = key.verify_key.verify
    best = 0.0
    for _ in range(3):
        count, start = 0, time.process_time()
        while time.process_time() - start < seconds / 3:
            for _ in range(100):
                verify(signed)
            count += 100
        best = max(best, count / (time.process_time() - start))
    return best


def build_report(opts: Options, kinds: list[str], cluster: LocalCluster, monitor: Monitor, workload: Workload,
                 faults: FaultRunner | None, ready: dict[str, float], settle_s: float | None,
                 invariants: dict[str, Any], window: tuple[float, float], graph_node: str) -> dict[str, Any]:
    s = workload.stats
    t0, t1 = window
    per_origin = {o: round(final_rate(monitor, o, t0, t1), 1) for o in cluster.origins}
    fault_rows = [r.as_json(opts.recovery_limit) for r in faults.records] if faults else []
    liveness = all(f["recovered_in_time"] for f in fault_rows if not f["skipped"])
    lat = s.latencies

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    figures: dict[str, Any] = {
        "actions_per_s_final": round(sum(per_origin.values()), 1),
        "actions_per_s_final_by_origin": per_origin,
        "offered_rate": opts.rate,
        "load_seconds": round(t1 - t0, 1),
        "submitted": s.submitted, "acknowledged": s.acked, "refused": dict(s.refused),
        "receipts_ok": s.receipts_ok, "receipts_rejected": dict(s.receipts_rejected),
        "latency_s": {"count": len(lat), "p50": rounded(percentile(lat, 0.5)), "p90": rounded(percentile(lat, 0.9)),
                      "p99": rounded(percentile(lat, 0.99)), "max": rounded(max(lat, default=None))},
        "ack_latency_s": {"p50": rounded(percentile(s.ack_latencies, 0.5)),
                          "p99": rounded(percentile(s.ack_latencies, 0.99))},
        "blocks": {o: invariants["origins"][o]["common_prefix"] for o in cluster.origins},
        "ready_max_s": round(max(ready.values()), 1),
        "settle_s": None if settle_s is None else round(settle_s, 1),
    }
    per_core = ed25519_verifies_per_core()
    nodes_total = len(cluster.nodes)
    figures["verify_ceiling"] = {
        "verifies_per_s_per_core": round(per_core), "cores": os.cpu_count() or 1, "nodes": nodes_total,
        # Every node verifies every action of its origin once, on its share of the machine's cores.
        "actions_per_s": round(per_core * (os.cpu_count() or 1) / nodes_total * len(cluster.origins)),
    }
    nodes = []
    for name, w in monitor.watches.items():
        nodes.append({"node": name, "id": w.node.node_id, "phase": w.status.get("phase"),
                      "latest_round": w.status.get("latest_round"), "latest_block": w.status.get("latest_block"),
                      "committed": w.committed, "starts": w.node.starts, "ready_s": round(ready.get(name, -1), 1),
                      "poll_errors": len(w.errors)})
    final_series = {}
    for o in cluster.origins:
        best = max((w for w in monitor.watches.values() if w.node.origin == o), key=lambda w: w.committed)
        final_series[o] = rate_series([(t, c) for t, c, _ in best.samples])
    acked_cumulative = [(t, i + 1) for i, t in enumerate(sorted(s.acked_at))][::25]
    invariants = dict(invariants, liveness_after_faults=liveness)
    reasons = skipped_reasons()
    skipped = [{"fault": k, "reason": reasons[k]} for k in kinds if k in reasons]
    ok = all(invariants.get(k, True) for k in ("agreement", "converged", "no_loss", "no_double_apply",
                                               "no_forkers", "liveness_after_faults", "byzantine_flagged"))
    return {
        "ok": ok,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": {"nodes": opts.nodes, "origins": opts.origins, "duration": opts.duration, "rate": opts.rate,
                   "actors": opts.actors, "wait_share": opts.wait_share, "faults": kinds, "cpus": os.cpu_count()},
        "figures": figures, "invariants": invariants, "faults": fault_rows, "skipped": skipped, "nodes": nodes,
        "series": {"final_per_s": final_series, "acked_per_s": rate_series(acked_cumulative),
                   "latencies": [round(x, 4) for x in lat[:5000]]},
        "graph_node": graph_node,
    }


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # the finally blocks stop every node


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    wanted = set(opts.faults.split(","))
    if wanted & set(NETNS_KINDS) and not local_netns.active() and local_netns.unavailable() is None:
        # Partitions and loss need the run inside a network namespace of its own: run again in one.
        return local_netns.reexec_in_namespace(sys.argv[1:] if argv is None else argv)
    console = Console(stderr=False)
    root_parent = None
    if opts.out is not None:
        root = opts.out
    else:
        root_parent = Path(tempfile.mkdtemp(prefix="node-sim-"))
        root = root_parent / "net"
    signal.signal(signal.SIGTERM, _terminate)
    interrupted = False
    report: dict[str, Any] = {}
    try:
        report = trio.run(simulate, opts, root, console)
    except* KeyboardInterrupt:  # trio may hand it over inside an exception group
        interrupted = True
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # nothing may cut the cleanup short now
        for byz in STARTED_BYZANTINE:
            byz.stop()
        for cluster in STARTED:
            cluster.stop_all()  # idempotent: nodes already stopped are skipped
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if root_parent is not None and not opts.keep:
            shutil.rmtree(root_parent, ignore_errors=True)
        elif opts.keep or opts.out is not None:
            console.print(f"testnet kept in {root}")
    if interrupted:
        console.print("interrupted: every node stopped")
        return 130
    graph = report.pop("graph", None)
    console.print(json.dumps({"ok": report["ok"], "figures": report["figures"], "faults": report["faults"],
                              "skipped": report["skipped"]}, indent=1))
    if opts.report is not None:
        paths = write_report(opts.report, report, graph)
        console.print(f"wrote {paths[0]} and {paths[1]}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Fault scenarios on real node processes, one faulty node at a time (f = 1 of 4 stays within BFT).

- `kill`: SIGKILL the node (a crash), 3 s down, start it again;
- `pause`: SIGSTOP for 10 s, then SIGCONT;
- `redis`: SIGKILL the node's embedded redis-server (consensus must not notice);
- `restart`: a graceful restart (SIGTERM, wait for the exit, start);
- `partition`: for 10 s, nftables drop QUIC between the two halves of the first origin (2 | 2
  of 4: neither side holds a supermajority, so nothing may be decided until the heal).  Only
  when the run is inside its own network namespace (see `local_netns`); otherwise skipped;
- `latency`: for 10 s every datagram to and from the victim waits `latency_ms` in a userspace
  relay, each way (`local_relay.LatencyPaths`; this kernel has no netem);
- `loss`: for 10 s nftables drops `loss_percent` % of the datagrams to every QUIC port of the
  origin (real packet drops, `numgen random`), inside the run's namespace like `partition`;
- `slow`: for 10 s the victim gets `slow_share` of one CPU (`local_slow.CpuThrottle`: cgroup
  cpu.max / cfs quota as root, else a SIGSTOP/SIGCONT duty cycle; the record names the method);
- `byzantine`: the origin's last member is not a node but `local_byzantine` from the start; the
  fault is its attack (forks, replays, garbage) for 15 s, healed by stopping it; recovery is
  measured on the honest nodes, which must keep deciding without it.

Faults run one after another: each waits until the previous victim recovered, then GAP_S more.

After each fault heals, recovery is the time until the victim has caught up with the block its
origin had reached at the heal *and* the origin decided a new block since (liveness).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Any

import trio

from simulations import local_netns
from simulations.local_byzantine import ByzantineProcess
from simulations.local_cluster import LocalCluster, NodeProcess
from simulations.local_monitor import Monitor
from simulations.local_relay import LatencyPaths
from simulations.local_slow import CpuThrottle

KINDS = ("kill", "pause", "redis", "restart", "partition", "latency", "loss", "slow", "byzantine")
NETNS_KINDS = ("partition", "loss")  # need the run inside a network namespace of its own
KILL_DOWN_S = 3.0
SHAPE_S = 10.0  # latency, loss and slow last this long
ATTACK_S = 15.0
PAUSE_S = 10.0
GAP_S = 3.0
PARTITION_S = 10.0
SPLIT_GRACE_S = 2.0


def skipped_reasons() -> dict[str, str]:
    """Faults this run cannot make, with the reason (printed and written into the report)."""
    if local_netns.active():
        return {}
    why = local_netns.unavailable() or "the run was not started inside its network namespace"
    reason = (f"skipped: {why}; all nodes share the host loopback, so cutting or dropping packets needs a "
              "namespace of the run's own (python -m simulations.local re-runs itself in one as root)")
    return {kind: reason for kind in NETNS_KINDS}


@dataclass
class FaultTools:
    """What some faults need besides the processes, made before the nodes start."""

    latency: LatencyPaths | None = None
    byzantine: ByzantineProcess | None = None
    latency_ms: float = 200.0
    loss_percent: int = 20
    slow_share: float = 0.1


def victim_of(cluster: LocalCluster, i: int) -> NodeProcess:
    """The node the i-th fault hits: the first origin's nodes from the last one backwards."""
    nodes = cluster.of(cluster.origins[0])
    return nodes[(len(nodes) - 1 - i) % len(nodes)]


@dataclass
class FaultRecord:
    kind: str
    node: str
    started_s: float
    healed_s: float | None = None
    recovered_s: float | None = None  # seconds from heal to recovered
    target_block: int | None = None
    block_at_start: int | None = None  # the rest of the origin's latest block when the fault began
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    def as_json(self, limit: float) -> dict[str, Any]:
        return {
            "kind": self.kind, "node": self.node, "started_s": round(self.started_s, 2),
            "healed_s": None if self.healed_s is None else round(self.healed_s, 2),
            "recovered_after_heal_s": None if self.recovered_s is None else round(self.recovered_s, 2),
            "recovery_limit_s": limit,
            "recovered_in_time": self.skipped is None and self.recovered_s is not None and self.recovered_s <= limit,
            "target_block": self.target_block,
            "blocks_during_fault": None if self.target_block is None or self.block_at_start is None
            else self.target_block - self.block_at_start,
            "notes": self.notes, "skipped": self.skipped,
        }


class FaultRunner:
    def __init__(self, cluster: LocalCluster, monitor: Monitor, kinds: list[str], *, recovery_limit: float = 20.0,
                 measure_within: float = 60.0, tools: FaultTools | None = None) -> None:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
        self.cluster = cluster
        self.monitor = monitor
        self.kinds = kinds
        self.recovery_limit = recovery_limit
        self.measure_within = measure_within
        self.tools = tools or FaultTools()
        self.records: list[FaultRecord] = []
        self.current: str = ""
        self.done = trio.Event()

    def victim(self, i: int) -> NodeProcess:
        if self.kinds[i] == "latency" and self.tools.latency is not None:
            return self.tools.latency.slow  # its paths go through the relays from the start
        if self.kinds[i] == "byzantine" and self.tools.byzantine is not None:
            return self.tools.byzantine.node
        return victim_of(self.cluster, i)

    def origin_latest(self, origin: str, exclude: NodeProcess | None = None) -> int:
        values = [w.latest_block for w in self.monitor.watches.values()
                  if w.node.origin == origin and w.node is not exclude and w.reachable]
        return max(values, default=-1)

    async def run(self, start_after: float) -> None:
        await trio.sleep(start_after)
        for i, kind in enumerate(self.kinds):
            node = self.victim(i)
            record = FaultRecord(kind, node.name, self.monitor.elapsed())
            self.records.append(record)
            skipped = skipped_reasons()
            if kind in skipped:
                record.skipped = skipped[kind]
                continue
            if kind == "byzantine" and self.tools.byzantine is None:
                record.skipped = "skipped: the run was started without its byzantine member"
                continue
            self.current = f"{kind} {node.name}"
            record.block_at_start = self.origin_latest(node.origin, exclude=node)
            await self.inject(kind, node, record)
            record.healed_s = self.monitor.elapsed()
            record.target_block = self.origin_latest(node.origin, exclude=node)
            self.current = f"recovering from {kind} {node.name}"
            # One faulty node at a time: the next fault waits until this victim has caught up.
            # The byzantine member is gone after its attack: the honest nodes must go on deciding.
            await self.measure(self.honest(node) if kind == "byzantine" else node, record)
            self.current = "between faults"
            await trio.sleep(GAP_S)
        self.current = "faults done"
        self.done.set()

    def honest(self, byzantine: NodeProcess) -> NodeProcess:
        return next(n for n in self.cluster.of(byzantine.origin) if n is not byzantine)

    async def inject(self, kind: str, node: NodeProcess, record: FaultRecord) -> None:
        if kind in ("latency", "loss", "slow", "byzantine"):
            await self.inject_degraded(kind, node, record)
        elif kind == "kill":
            node.kill9()
            record.notes.append(f"SIGKILL, exit {node.proc.returncode if node.proc else None}")
            await trio.sleep(KILL_DOWN_S)
            node.start()
        elif kind == "pause":
            node.pause()
            await trio.sleep(PAUSE_S)
            node.resume()
        elif kind == "redis":
            pid = node.redis_pid()
            if pid is None:
                record.notes.append("no redis-server child found")
                return
            os.kill(pid, signal.SIGKILL)
            record.notes.append(f"SIGKILL redis-server pid {pid}")
        elif kind == "partition":
            nodes = self.cluster.of(node.origin)
            half = len(nodes) // 2
            side_a, side_b = nodes[:half], nodes[half:]
            local_netns.split([int(n.listen.rsplit(":", 1)[1]) for n in side_a],
                              [int(n.listen.rsplit(":", 1)[1]) for n in side_b])
            record.notes.append(f"QUIC cut between {[n.name for n in side_a]} and {[n.name for n in side_b]}")
            try:
                # Blocks of rounds decided just before the cut may still be applied: count from 2 s in.
                await trio.sleep(SPLIT_GRACE_S)
                base = self.origin_latest(node.origin)
                await trio.sleep(PARTITION_S - SPLIT_GRACE_S)
                during = self.origin_latest(node.origin) - base
                record.notes.append(f"new blocks while split (after {SPLIT_GRACE_S:g}s): {during} "
                                    "(expected 0: no side holds 2/3)")
            finally:
                local_netns.heal()
        elif kind == "restart":
            code = await trio.to_thread.run_sync(node.stop)
            record.notes.append(f"graceful stop exit code {code}")
            node.start()

    async def inject_degraded(self, kind: str, node: NodeProcess, record: FaultRecord) -> None:
        """Faults that degrade rather than stop: the origin should keep deciding while they last."""
        t = self.tools
        if kind == "latency":
            assert t.latency is not None, "latency needs its relays, made before the nodes start"
            before = t.latency.forwarded()
            t.latency.set_delay(t.latency_ms / 1000)
            record.notes.append(f"+{t.latency_ms:g} ms each way on every path to and from {node.name} "
                                f"(userspace relays, {len(t.latency.relays)} of them)")
            try:
                await self.count_blocks(node, record, SHAPE_S)
            finally:
                t.latency.set_delay(0.0)
            record.notes.append(f"datagrams relayed during the fault: {t.latency.forwarded() - before}")
        elif kind == "loss":
            ports = [int(n.listen.rsplit(":", 1)[1]) for n in self.cluster.of(node.origin)]
            local_netns.lossy(ports, t.loss_percent)
            record.notes.append(f"nftables drops {t.loss_percent}% of datagrams to each of {len(ports)} QUIC ports")
            try:
                await self.count_blocks(node, record, SHAPE_S)
                record.notes.append(f"datagrams dropped by nftables: {local_netns.dropped()}")
            finally:
                local_netns.heal()
        elif kind == "slow":
            assert node.proc is not None
            async with CpuThrottle(node.proc.pid, t.slow_share) as throttle, trio.open_nursery() as nursery:
                cpu0 = throttle.cpu_seconds()
                nursery.start_soon(throttle.run_duty_cycle)
                await self.count_blocks(node, record, SHAPE_S)
                used = throttle.cpu_seconds() - cpu0
                nursery.cancel_scope.cancel()
            record.notes.append(f"CPU capped at {t.slow_share:.0%} of one core by {throttle.method}; "
                                f"used {used:.2f} CPU-s in {SHAPE_S:g}s")
        elif kind == "byzantine":
            assert t.byzantine is not None
            t.byzantine.attack()
            record.notes.append("forks, replays and garbage from the member's real credentials")
            try:
                await self.count_blocks(node, record, ATTACK_S)
            finally:
                code = await trio.to_thread.run_sync(t.byzantine.stop)
            stats = t.byzantine.read_stats()
            record.notes.append(f"byzantine process exit {code}; sent: forks {stats.get('forks')} "
                                f"({len(stats.get('fork_events', []))} conflicting events), replays "
                                f"{stats.get('replays_ok')}, impersonations {stats.get('impersonations')}, garbage "
                                f"frames {stats.get('garbage_frames')} and datagrams {stats.get('garbage_datagrams')}, "
                                f"refused {stats.get('refused')}")

    async def count_blocks(self, node: NodeProcess, record: FaultRecord, seconds: float) -> None:
        """Wait `seconds`, noting the blocks the rest of the origin decided meanwhile (liveness under
        the fault: these faults stay within what the origin tolerates)."""
        base = self.origin_latest(node.origin, exclude=node)
        await trio.sleep(seconds)
        during = self.origin_latest(node.origin, exclude=node) - base
        record.notes.append(f"blocks decided by the others during the fault: {during}")

    async def measure(self, node: NodeProcess, record: FaultRecord) -> None:
        healed = trio.current_time()
        watch = self.monitor.watches[node.name]
        before = record.target_block if record.target_block is not None else -1
        with trio.move_on_after(self.measure_within):
            while True:
                origin_now = self.origin_latest(node.origin, exclude=node)
                if watch.reachable and watch.latest_block >= before and origin_now > before \
                        and len(watch.chain) > before:
                    record.recovered_s = trio.current_time() - healed
                    break
                await trio.sleep(0.25)
        if record.kind == "redis":
            record.notes.append("redis-server running again" if node.redis_pid() else "redis-server not restarted")
        if record.recovered_s is None:
            record.notes.append(f"not recovered within {self.measure_within:g}s")

"""Fault scenarios on real node processes, one faulty node at a time (f = 1 of 4 stays within BFT).

- `kill`: SIGKILL the node (a crash), 3 s down, start it again;
- `pause`: SIGSTOP for 10 s, then SIGCONT;
- `redis`: SIGKILL the node's embedded redis-server (consensus must not notice);
- `restart`: a graceful restart (SIGTERM, wait for the exit, start);
- `partition`: for 10 s, nftables drop QUIC between the two halves of the first origin (2 | 2
  of 4: neither side holds a supermajority, so nothing may be decided until the heal).  Only
  when the run is inside its own network namespace (see `local_netns`); otherwise skipped.

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
from simulations.local_cluster import LocalCluster, NodeProcess
from simulations.local_monitor import Monitor

KINDS = ("kill", "pause", "redis", "restart", "partition")
KILL_DOWN_S = 3.0
PAUSE_S = 10.0
GAP_S = 3.0
PARTITION_S = 10.0
SPLIT_GRACE_S = 2.0


def skipped_reasons() -> dict[str, str]:
    """Faults this run cannot make, with the reason (printed and written into the report)."""
    if local_netns.active():
        return {}
    why = local_netns.unavailable() or "the run was not started inside its network namespace"
    return {"partition": f"skipped: {why}; all nodes share the host loopback, so cutting links needs a "
                         "namespace of the run's own (python -m simulations.local re-runs itself in one as root)"}


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
                 measure_within: float = 60.0) -> None:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
        self.cluster = cluster
        self.monitor = monitor
        self.kinds = kinds
        self.recovery_limit = recovery_limit
        self.measure_within = measure_within
        self.records: list[FaultRecord] = []
        self.current: str = ""
        self.done = trio.Event()

    def victim(self, i: int) -> NodeProcess:
        nodes = self.cluster.of(self.cluster.origins[0])
        return nodes[(len(nodes) - 1 - i) % len(nodes)]

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
            self.current = f"{kind} {node.name}"
            record.block_at_start = self.origin_latest(node.origin, exclude=node)
            await self.inject(kind, node, record)
            record.healed_s = self.monitor.elapsed()
            record.target_block = self.origin_latest(node.origin, exclude=node)
            self.current = f"recovering from {kind} {node.name}"
            # One faulty node at a time: the next fault waits until this victim has caught up.
            await self.measure(node, record)
            self.current = "between faults"
            await trio.sleep(GAP_S)
        self.current = "faults done"
        self.done.set()

    async def inject(self, kind: str, node: NodeProcess, record: FaultRecord) -> None:
        if kind == "kill":
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

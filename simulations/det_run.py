"""One deterministic run: N real nodes in one Trio run on a MockClock, a seeded workload and fault
schedule, the heal, then the invariants (agreement, no acknowledged transaction lost or applied
twice, liveness after the heal).

Determinism: every draw comes from `random.Random(seed)` (one derived stream per purpose and per
node), time is the MockClock's, and Trio's scheduler is made deterministic the way Hypothesis'
Trio integration does it (private API, pinned by `tests/simulations`).
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
import trio
import trio.testing

from node import crypto
from node.actions.envelope import Envelope
from node.consensus.peers import PeerSet
from node.consensus.policy import SelfEventPolicy
from node.crypto import PrivateKey
from node.engine.gossip import PeerAddress
from simulations.det_faults import FaultStep, link_faults, schedule
from simulations.det_net import ORIGIN, LinkFaults, SimNetwork
from simulations.det_node import ApplyHook, ChainEntry, NodeSetup, SimNode, SimulationViolation


@dataclass(frozen=True)
class SimConfig:
    seed: int
    nodes: int = 4
    faults: frozenset[str] = frozenset()
    fault_seconds: float = 6.0  # faults and workload run this long, then heal
    liveness_seconds: float = 60.0  # after the heal, everything acknowledged must be decided by then
    tx_interval: float = 0.1  # mean simulated seconds between client submissions
    heartbeat_ms: int = 10  # the engine's busy heartbeat
    idle_heartbeat_ms: int = 1000
    verify_signatures: bool = True
    keep_rounds: int | None = 50  # the engine's
    strict_ack: bool = False  # count transactions lost from a crashed node's pending pool as violations
    apply_hook: ApplyHook | None = None  # test-only: a node that applies blocks wrongly


@dataclass
class RunResult:
    seed: int
    ok: bool
    reason: str
    blocks: int = 0
    transactions: int = 0
    sim_seconds: float = 0.0
    heal_to_live_seconds: float = 0.0
    digest: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


def enable_deterministic_scheduling(seed: int) -> None:
    """Make Trio's run-queue order a function of `seed` (what Hypothesis' Trio plugin does)."""
    run_module: Any = trio._core._run
    if not hasattr(run_module, "_ALLOW_DETERMINISTIC_SCHEDULING") or not hasattr(run_module, "_r"):
        raise RuntimeError("trio's private deterministic-scheduling hooks moved: pin trio or update this")
    run_module._ALLOW_DETERMINISTIC_SCHEDULING = True
    run_module._r.seed(seed)


def make_tx(rng: random.Random, n: int) -> bytes:
    """A signed action: a fresh actor registering itself (deterministic Ed25519 key and signature)."""
    key = PrivateKey.from_seed(rng.randbytes(32))
    env = Envelope.sign(key, origin=ORIGIN, path="/users/create", args={"name": f"u{n}"}, nonce=1,
                        expiry_ns=2**62)
    return env.to_wire()


class Simulation:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        root = random.Random(cfg.seed)
        self.sched_seed = root.getrandbits(64)
        n = cfg.nodes
        keys = [PrivateKey.from_seed(b"det-sim-node-%d" % i) for i in range(n)]
        members = PeerSet.of(k.public for k in keys)
        policy = SelfEventPolicy(cfg.heartbeat_ms * 1_000_000, cfg.idle_heartbeat_ms * 1_000_000)
        self.net = SimNetwork(n, random.Random(root.getrandbits(64)), self._handler_of)
        self.nodes: list[SimNode] = []
        for i, key in enumerate(keys):
            peers = [PeerAddress(SimNetwork.node_id(j), k.public, "sim", j) for j, k in enumerate(keys) if j != i]
            setup = NodeSetup(members, peers, policy, cfg.verify_signatures, cfg.keep_rounds)
            self.nodes.append(SimNode(i, key, setup, self.net.link(i), random.Random(root.getrandbits(64)),
                                      cfg.apply_hook))
        fault_rng = random.Random(root.getrandbits(64))
        self.link_faults = link_faults(cfg.faults, fault_rng)
        self.steps = schedule(cfg.faults, n, cfg.fault_seconds, fault_rng)
        self.client_rng = random.Random(root.getrandbits(64))
        self.accepted: dict[bytes, int] = {}  # tx -> node it was accepted by
        self.probes: list[bytes] = []
        self.submitted: set[bytes] = set()
        self.heal_at = 0.0
        self.live_at: float | None = None
        self.nursery: trio.Nursery | None = None
        self.partitions = 0
        self.progress: trio.Event | None = None  # set whenever a node applies a block
        for node in self.nodes:
            node.on_block = self._on_block

    def _on_block(self) -> None:
        if self.progress is not None:
            self.progress.set()

    def _handler_of(self, i: int) -> SimNode | None:
        node = self.nodes[i]
        return node if node.up else None

    # -- the run ------------------------------------------------------------------------------

    def _start(self, node: SimNode) -> None:
        assert self.nursery is not None
        node.boot()
        self.nursery.start_soon(node.run)

    async def _faults(self, steps: list[FaultStep]) -> None:
        for step in steps:
            await trio.sleep_until(step.at)
            if step.kind == "partition":
                self.net.minority = step.nodes
                self.partitions += 1
            elif step.kind == "join":
                self.net.minority = frozenset()
            elif step.kind in ("crash", "wipe"):
                for i in step.nodes:
                    self.nodes[i].crash(wipe=step.kind == "wipe")
            elif step.kind == "restart":
                for i in step.nodes:
                    if not self.nodes[i].up:
                        self._start(self.nodes[i])

    async def _client(self) -> None:
        rng, n = self.client_rng, self.cfg.nodes
        while True:
            await trio.sleep(rng.expovariate(1 / self.cfg.tx_interval))
            tx = make_tx(rng, len(self.submitted))
            self.submitted.add(tx)
            target = rng.randrange(n)
            if self.nodes[target].submit(tx):
                self.accepted[tx] = target

    def required(self) -> set[bytes]:
        lost = set() if self.cfg.strict_ack else {tx for nd in self.nodes for tx in nd.lost_pending}
        return (set(self.accepted) - lost) | set(self.probes)

    def _all_decided(self, required: set[bytes]) -> bool:
        for node in self.nodes:
            have = {tx for entry in node.disk.chain for tx in entry.transactions}
            if not required <= have:
                return False
        return True

    async def main(self) -> None:
        cfg = self.cfg
        async with trio.open_nursery() as nursery:
            self.nursery = self.net.nursery = nursery
            self.net.faults = self.link_faults
            for node in self.nodes:
                self._start(node)
            with trio.move_on_after(cfg.fault_seconds):
                async with trio.open_nursery() as faulty:
                    faulty.start_soon(self._faults, self.steps)
                    faulty.start_soon(self._client)
            # The heal: links clean, partition joined, every crashed node restarted.
            self.heal_at = trio.current_time()
            self.net.faults = LinkFaults()
            self.net.minority = frozenset()
            for node in self.nodes:
                if not node.up:
                    self._start(node)
            for node in self.nodes:  # the liveness probes: new work after the heal
                tx = make_tx(self.client_rng, len(self.submitted))
                self.submitted.add(tx)
                if node.submit(tx):
                    self.probes.append(tx)
            required = self.required()
            with trio.move_on_after(cfg.liveness_seconds):
                while not self._all_decided(required):
                    self.progress = trio.Event()
                    await self.progress.wait()
                self.live_at = trio.current_time()
            nursery.cancel_scope.cancel()

    # -- invariants ---------------------------------------------------------------------------

    def check(self) -> None:
        chains = [node.disk.chain for node in self.nodes]
        longest = max(chains, key=len)
        for i, chain in enumerate(chains):
            for position, entry in enumerate(chain):
                ref = longest[entry.index]
                if entry.index != position or (entry.block_hash, entry.state_hash) != (
                    ref.block_hash, ref.state_hash
                ):
                    raise SimulationViolation(
                        f"agreement: n{i} block {entry.index} is {entry.block_hash.hex()[:16]} "
                        f"(state {entry.state_hash.hex()[:16]}), others {ref.block_hash.hex()[:16]} "
                        f"(state {ref.state_hash.hex()[:16]})"
                    )
            seen: set[bytes] = set()
            for entry in chain:
                for tx in entry.transactions:
                    if tx in seen:
                        raise SimulationViolation(f"exactly once: n{i} has a transaction twice (block {entry.index})")
                    if tx not in self.submitted:
                        raise SimulationViolation(f"n{i} block {entry.index} holds a transaction nobody submitted")
                    seen.add(tx)
        required = self.required()
        if self.live_at is None:
            decided = {tx for c in chains for e in c for tx in e.transactions}
            lost = [tx for nd in self.nodes for tx in nd.lost_pending if tx in required and tx not in decided]
            if lost:
                where = next(nd.index for nd in self.nodes if lost[0] in nd.lost_pending)
                raise SimulationViolation(
                    f"acknowledged transaction lost: {len(lost)} accepted by a node (first n{where}) that crashed "
                    "before any event carried them"
                )
            missing = [sum(1 for tx in required if tx not in {t for e in c for t in e.transactions}) for c in chains]
            raise SimulationViolation(
                f"liveness: {self.cfg.liveness_seconds:g} s after the heal, transactions still undecided per node: "
                f"{missing} (of {len(required)})"
            )
        for node in self.nodes:
            forkers = node.core.graph.forkers() if node.core is not None else []
            if forkers:
                who = next((nd.index for nd in self.nodes if nd.key.public == forkers[0]), -1)
                raise SimulationViolation(f"honest node equivocated: n{node.index} holds a fork by n{who}")
        if self.net.stats.penalties:
            by, whom, reason = self.net.stats.penalties[0]
            raise SimulationViolation(f"honest peer penalised: {by} penalised {whom}: {reason}")

    def result(self, ok: bool, reason: str) -> RunResult:
        chains = [node.disk.chain for node in self.nodes]
        longest: list[ChainEntry] = max(chains, key=len)
        digest = crypto.sha256(b"".join(e.block_hash for e in longest)).hex()
        s = self.net.stats
        stats = {
            "messages": s.requests, "dropped": s.dropped, "duplicated": s.duplicated, "reordered": s.reordered,
            "refused": s.refused, "remote_errors": s.remote_errors, "penalties": len(s.penalties),
            "partitions": self.partitions, "crashes": sum(nd.crashes for nd in self.nodes),
            "archive_served": sum(nd.archive_served for nd in self.nodes),
            "lost_pending": sum(len(nd.lost_pending) for nd in self.nodes),
            "accepted": len(self.accepted), "chain_lengths": [len(c) for c in chains],
        }
        live = 0.0 if self.live_at is None else self.live_at - self.heal_at
        return RunResult(
            self.cfg.seed, ok, reason, len(longest), sum(len(e.transactions) for e in longest),
            0.0, live, digest, stats,
        )


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if isinstance(_unwrap(inner), SimulationViolation):
                return _unwrap(inner)
        return _unwrap(exc.exceptions[0])
    return exc


class StuckClock(trio.abc.Instrument):
    """Deterministic livelock guard: tasks keep running while simulated time never moves (the
    MockClock only jumps when every task waits).  Counts task steps, not wall time."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self.scope: trio.CancelScope | None = None
        self.stuck_at: float | None = None
        self._time = -1.0
        self._steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        now = trio.current_time()
        if now != self._time:
            self._time, self._steps = now, 0
            return
        self._steps += 1
        if self._steps > self.limit and self.stuck_at is None and self.scope is not None:
            self.stuck_at = now
            self.scope.cancel()


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Only errors from the nodes' loggers during a run (gossip logs every lost message at debug)."""
    old = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        yield
    finally:
        structlog.configure(**old)


def run(cfg: SimConfig) -> RunResult:
    """Run one seed; never raises for an invariant violation or a node crash (ok=False, reason)."""
    sim = Simulation(cfg)
    enable_deterministic_scheduling(sim.sched_seed)
    clock = trio.testing.MockClock(autojump_threshold=0)
    end = [0.0]

    guard = StuckClock()

    async def main() -> None:
        try:
            with trio.CancelScope() as scope:
                guard.scope = scope
                await sim.main()
        finally:
            end[0] = trio.current_time()

    try:
        with quiet_logs():
            trio.run(partial(main), clock=clock, instruments=[guard])
        if guard.stuck_at is not None:
            raise SimulationViolation(
                f"livelock: simulated time stuck at {guard.stuck_at:.3f}s for {guard.limit} task steps"
            )
        sim.check()
    except BaseException as raw:  # noqa: BLE001 - any failure of a node is a finding for this seed
        if isinstance(raw, KeyboardInterrupt):
            raise
        exc = _unwrap(raw)
        reason = str(exc) if isinstance(exc, SimulationViolation) else f"exception: {type(exc).__name__}: {exc}"
        result = sim.result(False, reason)
        result.sim_seconds = end[0]
        return result
    result = sim.result(True, "")
    result.sim_seconds = end[0]
    return result

"""The consensus engine: a runtime service that runs one member of its origin's hashgraph.

It opens the chain store, rebuilds the in-memory graph from the stored events (so a restart
resumes where the node stopped, and blocks already applied are skipped), brings up the QUIC
endpoint with the identity `EngineTrust` gives it (online from the origin's CA node, as the CA
node itself, or written offline into the home), gossips, applies decided blocks in order, signs
them, and drives the phase machine: `ca-issued` when it holds a CA-issued certificate (no gossip
before), back to `self-signed` when that is revoked or expires, and `consensus` once it hears from a
supermajority of its origin. Every phase change is logged with the seconds since the engine started.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import structlog
import trio

from node import crypto
from node.actions.envelope import Envelope
from node.api import ApiService, NodeView
from node.api.view import admitting_submit
from node.config import split_host_port
from node.consensus.blocks import Block
from node.consensus.event import Event
from node.consensus.hashgraph import Hashgraph
from node.consensus.node_core import MemberCore, SyncOutcome, TransactionRefused
from node.consensus.peers import PeerSchedule, PeerSet
from node.consensus.policy import SelfEventPolicy
from node.consensus.sync import SyncRequest, SyncResponse
from node.engine.access import publish_engine
from node.engine.apply import AppliedBlock, BlockApplier
from node.engine.archive import events_from_store
from node.engine.executors import ExecutorRunner
from node.engine.genesis import Genesis, Member, load_genesis
from node.engine.gossip import GossipService, PeerAddress
from node.engine.records import topological
from node.engine.trust import EngineTrust
from node.engine.tuning import BUSY_HEARTBEAT_NS, IDLE_HEARTBEAT_NS
from node.errors import ConfigError
from node.membership.follower import restore_peer_sets
from node.membership.joined import JoinedHistory, joined_peer_addresses, load_joined
from node.membership.plugin import history_of, round_of_block
from node.membership.state import fork_proofs
from node.runtime.phases import Phase, PhaseChange, Trigger
from node.runtime.service import NodeContext
from node.storage.chain import ChainStore
from node.storage.timeseries import BlockRow, LatencyRow, TimeSeriesStore, TimeSeriesWriter
from node.transport import Endpoint

log = structlog.get_logger("consensus")

NODE_ACTION_TTL_NS = 300 * 10**9  # an internal record not decided within 5 minutes is refused as expired
HEARD_WINDOW_S = 15.0  # a peer counts as connected if we exchanged gossip this recently


def election_of(block: Block) -> tuple[int, bytes] | None:
    """The (round, seed) of the executor election a block carries, if any."""
    election = block.election
    return None if election is None else (election.round_received, election.seed)


def genesis_for(ctx: NodeContext, joined: JoinedHistory | None = None) -> Genesis:
    path = ctx.home.config_file.parent / "genesis.json"
    genesis = load_genesis(path)
    origin = ctx.settings.origin
    if genesis is None:
        if ctx.settings.peers:
            raise ConfigError(f"{path} is missing: peers are configured but not the origin's genesis members")
        # A lone node is an origin of one: it decides by itself.
        host_port = ctx.settings.listen
        genesis = Genesis(origin or "", (Member(ctx.key.fingerprint, ctx.key.public, host_port),))
    if origin is not None and genesis.origin != origin:
        raise ConfigError(f"{path} is the genesis of {genesis.origin}, not of {origin}")
    if joined is not None and joined.origin != genesis.origin:
        raise ConfigError(f"the membership history in {path.parent} is of {joined.origin}, not of {genesis.origin}")
    # A node that joined later is in the committed history `node join` wrote, not in genesis.json.
    latest = joined.latest() if joined is not None else None
    if genesis.member(ctx.key.fingerprint) is None and (latest is None or ctx.key.public not in latest):
        raise ConfigError(f"this node ({ctx.key.fingerprint}) is not a member in {path} "
                          "(a joining node runs `node join --via URL` first)")
    return genesis


def peer_addresses(genesis: Genesis, own_id: str, overrides: tuple[str, ...]) -> list[PeerAddress]:
    """Genesis members other than us; `--peer ID@H:P` entries override a member's address."""
    override = {}
    for spec in overrides:
        node_id, _, address = spec.partition("@")
        override[node_id] = address
    out = []
    for m in genesis.members:
        if m.node_id == own_id:
            continue
        host, port = split_host_port(override.get(m.node_id, m.address))
        out.append(PeerAddress(m.node_id, m.public_key, host, port))
    return out


class ConsensusEngine:
    name = "consensus"
    kind = "async"

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.joined = load_joined(ctx.home.config_file.parent)  # a joiner's peer-set history (`node join`)
        self.genesis = genesis_for(ctx, self.joined)
        self.origin = self.genesis.origin
        self.peers = peer_addresses(self.genesis, ctx.key.fingerprint, ctx.settings.peers)
        self.peers += joined_peer_addresses(self.joined, set(self.genesis.public_keys), ctx.key.public)
        self.peer_set = PeerSet.of(self.genesis.public_keys)  # the genesis members; see `current_peers`
        self.graph = Hashgraph(PeerSchedule(self.peer_set), keep_rounds=ctx.settings.keep_rounds)
        if self.joined is not None:
            # Before any event is inserted: a joiner's rounds must use the sets everyone used.
            self.joined.apply(self.graph)
        self.core = MemberCore(ctx.key, self.graph, SelfEventPolicy(BUSY_HEARTBEAT_NS, IDLE_HEARTBEAT_NS))
        self.chain: ChainStore | None = None
        self.applier: BlockApplier | None = None
        self.endpoint: Endpoint | None = None
        self.gossip: GossipService | None = None
        self.trust: EngineTrust | None = None
        self.started_at = time.monotonic()
        self.phase_times: list[tuple[str, float]] = []  # (phase, seconds since the engine started)
        self.heard: dict[str, float] = {}
        self.blocks_applied = 0
        self.last_block: Block | None = None
        self.restored_events = 0
        self.block_listeners: list[Any] = []  # callables(AppliedBlock), run in the Trio thread
        self.view: NodeView | None = None
        self.executors: ExecutorRunner | None = None
        self.series: TimeSeriesWriter | None = None
        self._rounds_counted = 0
        self._carry_waiters: dict[bytes, trio.Event] = {}  # sha256(tx) -> set once in an own stored event
        self._bytes_counted = (0, 0, 0)  # gossip bytes sent, received, errors already in the metrics
        self._blocks_ready = trio.Event()
        self._node_nonce = 0
        self._own_writes_pending = 0  # own events created but not yet durable
        self._own_writes_durable = trio.Event()  # set whenever no own-event write is pending
        self._own_writes_durable.set()
        self._own_writes_lock = trio.Lock()

    # -- start ------------------------------------------------------------------------------------

    def _restore(self, chain: ChainStore) -> int:
        events = []
        for _, wire in chain.all_events():
            events.append(Event.from_wire(wire))
        # Committed membership changes first: the stored events' rounds depend on the peer sets.
        restore_peer_sets(self.graph, chain.state, round_of_block(chain))
        count = 0
        # Stored events were verified when they first arrived; re-checking them all would make a
        # restart cost one signature verification per event of history.
        self.graph.verify_signatures = False
        try:
            for event in topological(events):
                self.graph.insert(event)
                count += 1
        finally:
            self.graph.verify_signatures = True
        self.core.reload()
        return count

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        data_dir: Path = self.ctx.home.data / "chain"
        chain = await trio.to_thread.run_sync(ChainStore.open, data_dir)
        self.chain = chain
        try:
            self.restored_events = await trio.to_thread.run_sync(self._restore, chain)
            self.core.run_consensus()  # queue blocks of the restored graph; applied ones are skipped
            self.applier = BlockApplier(chain, self.origin)
            members = frozenset(m.node_id for m in self.genesis.members)
            if self.joined is not None:
                members |= self.joined.node_ids()  # later changes: `EngineTrust.set_members` (membership)
            trust = self.trust = EngineTrust(
                settings=self.ctx.settings, home_root=self.ctx.home.root, key=self.ctx.key, origin=self.origin,
                members=members, handler=self._handle, on_issued=self._certificate_issued,
                on_lost=self._certificate_lost, started=self.started_at,
            )
            self.endpoint = trust.endpoint
            # Online, nothing is gossiped until the CA has issued our certificate (offline homes keep
            # today's behaviour: gossip with whatever identity the home holds).
            self.gossip = GossipService(
                self.core, self.endpoint, self.peers, self, archive=self._from_archive, paused=trust.mode == "online"
            )
            self._phase_reached(self.ctx.phases.phase.value)
            self.ctx.phases.observe(self._phase_changed)
            view = self.view = self._make_view(chain)
            self.block_listeners.append(lambda ab: view.block_applied(ab.block.index, ab.result))
            executors = self.executors = ExecutorRunner(self)
            self.block_listeners.append(executors.block_applied)
            view.executors_source = executors.describe
            view.history_source = lambda: history_of(self)
            view.evidence_source = lambda: fork_proofs(chain.state)
            view.wait_carried = self.wait_carried
            api = ApiService(view, bind=self.ctx.settings.api, home=self.ctx.home)
            series_store = await trio.to_thread.run_sync(TimeSeriesStore, self.ctx.home.data / "timeseries.duckdb")
            self.series = TimeSeriesWriter(series_store)
            view.latency_listeners.append(self._record_latency)
            async with trio.open_nursery() as nursery:
                await nursery.start(self.series.run)
                address = await nursery.start(self.endpoint.run)
                await nursery.start(trust.run)
                url = await nursery.start(api.run)
                log.info("api up", url=url)
                log.info(
                    "consensus engine up", listen=f"{address[0]}:{address[1]}", origin=self.origin,
                    members=len(self.genesis.members), restored_events=self.restored_events,
                    last_block=self.applier.last_index(), trust=trust.mode, ca_issued=trust.ca_issued,
                )
                await nursery.start(executors.run)
                nursery.start_soon(self._apply_loop)
                await nursery.start(self.gossip.run)
                nursery.start_soon(self._phase_loop)
                publish_engine(self.ctx, self)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                if self.series is not None:
                    await trio.to_thread.run_sync(self.series.store.close)
                await trio.to_thread.run_sync(chain.close)

    def _make_view(self, chain: ChainStore) -> NodeView:
        submit = admitting_submit(self.submit, origin=self.origin, state=chain.state, now_ns=time.time_ns)
        return NodeView(
            chain,
            node_id=self.ctx.key.fingerprint,
            origin=self.origin,
            phase=lambda: self.ctx.phases.phase.value,
            graph=self.graph,
            peers=self._peer_rows,
            genesis_peers=[m.to_obj() for m in self.genesis.members],
            submit=submit,
        )

    def _record_latency(self, seconds: float, receipt: dict[str, Any]) -> None:
        if self.series is not None:
            outcome = "ok" if receipt.get("ok") else str(receipt.get("reason") or "failed")
            self.series.add(LatencyRow(time.time(), self.ctx.key.fingerprint, "*", seconds, outcome))

    def _peer_rows(self) -> list[dict[str, Any]]:
        connected = set(self.connected_peers())
        return [
            {"id": p.node_id, "address": f"{p.host}:{p.port}", "connected": p.node_id in connected}
            for p in self.peers
        ]

    async def _from_archive(self, request: SyncRequest) -> SyncResponse | None:
        """A sync response read from disk when the peer lacks events pruned from memory."""
        if self.chain is None or not self.graph.behind_memory(request.known):
            return None
        chain, creators, known = self.chain, self.graph.peers.all_members(), self.graph.known()
        events = await trio.to_thread.run_sync(
            events_from_store, chain, creators, request.known, known, self.core.sync_limit
        )
        return SyncResponse(tuple(events), known, True) if events else None

    async def _handle(self, peer: Any, payload: bytes) -> bytes:
        assert self.gossip is not None
        # A sync answered now could carry our newest event before it is on disk (see
        # `_write_own_event`); from here to the core's answer there is no checkpoint.
        while self._own_writes_pending:
            await self._own_writes_durable.wait()
        return await self.gossip.handle(peer, payload)

    # -- what the application does with the engine ------------------------------------------------

    def submit(self, transaction: bytes) -> None:
        """Queue a transaction for our next event; TransactionRefused when it cannot be carried."""
        self.core.submit_transaction(transaction)
        self._carry_waiters.setdefault(crypto.sha256(transaction), trio.Event())
        if self.gossip is not None:
            self.gossip.wake()

    def submit_node_action(self, path: str, args: dict[str, Any], *, target: str | None = None) -> Envelope:
        """Sign an action with this node's key and queue it (internal records: certificate
        transparency, federation, executor responses); the caller may `await wait_carried(env.to_wire())`."""
        # Nonces only need to grow per actor; wall-clock nanoseconds keep growing across restarts.
        self._node_nonce = max(time.time_ns(), self._node_nonce + 1)
        envelope = Envelope.sign(
            self.ctx.key, origin=self.origin, path=path, args=args, nonce=self._node_nonce,
            expiry_ns=time.time_ns() + NODE_ACTION_TTL_NS, target=target,
        )
        self.submit(envelope.to_wire())
        return envelope

    async def wait_carried(self, transaction: bytes) -> None:
        """Return once `transaction` is inside one of our own events on disk: from then on a crash
        cannot lose it (the event is gossiped again after a restart)."""
        waiter = self._carry_waiters.get(crypto.sha256(transaction))
        if waiter is not None:
            await waiter.wait()

    def own_event(self, event: Event, parents_first: list[tuple[bytes, bytes, int, bytes]] | None = None) -> None:
        """Write our own new event (after `parents_first`, in one batch) before anything else can
        happen: the lone-member path, where nobody else could see it meanwhile anyway."""
        if self.chain is None:
            return
        self.chain.put_events(self._own_rows(event, parents_first))
        self._carried(event)

    @staticmethod
    def _own_rows(event: Event, parents_first: list[tuple[bytes, bytes, int, bytes]] | None) -> list[Any]:
        rows: list[Any] = list(parents_first or [])
        rows.append((event.hash, event.creator, event.index, event.to_wire()))
        return rows

    def _carried(self, event: Event) -> None:
        for tx in event.transactions:
            waiter = self._carry_waiters.pop(crypto.sha256(tx), None)
            if waiter is not None:
                waiter.set()

    async def _write_own_event(self, event: Event, parents_first: list[tuple[bytes, bytes, int, bytes]]) -> None:
        """Put our new event on disk (fsync) in a worker thread, so the Trio loop keeps serving
        HTTP and QUIC meanwhile.  Until it is durable no peer may see it (`_handle` waits): a
        crash before the write lands then loses an event nobody saw, never one a peer holds."""
        assert self.chain is not None
        chain = self.chain
        if self._own_writes_pending == 0:
            self._own_writes_durable = trio.Event()
        self._own_writes_pending += 1
        try:
            async with self._own_writes_lock:  # FIFO: our events reach the disk in creation order
                rows = self._own_rows(event, parents_first)
                with trio.CancelScope(shield=True):  # a write, once started, is waited for
                    await trio.to_thread.run_sync(chain.put_events, rows)
            self._carried(event)
        finally:
            self._own_writes_pending -= 1
            if self._own_writes_pending == 0:
                self._own_writes_durable.set()

    # -- GossipSink ---------------------------------------------------------------------------------

    async def persist(self, outcome: SyncOutcome, received: tuple[Event, ...]) -> None:
        if self.chain is None:
            return
        # From the received events, not the graph: the consensus run that inserted them may
        # already have pruned them from memory (a node catching up on old rounds).
        inserted = set(outcome.inserted)
        rows = [(e.hash, e.creator, e.index, e.to_wire()) for e in received if e.hash in inserted]
        self._count(outcome)
        if outcome.created is not None:
            # Our own new event goes to disk in one batch after the events it builds on, and no
            # peer is served until it is there: a crash that lost an event a peer already holds,
            # or kept it without its other-parent, would make us sign a different event at the
            # same index after the restart (a fork by an honest node).
            await self._write_own_event(outcome.created, rows)
        elif rows:
            # Written here, not in a worker thread: a later own event of ours must never reach
            # the disk before the events it builds on (restart drops an event without parents).
            # No fsync: others' events can be fetched again, and the fsync of our next own
            # event flushes the log through these too.
            self.chain.put_events(rows, sync=False)

    def _count(self, outcome: SyncOutcome) -> None:
        if self.view is None:
            return
        metrics = self.view.metrics
        metrics.events_inserted.inc(len(outcome.inserted) + (outcome.created is not None))
        for _, rejection in outcome.rejected:
            metrics.events_rejected.labels(rejection.reason.name.lower()).inc()
        decided = self.graph.next_to_process
        if decided > self._rounds_counted:
            metrics.rounds_decided.inc(decided - self._rounds_counted)
            self._rounds_counted = decided
        if self.gossip is not None:
            stats = self.gossip.stats
            metrics.gossip_bytes.labels("sent").inc(stats.bytes_sent - self._bytes_counted[0])
            metrics.gossip_bytes.labels("received").inc(stats.bytes_received - self._bytes_counted[1])
            metrics.gossip_errors.labels("sync").inc(stats.sync_errors - self._bytes_counted[2])
            self._bytes_counted = (stats.bytes_sent, stats.bytes_received, stats.sync_errors)

    def blocks_ready(self) -> None:
        self._blocks_ready.set()

    def peer_heard(self, node_id: str) -> None:
        self.heard[node_id] = time.monotonic()

    # -- applying blocks ----------------------------------------------------------------------------

    async def _apply_loop(self) -> None:
        assert self.applier is not None
        applier = self.applier
        while True:
            await self._blocks_ready.wait()
            self._blocks_ready = trio.Event()
            for block in self.core.next_blocks():
                started = time.perf_counter()
                members = tuple(sorted(self.graph.peers.at(block.round_received).members))
                applied = await trio.to_thread.run_sync(applier.apply, block, members, election_of(block))
                if applied is None:
                    continue
                self._on_applied(applied)
                if self.series is not None:
                    self.series.add(BlockRow(
                        time.time(), self.ctx.key.fingerprint, block.index, block.round_received, 0,
                        len(block.transactions), sum(len(t) for t in block.transactions),
                        time.perf_counter() - started,
                    ))

    def _on_applied(self, applied: AppliedBlock) -> None:
        block = applied.block
        peers = self.graph.peers.at(block.round_received)
        self.graph.signatures.register_block(block, peers)
        signature = block.sign(self.ctx.key)
        self.graph.signatures.add(signature)
        self.core.add_block_signature(signature)
        self.blocks_applied += 1
        self.last_block = block
        log.debug("block applied", index=block.index, txs=len(block.transactions), state=block.state_hash.hex()[:16])
        for listener in list(self.block_listeners):
            listener(applied)

    # -- phases ---------------------------------------------------------------------------------------

    def _certificate_issued(self) -> None:
        if self.ctx.phases.can_fire(Trigger.CA_ISSUED):
            self.ctx.phases.fire(Trigger.CA_ISSUED)
        if self.gossip is not None and self.gossip.paused:
            self.gossip.resume()

    def _certificate_lost(self, reason: str) -> None:
        log.warning("CA certificate lost: back to self-signed, gossip paused", reason=reason)
        if self.gossip is not None:
            self.gossip.pause()
        self.heard.clear()
        if self.ctx.phases.can_fire(Trigger.CERT_REVOKED):
            self.ctx.phases.fire(Trigger.CERT_REVOKED)

    def _phase_changed(self, change: PhaseChange) -> None:
        self._phase_reached(change.new.value, trigger=change.trigger.value)

    def _phase_reached(self, phase: str, trigger: str | None = None) -> None:
        after = round(time.monotonic() - self.started_at, 3)
        self.phase_times.append((phase, after))
        log.info("phase reached", phase=phase, after_s=after, trigger=trigger)

    @property
    def current_peers(self) -> PeerSet:
        """The peer set in force now (genesis members, changed by committed joins and removals)."""
        return self.graph.peers.at(max(self.graph.last_round, 0))

    def connected_peers(self) -> list[str]:
        horizon = time.monotonic() - HEARD_WINDOW_S
        return sorted(node_id for node_id, at in self.heard.items() if at >= horizon)

    async def _phase_loop(self) -> None:
        phases = self.ctx.phases
        while True:
            if phases.phase is Phase.CA_ISSUED and len(self.connected_peers()) + 1 >= self.current_peers.supermajority:
                phases.fire(Trigger.CONSENSUS_JOINED)
                log.info("consensus joined", peers=len(self.connected_peers()))
            if self.view is not None:
                self.view.metrics.redis_bridge_up.set(1 if self.ctx.redis.up else 0)
            await trio.sleep(0.5)

    def describe(self) -> dict[str, Any]:
        last = self.last_block
        return {
            "origin": self.origin,
            "members": len(self.current_peers),
            "connected_peers": self.connected_peers(),
            "last_block": None if last is None else last.index,
            "last_state_hash": None if last is None else last.state_hash.hex(),
            "last_round": self.graph.last_round,
            "events": self.graph.event_count(),
            "gossip": self.gossip.describe() if self.gossip else {},
            "trust": self.trust.describe() if self.trust else {},
            "phase_times": [{"phase": p, "after_s": t} for p, t in self.phase_times],
        }


__all__ = ["ConsensusEngine", "TransactionRefused"]

"""One simulated node: the real Hashgraph + MemberCore + GossipService, an in-memory "disk", and
a sink that applies blocks in order with `execute_block` on a dict state.

The disk survives a crash: the events persisted through the sink (wire bytes, in persistence
order), the applied state and the chain (index, block hash with state hash, state hash).  A
restart replays the events in topological order into a fresh graph and core, like the engine's
restore, and skips the blocks already applied, checking that the replay re-derives them.
Everything runs in the Trio thread: no worker threads, they would break determinism.  Where the
engine hands a disk write to a thread (received events), the sink yields once instead, so a crash
can fall in the same window.  The engine's archive (events pruned from memory served from disk)
is the real `events_from_store` over this disk.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import trio

from node.actions import BlockContext, execute_block
from node.consensus.blocks import Block
from node.consensus.event import Event
from node.consensus.hashgraph import Hashgraph
from node.consensus.node_core import MemberCore, SyncOutcome, TransactionRefused
from node.consensus.peers import PeerSchedule, PeerSet
from node.consensus.policy import SelfEventPolicy
from node.consensus.sync import SyncRequest, SyncResponse
from node.crypto import PrivateKey
from node.engine.archive import events_from_store
from node.engine.gossip import GossipService, PeerAddress
from node.engine.records import topological
from simulations.det_net import ORIGIN, NodeLink

# A test-only hook: (node index, block) -> the block this node applies instead (to prove the
# invariants catch a broken node).
ApplyHook = Callable[[int, Block], Block]


class SimulationViolation(Exception):
    """An invariant broke; the message is the one-line reason."""


@dataclass(frozen=True)
class ChainEntry:
    index: int
    block_hash: bytes  # hash of the block with its state hash
    state_hash: bytes
    transactions: tuple[bytes, ...]


@dataclass
class Disk:
    """What survives a crash; its event part reads like the engine's `ChainStore`."""

    events: dict[bytes, bytes] = field(default_factory=dict)  # hash -> wire
    by_creator: dict[bytes, dict[int, bytes]] = field(default_factory=dict)  # creator -> index -> hash
    state: dict[bytes, bytes] = field(default_factory=dict)
    chain: list[ChainEntry] = field(default_factory=list)

    def put_event(self, event: Event) -> None:
        if event.hash not in self.events:
            self.events[event.hash] = event.to_wire()
            self.by_creator.setdefault(event.creator, {})[event.index] = event.hash

    def get_event(self, event_hash: bytes) -> bytes | None:
        return self.events.get(event_hash)

    def creator_events(self, creator: bytes, start: int = 0) -> Iterator[tuple[int, bytes]]:
        chain = self.by_creator.get(creator, {})
        for index in sorted(i for i in chain if i >= start):
            yield index, chain[index]


@dataclass(frozen=True)
class NodeSetup:
    members: PeerSet
    peers: list[PeerAddress]
    policy: SelfEventPolicy
    verify_signatures: bool
    keep_rounds: int | None


class SimNode:
    def __init__(
        self, index: int, key: PrivateKey, setup: NodeSetup, link: NodeLink, rng: random.Random,
        apply_hook: ApplyHook | None = None,
    ) -> None:
        self.index = index
        self.key = key
        self.setup = setup
        self.link = link
        self.rng = rng  # draws one seed per incarnation
        self.apply_hook = apply_hook
        self.disk = Disk()
        self.core: MemberCore | None = None
        self.gossip: GossipService | None = None
        self.scope: trio.CancelScope | None = None
        self.nursery: trio.Nursery | None = None  # this incarnation's: handlers of peers' requests run in it
        self.heard: dict[str, float] = {}
        self.crashes = 0
        self.archive_served = 0
        self.lost_pending: list[bytes] = []  # accepted transactions a crash lost before any event held them
        self.on_block: Callable[[], None] | None = None  # told after each applied block

    @property
    def up(self) -> bool:
        return self.gossip is not None

    # -- lifecycle ----------------------------------------------------------------------------

    def boot(self) -> None:
        """Build graph, core and gossip service from the disk (empty at first start)."""
        s = self.setup
        # As the engine's restore: stored events were verified on arrival, not again.
        graph = Hashgraph(PeerSchedule(s.members), verify_signatures=False, keep_rounds=s.keep_rounds)
        for event in topological(Event.from_wire(w) for w in self.disk.events.values()):
            graph.insert(event)
        graph.verify_signatures = s.verify_signatures
        core = MemberCore(self.key, graph, s.policy)
        core.reload()
        self.core = core
        core.run_consensus()  # queue the blocks of the restored graph; applied ones are skipped
        self.blocks_ready()
        self.gossip = GossipService(
            core, self.link, s.peers, self, rng=random.Random(self.rng.getrandbits(64)), clock_ns=now_ns,
            archive=self._from_archive,
        )
        self.scope = trio.CancelScope()

    async def run(self) -> None:
        assert self.gossip is not None and self.scope is not None
        with self.scope:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                await self.gossip.run()

    def crash(self, *, wipe: bool = False) -> None:
        """Stop at once: in-memory state is gone, the disk stays (unless `wipe`: the disk is lost too)."""
        if self.core is not None:
            self.lost_pending.extend(self.core.pending_transactions)
        if self.scope is not None:
            self.scope.cancel()
        self.core = self.gossip = self.scope = self.nursery = None
        self.crashes += 1
        if wipe:
            self.disk = Disk()

    def submit(self, tx: bytes) -> bool:
        """The engine's submit: queue in the core and wake gossip.  False when refused or down."""
        if self.core is None or self.gossip is None:
            return False
        try:
            self.core.submit_transaction(tx)
        except TransactionRefused:
            return False
        self.gossip.wake()
        return True

    async def handle(self, peer: object, payload: bytes) -> bytes:
        assert self.gossip is not None
        return await self.gossip.handle(peer, payload)  # type: ignore[arg-type]

    # -- GossipSink ---------------------------------------------------------------------------

    async def persist(self, outcome: SyncOutcome, received: tuple[Event, ...]) -> None:
        # As the engine: our own new event is written before the task yields; received events
        # are written from the message (the graph may have pruned them) after a yield (the engine's
        # worker thread), so a crash can lose them (they are fetched again) but never our own.
        disk = self.disk
        if outcome.created is not None:
            disk.put_event(outcome.created)
        inserted = set(outcome.inserted)
        rows = [e for e in received if e.hash in inserted]
        if rows:
            await trio.lowlevel.checkpoint()
            for event in rows:
                disk.put_event(event)

    def own_event(self, event: Event) -> None:
        """An event the core made outside a sync (a lone member's timer): on disk at once."""
        self.disk.put_event(event)

    async def _from_archive(self, request: SyncRequest) -> SyncResponse | None:
        """The engine's archive: events a peer lacks that we pruned from memory, read from disk."""
        core = self.core
        if core is None or not core.graph.behind_memory(request.known):
            return None
        await trio.lowlevel.checkpoint()  # the engine reads the store in a worker thread
        store: Any = self.disk  # duck-types the ChainStore methods events_from_store uses
        known = core.graph.known()
        events = events_from_store(store, list(self.setup.members.members), request.known, known, core.sync_limit)
        self.archive_served += bool(events)
        return SyncResponse(tuple(events), known, True) if events else None

    def blocks_ready(self) -> None:
        core = self.core
        if core is None:
            return
        for block in core.next_blocks():
            self._apply(core, block)

    def peer_heard(self, node_id: str) -> None:
        self.heard[node_id] = trio.current_time()

    # -- blocks -------------------------------------------------------------------------------

    def _apply(self, core: MemberCore, block: Block) -> None:
        chain = self.disk.chain
        if block.index < len(chain):  # applied before a restart: the replay must re-derive it
            done = chain[block.index]
            if block.with_state_hash(done.state_hash).hash != done.block_hash:
                raise SimulationViolation(
                    f"n{self.index} re-derived block {block.index} differently after a restart"
                )
            return
        if self.apply_hook is not None:
            block = self.apply_hook(self.index, block)
        result = execute_block(
            self.disk.state, list(block.transactions), BlockContext(block.index, block.timestamp, ORIGIN)
        )
        for key, value in result.writes.items():
            if value is None:
                self.disk.state.pop(key, None)
            else:
                self.disk.state[key] = value
        sealed = block.with_state_hash(result.state_hash)
        chain.append(ChainEntry(block.index, sealed.hash, result.state_hash, tuple(block.transactions)))
        # Sign as the engine does, so block signatures travel in events.
        core.graph.signatures.register_block(sealed, core.graph.peers.at(block.round_received))
        signature = sealed.sign(self.key)
        core.graph.signatures.add(signature)
        core.add_block_signature(signature)
        if self.on_block is not None:
            self.on_block()


def now_ns() -> int:
    """The cores' clock: Trio's (simulated) time in ns."""
    return round(trio.current_time() * 1e9)

"""One member's gossip core (sans-IO): graph + sync + self-event policy + pending payload.

The transport calls it; it never reads a clock or a global random source:

    req = core.make_sync_request(peer)                 # send to peer
    resp = core.handle_sync_request(req)               # on the peer: answer
    out = core.handle_sync_response(peer, resp, now)   # insert, create a self-event, push back
    if out.push: send(peer, out.push)                  # the peer inserts it with handle_eager_push
    if out.penalise: report(peer)                      # garbage or bad signatures
    for block in core.next_blocks(): apply(block)

Timers: `get_timer()` is the absolute time (ns) of the next gossip round; at that time call
`handle_timer(now, rng)`, which picks a peer and returns the request to send (or, for a lone
member, creates its event directly).  After a sync the member creates an event whose
other-parent is the head of the peer it synced with (Babble style), carrying pending
transactions, internal transactions and block signatures.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import TypeVar

from node import crypto
from node.consensus.blocks import Block, OrderedRound
from node.consensus.election import famous_witnesses
from node.consensus.errors import EventRejected, RejectReason
from node.consensus.event import (
    MAX_BLOCK_SIGNATURES,
    MAX_INTERNAL_TRANSACTIONS,
    MAX_PAYLOAD_BYTES,
    MAX_TRANSACTIONS,
    BlockSignature,
    Event,
    InternalTransaction,
)
from node.consensus.hashgraph import Hashgraph
from node.consensus.policy import Activity, SelfEventPolicy
from node.consensus.prune import prune
from node.consensus.sync import (
    MAX_FORK_TIPS,
    SYNC_LIMIT,
    EagerPush,
    Forks,
    Heads,
    Known,
    SyncRequest,
    SyncResponse,
    fit_frame,
)
from node.errors import InvalidInput

MAX_PENDING_BYTES = 16 << 20
T = TypeVar("T")

# Rejections only a broken or malicious peer causes (an honest peer may send events whose parents
# we pruned or whose creator joined after our view, or a forker's third branch: not its fault).
PENALISED_REASONS = frozenset({
    RejectReason.BAD_SIGNATURE, RejectReason.MALFORMED, RejectReason.OVERSIZED, RejectReason.WRONG_INDEX,
    RejectReason.SELF_PARENT_BY_OTHER_CREATOR, RejectReason.OTHER_PARENT_BY_SAME_CREATOR,
})


class TransactionRefused(InvalidInput):
    """A transaction too large for one event, or the pending pool is full (back-pressure)."""


@dataclass(frozen=True)
class SyncOutcome:
    inserted: tuple[bytes, ...]
    duplicates: int
    rejected: tuple[tuple[Event, EventRejected], ...]
    penalise: bool  # the peer sent events only a faulty or malicious peer sends
    created: Event | None  # our new self-event, if any
    push: EagerPush | None  # what the peer lacks (our new event included): send it back
    more: bool  # the peer held events back: sync with it again soon
    new_blocks: tuple[Block, ...]  # also queued for next_blocks()


@dataclass(frozen=True)
class DecidedRound:
    """A processed round: its unique famous witnesses (the election seed), P(r), and its block."""

    round_received: int
    famous_witnesses: tuple[bytes, ...]
    members: tuple[bytes, ...]
    block: Block | None


@dataclass(frozen=True)
class _Inserted:
    inserted: tuple[bytes, ...]
    duplicates: int
    rejected: tuple[tuple[Event, EventRejected], ...]


def _take(queue: deque[T], limit: int) -> list[T]:
    return [queue.popleft() for _ in range(min(len(queue), limit))]


def _loaded(event: Event) -> bool:
    return bool(event.transactions or event.internal_transactions)


class MemberCore:
    def __init__(
        self,
        key: crypto.PrivateKey,
        graph: Hashgraph,
        policy: SelfEventPolicy | None = None,
        *,
        sync_limit: int = SYNC_LIMIT,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self.key = key
        self.id = key.public
        self.graph = graph
        self.policy = policy if policy is not None else SelfEventPolicy()
        self.sync_limit = sync_limit
        self.max_pending_bytes = max_pending_bytes
        self.head: Event | None = None  # our own chain's newest event, even if another copy of us forks
        self.pending_transactions: deque[bytes] = deque()
        self.pending_bytes = 0
        self.pending_internal: deque[InternalTransaction] = deque()
        self.pending_signatures: deque[BlockSignature] = deque()
        self.last_peer: bytes | None = None
        self.last_gossip_ns: int | None = None
        self.timer_created: Event | None = None  # the event a lone member made in handle_timer
        self._blocks: deque[Block] = deque()
        self._rounds: deque[DecidedRound] = deque()
        self._fork_floor: dict[bytes, int] = {}
        self._view_forks: Forks = {}
        self._view_heads: Heads = {}
        self._evidence_seen = 0
        self._loaded_undetermined: set[bytes] = set()
        self.reload()

    def reload(self) -> None:
        """Re-read our head and the events still waiting for their order from the graph: call it
        after filling the graph from storage."""
        self.head = self.graph.last_event_of(self.id)
        self._loaded_undetermined = {h for h, rec in self.graph.undetermined.items() if _loaded(rec.event)}

    # -- payload ------------------------------------------------------------------------------

    def submit_transaction(self, tx: bytes) -> None:
        if len(tx) > MAX_PAYLOAD_BYTES:
            raise TransactionRefused(f"transaction of {len(tx)} bytes exceeds {MAX_PAYLOAD_BYTES}")
        if self.pending_bytes + len(tx) > self.max_pending_bytes:
            raise TransactionRefused("pending transaction pool is full")
        self.pending_transactions.append(tx)
        self.pending_bytes += len(tx)

    def add_internal_transaction(self, itx: InternalTransaction) -> None:
        self.pending_internal.append(itx)

    def add_block_signature(self, sig: BlockSignature) -> None:
        """Our signature of a block, carried in our next event."""
        self.pending_signatures.append(sig)

    def activity(self) -> Activity:
        return Activity(
            len(self.pending_transactions), len(self.pending_internal), len(self.pending_signatures),
            len(self._loaded_undetermined),
        )

    # -- peers and timers ---------------------------------------------------------------------

    def is_member(self) -> bool:
        """In the current peer set: a joining member creates no events before its round comes."""
        return self.id in self.graph.peers.at(max(self.graph.last_round, 0))

    def peers(self) -> list[bytes]:
        """The other members of the current peer set."""
        current = self.graph.peers.at(max(self.graph.last_round, 0))
        return [m for m in current.members if m != self.id]

    def choose_peer(self, rng: random.Random) -> bytes | None:
        """A random peer, avoiding the one we synced with last when there is a choice."""
        peers = self.peers()
        if len(peers) > 1 and self.last_peer in peers:
            peers.remove(self.last_peer)
        if not peers:
            return None
        return peers[rng.randrange(len(peers))]

    def get_timer(self) -> int:
        """Absolute time (ns) of the next gossip round."""
        return self.policy.next_deadline(self.last_gossip_ns, self.activity())

    def handle_timer(self, now_ns: int, rng: random.Random) -> tuple[bytes, SyncRequest] | None:
        """Start a gossip round: (peer, request) to send, or None.  A lone member (no other peer)
        creates its event here instead; it is left in `timer_created` for the caller to persist."""
        self.last_gossip_ns = now_ns
        self.timer_created = None
        peer = self.choose_peer(rng)
        if peer is None:
            if self.is_member() and (self.head is None or self.policy.create_without_peers(self.activity())):
                self.timer_created = self.create_event(now_ns, None)
                self.run_consensus()
            return None
        return peer, self.make_sync_request(peer)

    # -- sync ---------------------------------------------------------------------------------

    def _fork_floors(self) -> dict[bytes, int]:
        """Forker -> the lowest index where we saw it fork (cached; evidence only grows)."""
        evidence = self.graph.fork_evidence
        for first, _ in evidence[self._evidence_seen:]:
            floor = self._fork_floor.get(first.creator)
            if floor is None or first.index < floor:
                self._fork_floor[first.creator] = first.index
        self._evidence_seen = len(evidence)
        return self._fork_floor

    def _events_of(self, creator: bytes, from_index: int) -> list[Event]:
        skip_others = dict.fromkeys(self.graph.peers.all_members(), 1 << 62)
        skip_others[creator] = from_index - 1
        return self.graph.events_since(skip_others, 1 << 30)

    def fork_view(self) -> Forks:
        """For each creator we saw fork: the first fork index and the tips of its branches."""
        view: Forks = {}
        for creator, floor in self._fork_floors().items():
            events = self._events_of(creator, floor)
            parents = {e.self_parent for e in events}
            tips = sorted(h for h in map(self.graph.hasher, events) if h not in parents)
            view[creator] = (floor, tuple(tips[:MAX_FORK_TIPS]))
        return view

    def make_sync_request(self, peer: bytes) -> SyncRequest:
        self.last_peer = peer
        return SyncRequest(self.id, self.graph.known(), self.fork_view(), self.heads())

    def heads(self) -> Heads:
        """Creator -> hash of our newest event by it (see `sync.Heads`)."""
        out: Heads = {}
        for creator in self.graph.known():
            event = self.head if creator == self.id and self.head is not None else self.graph.last_event_of(creator)
            if event is not None:
                out[creator] = self.graph.hasher(event)
        return out

    def events_for(
        self, known: Known, forks: Forks | None = None, heads: Heads | None = None
    ) -> tuple[list[Event], bool]:
        """Events a peer lacks, given its Known map, fork tips and heads; capped by the sync limit
        and the frame size.  A Known map holds one index per creator and cannot tell a forker's
        branches apart, so for a forker (seen by either side) everything from its first fork on is
        a candidate, minus the self-ancestors of the tips the peer says it holds.  When the peer's
        head for a creator is an event we lack although we hold that index, the chains diverge (a
        fork nobody saw yet): we send all of that creator's events we hold, so the peer sees it."""
        forks = forks or {}
        mine = self.graph.known()
        self._view_forks, self._view_heads = self.fork_view(), self.heads()  # what we send along
        floors = dict(self._fork_floors())
        for creator, (floor, _) in forks.items():
            floors[creator] = min(floors.get(creator, floor), floor)
        capped = dict(known)
        for creator, floor in floors.items():
            if capped.get(creator, -1) >= floor:
                capped[creator] = floor - 1
        for creator, head in (heads or {}).items():
            index = known.get(creator, -1)
            if creator not in floors and 0 <= index <= mine.get(creator, -1) and not self.graph.has(head):
                capped[creator] = -1
        exclude: set[bytes] = set()
        for creator, (_, tips) in forks.items():
            low = floors[creator]
            for tip in tips:
                h: bytes | None = tip
                while h is not None and h not in exclude and self.graph.has(h):
                    event = self.graph.event(h)
                    if event.creator != creator or event.index < low:
                        break
                    exclude.add(h)
                    h = event.self_parent
        candidates = self.graph.events_since(capped, self.sync_limit + 1 + len(exclude))
        if exclude:
            candidates = [e for e in candidates if self.graph.hasher(e) not in exclude]
        return fit_frame(candidates, mine, self._view_forks, self._view_heads, self.sync_limit)

    def handle_sync_request(self, req: SyncRequest) -> SyncResponse:
        events, more = self.events_for(req.known, req.forks, req.heads)
        return SyncResponse(tuple(events), self.graph.known(), more, self._view_forks, self._view_heads)

    def handle_sync_response(self, peer: bytes, resp: SyncResponse, now_ns: int) -> SyncOutcome:
        result, loaded = self._insert(resp.events)
        created = None
        first = self.head is None and not resp.more  # our genesis event, once caught up
        caught_up = not resp.more
        wanted = first or self.policy.create_after_sync(self.activity(), loaded_received=loaded, caught_up=caught_up)
        if wanted and self.is_member():
            peer_head = self.graph.last_event_of(peer)
            created = self.create_event(now_ns, peer_head.hash if peer_head is not None else None)
        push = None
        missing, _ = self.events_for(resp.sender_known, resp.sender_forks, resp.sender_heads)
        if missing:
            push = EagerPush(tuple(missing))
        return self._outcome(result, created, push, resp.more)

    def handle_eager_push(self, peer: bytes, push: EagerPush, now_ns: int) -> SyncOutcome:
        """Insert what a peer pushed; no event is created (that would answer a push with a push)."""
        del peer, now_ns  # same shape as handle_sync_response for the transport
        result, _ = self._insert(push.events)
        return self._outcome(result, None, None, False)

    def _insert(self, events: tuple[Event, ...]) -> tuple[_Inserted, int]:
        batch = self.graph.insert_batch(events)
        rejected = list(batch.rejected)
        inserted = list(batch.inserted)
        # A reordered batch (e.g. pushes crossing on the wire) may have children before parents:
        # one more pass recovers those without trusting the peer for anything.
        retry = [e for e, exc in rejected if exc.reason is RejectReason.UNKNOWN_PARENT]
        if retry and inserted:
            again = self.graph.insert_batch(retry)
            inserted.extend(again.inserted)
            fixed = {e.hash for e in retry} - {e.hash for e, _ in again.rejected}
            rejected = [(e, exc) for e, exc in rejected if e.hash not in fixed]
        loaded = 0
        for h in inserted:
            if _loaded(self.graph.event(h)):
                self._loaded_undetermined.add(h)
                loaded += 1
        return _Inserted(tuple(inserted), batch.duplicates, tuple(rejected)), loaded

    def _outcome(self, result: _Inserted, created: Event | None, push: EagerPush | None, more: bool) -> SyncOutcome:
        blocks = [d.block for d in self.run_consensus() if d.block is not None]
        penalise = any(exc.reason in PENALISED_REASONS for _, exc in result.rejected)
        return SyncOutcome(
            result.inserted, result.duplicates, result.rejected, penalise, created, push, more, tuple(blocks)
        )

    # -- self-events and consensus ------------------------------------------------------------

    def create_event(self, now_ns: int, other_parent: bytes | None) -> Event:
        """Sign and insert our next event with as much pending payload as one event holds."""
        txs: list[bytes] = []
        size = 0
        while self.pending_transactions and len(txs) < MAX_TRANSACTIONS:
            tx = self.pending_transactions[0]
            if size + len(tx) > MAX_PAYLOAD_BYTES:
                break
            txs.append(self.pending_transactions.popleft())
            size += len(tx)
        self.pending_bytes -= size
        itxs = _take(self.pending_internal, MAX_INTERNAL_TRANSACTIONS)
        sigs = _take(self.pending_signatures, MAX_BLOCK_SIGNATURES)
        # A member whose disk was lost learns its own older events back from its peers: build on
        # the newest of them, never sign a second event at an index it already used.
        latest = self.graph.last_event_of(self.id)
        if latest is not None and (self.head is None or latest.index > self.head.index):
            self.head = latest
        head = self.head
        timestamp = now_ns if head is None else max(now_ns, head.timestamp + 1)  # our clock never goes back
        event = Event.create(
            self.key, index=0 if head is None else head.index + 1, self_parent=None if head is None else head.hash,
            other_parent=other_parent, timestamp=timestamp, transactions=tuple(txs),
            internal_transactions=tuple(itxs), block_signatures=tuple(sigs),
        )
        self.graph.insert(event)  # our own event is valid by construction; a failure is a bug
        self.head = event
        if _loaded(event):
            self._loaded_undetermined.add(self.graph.hasher(event))
        return event

    def run_consensus(self) -> list[OrderedRound]:
        # The graph prunes old rounds inside run_consensus; one call can process more rounds than it
        # keeps (catching up), and we still need each round's famous witnesses: prune afterwards.
        graph = self.graph
        keep, graph.keep_rounds = graph.keep_rounds, None
        try:
            done = graph.run_consensus()
        finally:
            graph.keep_rounds = keep
        for rnd in done:
            self._loaded_undetermined.difference_update(rnd.event_hashes)
            if rnd.block is not None:
                self._blocks.append(rnd.block)
            self._rounds.append(DecidedRound(
                rnd.round_received, tuple(famous_witnesses(self.graph, rnd.round_received)),
                self.graph.peers.at(rnd.round_received).members, rnd.block,
            ))
        if done and keep is not None:
            cutoff = graph.next_to_process - 1 - keep
            if cutoff > graph.pruned_below:
                prune(graph, cutoff)
        return done

    def next_blocks(self) -> list[Block]:
        """Blocks produced since the last call, in order.  Use this or `next_rounds`, not both."""
        out = list(self._blocks)
        self._blocks.clear()
        self._rounds.clear()
        return out

    def next_rounds(self) -> list[DecidedRound]:
        """Every processed round since the last call, in order, with its block if it made one:
        what an `election.Elector` needs (elections fall on round numbers, block or not)."""
        out = list(self._rounds)
        self._rounds.clear()
        self._blocks.clear()
        return out

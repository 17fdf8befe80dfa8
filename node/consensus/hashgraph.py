"""The hashgraph: incremental, validated insertion and the consensus pipeline (sans-IO).

    graph = Hashgraph(PeerSchedule(PeerSet.of(keys)))
    graph.insert(event)              # raises EventRejected(reason) and leaves the graph unchanged
    for done in graph.run_consensus():   # rounds processed in order since the last call
        done.block                   # a Block (state hash still empty) or None; every round
                                     # received R with R % election_interval == 0 makes a block
                                     # with `block.election` (an ElectionSeed), even if empty

Nothing here reads a clock: timestamps come from events.  Round, witness and Lamport values are
computed once at insertion; fame, round received and order are computed by `run_consensus`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple

from node.consensus import fame, order
from node.consensus.ancestry import Ancestry
from node.consensus.blocks import OrderedRound, SignatureBook
from node.consensus.election import DEFAULT_ELECTION_INTERVAL
from node.consensus.errors import ConsensusUsageError, EventRejected, RejectReason
from node.consensus.event import (
    MAX_BLOCK_SIGNATURES,
    MAX_INTERNAL_TRANSACTIONS,
    MAX_PAYLOAD_BYTES,
    MAX_TRANSACTIONS,
    BlockSignature,
    Event,
    InternalTransaction,
)
from node.consensus.peers import PeerSchedule, PeerSet
from node.consensus.prune import prune
from node.consensus.records import NO_DESCENDANT, EventRecord, RoundInfo
from node.crypto import PrivateKey

Hasher = Callable[[Event], bytes]
PRUNE_EVERY_ROUNDS = 4
MAX_BRANCHES = 10  # events kept per (creator, index): a forker may show up to 10 branches
# Witness vectors (`EventRecord.wvec`): one FIELD-bit counter per witness of a round, so the
# vectors of n members add up, in one C-level `sum`, to per-witness counts.
FIELD = 8
MAX_COUNTED_MEMBERS = 191  # fields hold n + 2**(FIELD-1) - SM(n) and SM(n) <= 2**(FIELD-1); larger
# peer sets take the per-witness path


def default_hasher(event: Event) -> bytes:
    return event.hash


class InsertResult(NamedTuple):  # a tuple: built once per event on the hot path (by `_new_tuple`)
    hash: bytes
    round: int
    witness: bool
    lamport: int
    fork: bool  # this event made its creator a (known) forker or added a second branch


class _PeerColumns(NamedTuple):
    """P(r) in column terms for the insertion hot path (built once per peer set)."""

    peers: PeerSet
    cols: list[int]  # the members' columns
    supermajority: int
    colset: frozenset[int]
    every_column: bool  # P(r) holds every known creator: per-event vectors need no selecting
    counted: bool  # witness vectors can count this many members
    # Added to a sum of witness vectors, sets a field's top bit iff its count >= supermajority.
    threshold_add: int
    top_bits: int


def _fields(value: int, count: int) -> int:
    """`value` in each of `count` FIELD-bit fields."""
    return sum(value << (FIELD * i) for i in range(count))


def _witnesses_in(witnesses: list[EventRecord], hits: int) -> list[EventRecord]:
    """The witnesses whose field has its top bit set in `hits`."""
    out = []
    top = FIELD - 1
    for w in witnesses:
        if (hits >> top) & 1:
            out.append(w)
        top += FIELD
    return out


def _seq_of(rec: EventRecord) -> int:
    return rec.seq


_new_tuple = tuple.__new__  # builds a NamedTuple without its Python-level __new__
_ZEROS = repeat(0)  # the default of `dict.get` in `map`


@dataclass(frozen=True)
class BatchResult:
    inserted: tuple[bytes, ...]
    duplicates: int
    rejected: tuple[tuple[Event, EventRejected], ...]


class Hashgraph:
    def __init__(
        self,
        peers: PeerSchedule,
        *,
        verify_signatures: bool = True,
        hasher: Hasher = default_hasher,
        keep_rounds: int | None = None,
        max_branches: int = MAX_BRANCHES,
        election_interval: int | None = DEFAULT_ELECTION_INTERVAL,
    ) -> None:
        """`keep_rounds`: when set, processed rounds older than that many rounds are dropped.
        `max_branches`: events stored per (creator, index); more branches of a fork are refused
        (counted in `fork_rejections`).  Honest events built on a refused branch cannot be
        inserted either, so the limit is generous; the cost of a fork grows with the branches an
        event has among its ancestors (its tips), which this bounds."""
        if election_interval is not None and election_interval <= 0:
            raise ConsensusUsageError("election_interval must be positive (None: no elections)")
        # Every round received R with R % election_interval == 0 makes a block carrying an
        # `ElectionSeed`, even without transactions (replay of Babble's graphs passes None).
        self.election_interval = election_interval
        if max_branches < 2:
            raise ConsensusUsageError("max_branches must be at least 2 (a fork must be detectable)")
        self.max_branches = max_branches
        if keep_rounds is not None and keep_rounds < 8:
            raise ConsensusUsageError("keep_rounds must be at least 8 (membership delay plus voting)")
        self.peers = peers
        self.verify_signatures = verify_signatures
        self.hasher = hasher
        self._plain_hash = hasher is default_hasher  # skip one call per insertion
        self.keep_rounds = keep_rounds
        self.anc = Ancestry()
        self.signatures = SignatureBook(verify_signatures=verify_signatures)
        self._col_of: dict[bytes, int] = {}
        self._creators: list[bytes] = []
        self.top_index: list[int] = []  # per column: the highest index inserted (-1: none)
        self._seq = 0
        self.rounds: dict[int, RoundInfo] = {}
        self.last_round = -1
        self.first_undecided = 0
        self.next_to_process = 0
        self.next_block_index = 0
        # Events not received yet, per round, in insertion order.
        self.undetermined_by_round: dict[int, list[EventRecord]] = {}
        self.received: dict[int, list[EventRecord]] = {}
        self.ordered_rounds: dict[int, tuple[bytes, ...]] = {}  # processed rounds still in memory
        self.fork_evidence: list[tuple[Event, Event]] = []
        self.fork_rejections: dict[bytes, int] = {}
        self.pending_witnesses: list[EventRecord] = []  # inserted since fame was last run
        self.pruned_below = 0  # rounds below this one were dropped from memory
        self.votes_cleared_upto = 0
        self.fame_decisions = 0  # witnesses decided by the current `fame.decide_fame` call
        self._pcache: dict[int, _PeerColumns] = {}
        self._pcols_by_set: dict[PeerSet, _PeerColumns] = {}
        for member in peers.all_members():
            self._add_column(member)

    # -- creators and peer sets ---------------------------------------------------------------

    def _add_column(self, member: bytes) -> None:
        if member in self._col_of:
            return
        self._col_of[member] = len(self._creators)
        self._creators.append(member)
        self.anc.chains.append({})
        self.top_index.append(-1)
        for info in self.rounds.values():
            info.wvecs.append({})
            info.pwvecs.append({})
        self._pcache.clear()  # `every_column` depends on the columns
        self._pcols_by_set.clear()
        for rec in self.anc.events.values():  # rare: a member joined; keep coordinates uniform
            rec.la.append(-1)

    def set_peer_set(self, effective_round: int, peers: PeerSet) -> None:
        """Register a peer set effective from `effective_round` (membership changes, tests)."""
        self.peers.set_from(effective_round, peers)
        self._pcache.clear()
        self._pcols_by_set.clear()
        for member in peers.members:
            self._add_column(member)

    def peer_info(self, rnd: int) -> tuple[PeerSet, list[int], int]:
        """P(rnd), the columns of its members and its supermajority."""
        pc = self._peer_columns(rnd)
        return pc.peers, pc.cols, pc.supermajority

    def supermajority_at(self, rnd: int) -> int:
        """SM(|P(rnd)|)."""
        return (self._pcache.get(rnd) or self._peer_columns(rnd)).supermajority

    def _peer_columns(self, rnd: int) -> _PeerColumns:
        cached = self._pcache.get(rnd)
        if cached is None:
            ps = self.peers.at(rnd)
            cached = self._pcols_by_set.get(ps)
            if cached is None:  # built once per peer set: rounds only point at it
                cols = [self._col_of[m] for m in ps.members]
                sm, top = ps.supermajority, 1 << (FIELD - 1)
                cached = _PeerColumns(
                    ps, cols, sm, frozenset(cols), len(cols) == len(self._creators), len(cols) <= MAX_COUNTED_MEMBERS,
                    _fields(top - sm, len(cols)), _fields(top, len(cols)),
                )
                self._pcols_by_set[ps] = cached
            self._pcache[rnd] = cached
        return cached

    # -- insertion ----------------------------------------------------------------------------

    def _reject(self, event: Event, col: int | None) -> EventRejected:
        """The rejection of an event `insert` found invalid, with its reason (off the hot path)."""
        problem = event.size_problem()
        if problem is not None:
            return EventRejected(RejectReason.OVERSIZED, problem)
        if col is None:
            return EventRejected(RejectReason.UNKNOWN_CREATOR, event.creator.hex()[:16])
        events, index, chain = self.anc.events, event.index, self.anc.chains[col]
        if event.self_parent is None:
            if index != 0:
                return EventRejected(RejectReason.WRONG_INDEX, f"index {index} without a self-parent")
        else:
            sp = events.get(event.self_parent)
            if sp is None:
                if chain and index - 1 < min(chain):
                    return EventRejected(RejectReason.TOO_OLD, "self-parent was pruned")
                return EventRejected(RejectReason.UNKNOWN_PARENT, "self-parent " + event.self_parent.hex()[:16])
            if sp.col != col:
                return EventRejected(RejectReason.SELF_PARENT_BY_OTHER_CREATOR)
            if index != sp.index + 1:
                return EventRejected(RejectReason.WRONG_INDEX, f"index {index} after {sp.index}")
        if event.other_parent is not None:
            op = events.get(event.other_parent)
            if op is None:
                return EventRejected(RejectReason.UNKNOWN_PARENT, "other-parent " + event.other_parent.hex()[:16])
            if op.col == col:
                return EventRejected(RejectReason.OTHER_PARENT_BY_SAME_CREATOR)
        slot = chain.get(index)
        if slot is None:
            # Every index up to the top was inserted once; no slot means it was pruned, so this
            # would be an undetectable (and useless) late branch.
            return EventRejected(RejectReason.TOO_OLD, f"index {index} was pruned")
        self.fork_rejections[event.creator] = self.fork_rejections.get(event.creator, 0) + 1
        return EventRejected(RejectReason.FORK_LIMIT, f"branch {len(slot) + 1} at index {index}")

    def insert(self, event: Event) -> InsertResult:
        """Validate and insert one event; an already known event is returned as is.

        Validation is a chain of cheap tests that only say valid or not (this is the hot path);
        `_reject` words the reason of an invalid event."""
        event_hash = (event.__dict__.get("_hash") or event.hash) if self._plain_hash else self.hasher(event)
        anc = self.anc
        events = anc.events
        known = events.get(event_hash)
        if known is not None:
            return InsertResult(event_hash, known.round, known.witness, known.lamport, False)
        txs = event.transactions
        col = self._col_of.get(event.creator)
        if (
            col is None or len(txs) > MAX_TRANSACTIONS or (txs and sum(map(len, txs)) > MAX_PAYLOAD_BYTES)
            or len(event.internal_transactions) > MAX_INTERNAL_TRANSACTIONS
            or len(bsigs := event.block_signatures) > MAX_BLOCK_SIGNATURES
        ):
            raise self._reject(event, col)
        index = event.index
        parent = event.self_parent
        if parent is None:
            sp = None
            if index != 0:
                raise self._reject(event, col)
        else:
            sp = events.get(parent)
            if sp is None or sp.col != col or index != sp.index + 1:  # (so index >= 0 too)
                raise self._reject(event, col)
        parent = event.other_parent
        if parent is None:
            op = None
        else:
            op = events.get(parent)
            if op is None or op.col == col:
                raise self._reject(event, col)
        if index > self.top_index[col]:
            slot = None  # the common case: the creator's next index
        else:
            slot = anc.chains[col].get(index)
            if slot is None or len(slot) >= self.max_branches:
                raise self._reject(event, col)
        if self.verify_signatures and not event.verify_signature():
            raise EventRejected(RejectReason.BAD_SIGNATURE)
        # From here on nothing can fail: the graph changes only for a valid event.
        if sp is not None and op is not None:
            # Elementwise max.  A loop in this frame beats a comprehension (no frame of its own).
            la = sp.la.copy()
            for c, v in enumerate(op.la):
                if v > la[c]:
                    la[c] = v
            lamport = (sp.lamport if sp.lamport > op.lamport else op.lamport) + 1
        elif sp is not None:
            la = sp.la.copy()
            lamport = sp.lamport + 1
        elif op is not None:
            la = op.la.copy()
            lamport = op.lamport + 1
        else:
            la = [-1] * len(self._creators)
            lamport = 0
        la[col] = index
        rec = EventRecord(event, event_hash, col, index, self._seq, la, lamport)
        self._seq += 1
        if slot is not None:
            self.fork_evidence.append((slot[0].event, event))
            anc.forkers.add(col)
            anc.fork_indices.setdefault(col, set()).add(index)
        if anc.forkers:
            anc.compute_fork_view(rec, sp, op)
        # The round (`_place`, inlined for the common case: pr's round and peer set are reused).
        if sp is None or op is None or anc.forkers:
            rnd = self._place(rec, sp, op)
            info = self.rounds.get(rnd) or self._round_info(rnd)
            pc = self._pcache.get(rnd) or self._peer_columns(rnd)
        else:
            # pr: the parents' round; own/below: the parents' vectors for the witnesses of pr / pr - 1.
            rnd = sp.round
            if rnd > op.round:
                own, below = sp.wvec, sp.pwvec
                if op.round == rnd - 1:
                    below |= op.wvec
            elif op.round > rnd:
                rnd = op.round
                own, below = op.wvec, op.pwvec
                if sp.round == rnd - 1:
                    below |= sp.wvec
            else:
                own, below = sp.wvec | op.wvec, sp.pwvec | op.pwvec
            found = self.rounds.get(rnd)
            pc = self._pcache.get(rnd) or self._peer_columns(rnd)
            if found is None:  # (parents of a pruned round)
                info = self._round_info(rnd)
            elif pc.counted and own.bit_count() >= pc.supermajority:
                info = found
                if pc.every_column:  # `_strongly_seen`, inlined: the most frequent call
                    hits = (sum(map(dict.get, info.wvecs, la, _ZEROS)) + own + pc.threshold_add) & pc.top_bits
                else:
                    hits = self._strongly_seen(rec, rnd, own, info, None)
                if hits.bit_count() >= pc.supermajority:
                    # Fame asks the witnesses of rnd + 1 which witnesses of rnd they strongly see.
                    rec.strongly_seen_prev = _witnesses_in(info.witnesses, hits)
                    below, own = own, 0  # no parent is in round rnd + 1
                    rnd += 1
                    info = self.rounds.get(rnd) or self._round_info(rnd)
                    pc = self._pcache.get(rnd) or self._peer_columns(rnd)
            elif not pc.counted:
                rec.wvec, rec.pwvec = own, below
                rnd = self._place(rec, sp, op)
                own, below = rec.wvec, rec.pwvec
                info = self.rounds.get(rnd) or self._round_info(rnd)
                pc = self._pcache.get(rnd) or self._peer_columns(rnd)
            else:
                info = found
            rec.wvec, rec.pwvec = own, below
        rec.round = rnd
        witness = col in pc.colset and (sp is None or rnd > sp.round)
        if witness:
            rec.witness = True
            if rec.strongly_seen_prev is None and rnd > 0 and not anc.forkers:
                # Fame will ask which witnesses of rnd - 1 this witness strongly sees.
                prev = self.rounds.get(rnd - 1)
                ppc = self._pcache.get(rnd - 1) or self._peer_columns(rnd - 1)
                if prev is not None and ppc.every_column:  # `_strongly_seen`, inlined
                    total = sum(map(dict.get, prev.wvecs, la, _ZEROS)) + sum(map(dict.get, info.pwvecs, la, _ZEROS))
                    hits = (total + rec.pwvec + ppc.threshold_add) & ppc.top_bits
                    rec.strongly_seen_prev = _witnesses_in(prev.witnesses, hits)
                elif prev is not None and ppc.counted:
                    hits = self._strongly_seen(rec, rnd - 1, rec.pwvec, prev, info)
                    rec.strongly_seen_prev = _witnesses_in(prev.witnesses, hits)
            rec.wvec |= 1 << (FIELD * len(info.witnesses))
            info.witnesses.append(rec)
            if info.decided:
                rec.famous = False  # a late witness of a decided round is never famous
            self.pending_witnesses.append(rec)
        info.events.append(rec)
        info.wvecs[col][index] = rec.wvec
        info.pwvecs[col][index] = rec.pwvec
        anc.events[event_hash] = rec
        if slot is None:
            anc.chains[col][index] = [rec]
            self.top_index[col] = index
        else:
            slot.append(rec)
        group = self.undetermined_by_round.get(rnd)
        if group is None:
            self.undetermined_by_round[rnd] = [rec]
        else:
            group.append(rec)
        if bsigs:
            for sig in bsigs:
                self.signatures.add(sig)
        return _new_tuple(InsertResult, (event_hash, rnd, witness, lamport, slot is not None))

    def insert_batch(self, events: Iterable[Event]) -> BatchResult:
        """Insert events in order (gossip); a rejected event does not stop the batch."""
        inserted: list[bytes] = []
        rejected: list[tuple[Event, EventRejected]] = []
        duplicates = 0
        for event in events:
            before = len(self.anc.events)
            try:
                result = self.insert(event)
            except EventRejected as exc:
                rejected.append((event, exc))
                continue
            if len(self.anc.events) == before:
                duplicates += 1
            else:
                inserted.append(result.hash)
        return BatchResult(tuple(inserted), duplicates, tuple(rejected))

    def _round_info(self, rnd: int) -> RoundInfo:
        info = self.rounds.get(rnd)
        if info is None:
            info = self.rounds[rnd] = RoundInfo(rnd, len(self._creators))
            if rnd > self.last_round:
                self.last_round = rnd
        return info

    def _place(self, rec: EventRecord, sp: EventRecord | None, op: EventRecord | None) -> int:
        """rec's round; also sets its witness vectors as inherited from its parents."""
        # pr: the parents' round; own/below: the parents' vectors for the witnesses of pr / pr - 1.
        if sp is None:
            if op is None:
                return 0
            pr, own, below = op.round, op.wvec, op.pwvec
        elif op is None or sp.round > op.round:
            pr, own, below = sp.round, sp.wvec, sp.pwvec
            if op is not None and op.round == pr - 1:
                below |= op.wvec
        elif op.round > sp.round:
            pr, own, below = op.round, op.wvec, op.pwvec
            if sp.round == pr - 1:
                below |= sp.wvec
        else:
            pr, own, below = sp.round, sp.wvec | op.wvec, sp.pwvec | op.pwvec
        rec.wvec, rec.pwvec = own, below
        info = self.rounds.get(pr)
        if info is None:
            return pr
        pc = self._pcache.get(pr) or self._peer_columns(pr)
        sm = pc.supermajority
        witnesses = info.witnesses
        if self.anc.forkers or not pc.counted:
            if len(self.anc.strongly_seen(rec, witnesses, pc.cols, sm)) < sm:
                return pr
        else:
            if own.bit_count() < sm:
                return pr  # x cannot strongly see a witness it does not descend from
            hits = self._strongly_seen(rec, pr, own, info, None)
            if hits.bit_count() < sm:
                return pr
            # Fame asks the witnesses of pr + 1 which witnesses of pr they strongly see: keep it.
            rec.strongly_seen_prev = _witnesses_in(witnesses, hits)
        rec.wvec, rec.pwvec = 0, own  # no parent is in round pr + 1
        return pr + 1

    def _strongly_seen(
        self, x: EventRecord, q: int, own: int, info: RoundInfo, after: RoundInfo | None
    ) -> int:
        """Without forks: the witnesses of round q that x strongly sees (the top bit of their
        field), for x of round q or q + 1 not yet inserted; `own` is x's own vector for round q,
        `info` round q and `after` round q + 1 (None: x's ancestors are all of round <= q).

        x strongly sees w when, for SM members c of P(q), x's newest ancestor by c has w as
        ancestor: has w's field set in its `wvec` (if in round q) or `pwvec` (if in round q + 1)."""
        pc = self._pcache.get(q) or self._peer_columns(q)
        la = x.la
        # x's newest ancestor by c is la[c]; absent from a round's table: it is of another round.
        if pc.every_column:
            total = sum(map(dict.get, info.wvecs, la, _ZEROS))
            if after is not None:
                total += sum(map(dict.get, after.pwvecs, la, _ZEROS))
        else:
            cols = pc.cols
            keys = [la[c] for c in cols]
            total = sum(map(dict.get, [info.wvecs[c] for c in cols], keys, _ZEROS))
            if after is not None:
                total += sum(map(dict.get, [after.pwvecs[c] for c in cols], keys, _ZEROS))
        if x.col in pc.colset:
            total += own  # x's own column: x itself
        return (total + pc.threshold_add) & pc.top_bits

    # -- consensus ----------------------------------------------------------------------------

    def run_consensus(self) -> list[OrderedRound]:
        """Decide fame, rounds received and order; return the rounds processed by this call."""
        if self.pending_witnesses and fame.decide_fame(self):
            order.decide_round_received(self)
        if self.next_to_process >= self.first_undecided:
            # The common case: nothing new to process (every round below `first_undecided` is
            # decided, and a decided round at it would have moved it on).
            return []
        done = order.process_rounds(self)
        if done and self.keep_rounds is not None:
            cutoff = self.next_to_process - 1 - self.keep_rounds
            if cutoff >= self.pruned_below + PRUNE_EVERY_ROUNDS:  # in batches: each pass scans rounds
                prune(self, cutoff)
        return done

    # -- accessors ----------------------------------------------------------------------------

    @property
    def undetermined(self) -> dict[bytes, EventRecord]:
        """Events not received yet, by hash, in insertion order (built when asked)."""
        recs = [r for group in self.undetermined_by_round.values() for r in group]
        recs.sort(key=_seq_of)
        return {r.hash: r for r in recs}

    def record(self, event_hash: bytes) -> EventRecord:
        rec = self.anc.events.get(event_hash)
        if rec is None:
            raise ConsensusUsageError(f"unknown event {event_hash.hex()[:16]}")
        return rec

    def has(self, event_hash: bytes) -> bool:
        return event_hash in self.anc.events

    def event(self, event_hash: bytes) -> Event:
        return self.record(event_hash).event

    def round_of(self, event_hash: bytes) -> int:
        return self.record(event_hash).round

    def is_witness(self, event_hash: bytes) -> bool:
        return self.record(event_hash).witness

    def fame(self, event_hash: bytes) -> bool | None:
        return self.record(event_hash).famous

    def lamport(self, event_hash: bytes) -> int:
        return self.record(event_hash).lamport

    def round_received(self, event_hash: bytes) -> int | None:
        return self.record(event_hash).round_received

    def consensus_order(self) -> list[bytes]:
        """Hashes of the ordered events still in memory, oldest first."""
        return [h for rnd in sorted(self.ordered_rounds) for h in self.ordered_rounds[rnd]]

    def witnesses(self, rnd: int) -> list[bytes]:
        info = self.rounds.get(rnd)
        return [w.hash for w in info.witnesses] if info else []

    def round_decided(self, rnd: int) -> bool:
        info = self.rounds.get(rnd)
        return info is not None and info.decided

    def pending_rounds(self) -> list[tuple[int, bool]]:
        """Rounds not processed yet, with whether each is decided."""
        return [(r, self.round_decided(r)) for r in range(self.next_to_process, self.last_round + 1)]

    def forkers(self) -> list[bytes]:
        return [self._creators[c] for c in sorted(self.anc.forkers)]

    def ancestor(self, x: bytes, y: bytes) -> bool:
        return self.anc.ancestor(self.record(x), self.record(y))

    def self_ancestor(self, x: bytes, y: bytes) -> bool:
        xr, yr = self.record(x), self.record(y)
        return xr.creator == yr.creator and self.anc.ancestor(xr, yr)

    def see(self, x: bytes, y: bytes) -> bool:
        return self.anc.see(self.record(x), self.record(y))

    def strongly_see(self, x: bytes, y: bytes, rnd: int | None = None) -> bool:
        """Strongly see with P(rnd); by default P(round(y))."""
        yr = self.record(y)
        _, cols, sm = self.peer_info(yr.round if rnd is None else rnd)
        return self.anc.strongly_see(self.record(x), yr, cols, sm)

    def last_ancestors(self, event_hash: bytes) -> dict[bytes, int]:
        rec = self.record(event_hash)
        return {self._creators[c]: i for c, i in enumerate(rec.la) if i >= 0}

    def first_descendants(self, event_hash: bytes) -> dict[bytes, int]:
        rec = self.record(event_hash)
        return {self._creators[c]: i for c, i in enumerate(self.anc.first_descendants(rec)) if i != NO_DESCENDANT}

    def event_count(self) -> int:
        return len(self.anc.events)

    # -- gossip helpers -----------------------------------------------------------------------

    def known(self) -> dict[bytes, int]:
        """Creator -> highest index known (creators with no event are left out)."""
        return {self._creators[c]: top for c, top in enumerate(self.top_index) if top >= 0}

    def last_event_of(self, creator: bytes) -> Event | None:
        col = self._col_of.get(creator)
        if col is None or self.top_index[col] < 0:
            return None
        return self.anc.chains[col][self.top_index[col]][-1].event

    def create_event(
        self,
        key: PrivateKey,
        *,
        other_parent: bytes | None,
        timestamp: int,
        transactions: tuple[bytes, ...] = (),
        internal_transactions: tuple[InternalTransaction, ...] = (),
        block_signatures: tuple[BlockSignature, ...] = (),
    ) -> Event:
        """Sign our next event on top of our last one (not inserted: call `insert`)."""
        last = self.last_event_of(key.public)
        return Event.create(
            key,
            index=0 if last is None else last.index + 1,
            self_parent=None if last is None else self.hasher(last),
            other_parent=other_parent,
            timestamp=timestamp,
            transactions=transactions,
            internal_transactions=internal_transactions,
            block_signatures=block_signatures,
        )

    def behind_memory(self, known: dict[bytes, int]) -> bool:
        """Whether a peer with `known` lacks events this graph already pruned from memory (it
        then needs them from storage, or a catch-up from a block)."""
        for col, chain in enumerate(self.anc.chains):
            have, top = known.get(self._creators[col], -1), self.top_index[col]
            if top - have > len(chain):
                return True
        return False

    def events_since(self, known: dict[bytes, int], limit: int = 1000) -> list[Event]:
        """Events a peer with `known` lacks, in insertion (topological) order, at most `limit`."""
        missing: list[EventRecord] = []
        for col, chain in enumerate(self.anc.chains):
            have, top = known.get(self._creators[col], -1), self.top_index[col]
            if top - have > len(chain):  # the peer is behind what we still hold: scan what we hold
                for index, slot in chain.items():
                    if index > have:
                        missing.extend(slot)
                continue
            for index in range(have + 1, top + 1):
                missing.extend(chain.get(index, ()))
        missing.sort(key=lambda r: r.seq)
        return [r.event for r in missing[:limit]]

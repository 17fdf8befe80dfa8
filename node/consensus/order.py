"""Round received, consensus order and blocks.

`round_received(x)` is the first round i > round(x) such that every round from round(x)+1 to i is
decided, x is an ancestor of every unique famous witness of i, and there are at least SM(|P(i)|)
of those.  Decided rounds are processed strictly in order; inside a round events are sorted by
`(lamport, hash XOR whitening)` where the whitening is the XOR of the unique famous witnesses'
hashes, so no creator can grind its position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.consensus.blocks import Block, ElectionSeed, OrderedRound, median_timestamp
from node.consensus.election import election_seed
from node.consensus.event import PeerChange
from node.consensus.peers import MEMBERSHIP_DELAY_ROUNDS
from node.consensus.records import EventRecord

if TYPE_CHECKING:
    from node.consensus.hashgraph import Hashgraph


def decide_round_received(graph: Hashgraph) -> None:
    rounds = graph.rounds
    groups = graph.undetermined_by_round
    for event_round in sorted(groups):
        after = rounds.get(event_round + 1)
        if after is None or not after.decided:
            continue  # no event of this round can be received before round + 1 is decided
        group = groups[event_round]
        if graph.anc.forkers:
            rest = [rec for rec in group if not _receive(graph, rec)]
        else:
            rest = _receive_all(graph, event_round, group)
        if rest:
            groups[event_round] = rest
        else:
            del groups[event_round]


def _receive_all(graph: Hashgraph, event_round: int, pending: list[EventRecord]) -> list[EventRecord]:
    """Without forks: receive what can be of `pending` (events of `event_round`), decided round by
    decided round; x is an ancestor of every famous witness of i iff min_la[x.col] >= x.index.
    Returns the events still not received."""
    rnd = event_round + 1
    rounds = graph.rounds
    while pending:
        info = rounds.get(rnd)
        if info is None or not info.decided:
            break
        if len(info.famous_unique) >= graph.supermajority_at(rnd):
            min_la = info.min_la
            width = len(min_la)  # a column added after round rnd was decided holds no ancestor
            here: list[EventRecord] = []
            rest: list[EventRecord] = []
            for rec in pending:
                if rec.rr_next <= rnd and rec.col < width and min_la[rec.col] >= rec.index:
                    here.append(rec)
                    rec.round_received = rnd
                else:
                    rest.append(rec)
            if here:
                got = graph.received.get(rnd)
                if got is None:
                    graph.received[rnd] = here
                else:
                    got.extend(here)
                pending = rest
        rnd += 1
    for rec in pending:
        if rec.rr_next < rnd:
            rec.rr_next = rnd  # rounds below were decided without receiving rec: never test them again
    return pending


def _receive(graph: Hashgraph, rec: EventRecord) -> bool:
    """Find rec's round received if it has one yet; True when found."""
    rnd = rec.rr_next if rec.rr_next > rec.round else rec.round + 1
    found = False
    while True:
        info = graph.rounds.get(rnd)
        if info is None or not info.decided:
            break
        witnesses = info.famous_unique
        if len(witnesses) >= graph.supermajority_at(rnd):
            found = all(graph.anc.ancestor(w, rec) for w in witnesses)
        if found:
            rec.round_received = rnd
            graph.received.setdefault(rnd, []).append(rec)
            break
        rnd += 1
    rec.rr_next = rnd  # rounds below were decided without receiving rec: never test them again
    return found


def _apply_membership(graph: Hashgraph, block: Block) -> None:
    """Committed PEER_ADD/PEER_REMOVE change the peer set from round R + 6 on."""
    effective = block.round_received + MEMBERSHIP_DELAY_ROUNDS
    peers = graph.peers.at(effective)
    for itx in block.internal_transactions:
        peers = peers.with_added(itx.peer) if itx.kind is PeerChange.PEER_ADD else peers.with_removed(itx.peer)
    if len(peers) > 0:
        graph.set_peer_set(effective, peers)


def _process(graph: Hashgraph, rnd: int) -> OrderedRound:
    info = graph.rounds[rnd]
    received = graph.received.pop(rnd, [])
    whitening = info.whitening
    # Sort (lamport, whitened hash, record) triples: no key function call per event.  The
    # whitened hashes are distinct, so records themselves are never compared.
    keyed = [(r.lamport, int.from_bytes(r.hash, "big") ^ whitening, r) for r in received]
    keyed.sort()
    received = [k[2] for k in keyed]
    events = [r.event for r in received]
    transactions = [t for e in events for t in e.transactions]
    internal = [t for e in events for t in e.internal_transactions]
    block = None
    election = None
    interval = graph.election_interval
    if interval is not None and rnd % interval == 0:  # (`election.election_due`)
        # An election round always makes a block, empty if need be, so no election is skipped
        # and every node finds each election in the same block.
        election = ElectionSeed(
            rnd, election_seed(rnd, [w.hash for w in info.famous_unique]), graph.peer_info(rnd)[0].members
        )
    if transactions or internal or election is not None:
        block = Block(
            graph.next_block_index, rnd, median_timestamp([w.event.timestamp for w in info.famous_unique]),
            tuple(transactions), tuple(internal), graph.peer_info(rnd)[0].hash, b"", election,
        )
        graph.next_block_index += 1
        if internal:
            _apply_membership(graph, block)
    hashes = tuple([r.hash for r in received])
    graph.ordered_rounds[rnd] = hashes
    return OrderedRound(rnd, hashes, tuple(events), block)


def process_rounds(graph: Hashgraph) -> list[OrderedRound]:
    """Process decided rounds in order, stopping at the first undecided one."""
    done: list[OrderedRound] = []
    rounds = graph.rounds
    while True:
        info = rounds.get(graph.next_to_process)
        if info is None or not info.decided:
            return done
        done.append(_process(graph, graph.next_to_process))
        graph.next_to_process += 1


def received_in(graph: Hashgraph, rnd: int) -> list[EventRecord]:
    """Events whose round received is `rnd` and that are not processed yet."""
    return list(graph.received.get(rnd, []))

"""Round received, consensus order and blocks.

`round_received(x)` is the first round i > round(x) such that every round from round(x)+1 to i is
decided, x is an ancestor of every unique famous witness of i, and there are at least SM(|P(i)|)
of those.  Decided rounds are processed strictly in order; inside a round events are sorted by
`(lamport, hash XOR whitening)` where the whitening is the XOR of the unique famous witnesses'
hashes, so no creator can grind its position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from node.consensus.blocks import Block, OrderedRound, median_timestamp
from node.consensus.event import InternalTransaction, PeerChange
from node.consensus.peers import MEMBERSHIP_DELAY_ROUNDS
from node.consensus.records import EventRecord

if TYPE_CHECKING:
    from node.consensus.hashgraph import Hashgraph


def decide_round_received(graph: Hashgraph) -> None:
    ancestor = graph.anc.ancestor
    rounds = graph.rounds
    for event_round in sorted(graph.undetermined_by_round):
        after = rounds.get(event_round + 1)
        if after is None or not after.decided:
            continue  # no event of this round can be received before round + 1 is decided
        group = graph.undetermined_by_round[event_round]
        for rec in list(group.values()):
            if _receive(graph, rec, ancestor):
                del group[rec.hash]
        if not group:
            del graph.undetermined_by_round[event_round]


def _receive(graph: Hashgraph, rec: EventRecord, ancestor: Callable[[EventRecord, EventRecord], bool]) -> bool:
    """Find rec's round received if it has one yet; True when found."""
    rnd = rec.rr_next if rec.rr_next > rec.round else rec.round + 1
    found = False
    while True:
        info = graph.rounds.get(rnd)
        if info is None or not info.decided:
            break
        witnesses = info.famous_unique
        if len(witnesses) < graph.peer_info(rnd)[2]:
            found = False
        elif not graph.anc.forkers:
            # A column added after this round was decided holds no ancestor of its witnesses.
            found = rec.col < len(info.min_la) and info.min_la[rec.col] >= rec.index
        else:
            found = all(ancestor(w, rec) for w in witnesses)
        if found:
            rec.round_received = rnd
            graph.received.setdefault(rnd, []).append(rec)
            del graph.undetermined[rec.hash]
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
    received.sort(key=lambda r: (r.lamport, int.from_bytes(r.hash, "big") ^ whitening))
    transactions: list[bytes] = []
    internal: list[InternalTransaction] = []
    for rec in received:
        transactions.extend(rec.event.transactions)
        internal.extend(rec.event.internal_transactions)
    block = None
    if transactions or internal:
        block = Block(
            index=graph.next_block_index,
            round_received=rnd,
            timestamp=median_timestamp([w.event.timestamp for w in info.famous_unique]),
            transactions=tuple(transactions),
            internal_transactions=tuple(internal),
            peers_hash=graph.peer_info(rnd)[0].hash,
        )
        graph.next_block_index += 1
        if internal:
            _apply_membership(graph, block)
    hashes = tuple(r.hash for r in received)
    graph.ordered_rounds[rnd] = hashes
    return OrderedRound(rnd, hashes, tuple(r.event for r in received), block)


def process_rounds(graph: Hashgraph) -> list[OrderedRound]:
    """Process decided rounds in order, stopping at the first undecided one."""
    done: list[OrderedRound] = []
    while graph.round_decided(graph.next_to_process):
        done.append(_process(graph, graph.next_to_process))
        graph.next_to_process += 1
    return done


def received_in(graph: Hashgraph, rnd: int) -> list[EventRecord]:
    """Events whose round received is `rnd` and that are not processed yet."""
    return list(graph.received.get(rnd, []))

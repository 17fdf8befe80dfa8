"""Insertion: typed rejections leave the graph unchanged; wire format; forks; gossip helpers."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from node import codec
from node.consensus.errors import EventDecodeError, EventRejected, RejectReason
from node.consensus.event import (
    MAX_PAYLOAD_BYTES,
    MAX_TRANSACTIONS,
    BlockSignature,
    Event,
    InternalTransaction,
    PeerChange,
)
from node.consensus.gossipgen import random_gossip
from node.consensus.hashgraph import Hashgraph
from node.consensus.peers import PeerSchedule, PeerSet
from node.crypto import PrivateKey

KEYS = [PrivateKey.from_seed(b"member-%d" % i) for i in range(4)]
OUTSIDER = PrivateKey.from_seed(b"outsider")


def new_graph(**kwargs: Any) -> Hashgraph:
    return Hashgraph(PeerSchedule(PeerSet.of(k.public for k in KEYS)), **kwargs)


def snapshot(g: Hashgraph) -> Any:
    """Everything an insertion could touch."""
    recs = sorted(g.anc.events.values(), key=lambda r: r.seq)
    return (
        [
            (r.hash, list(r.la), list(g.anc.first_descendants(r)), r.round, r.witness, r.lamport, r.forks_seen)
            for r in recs
        ],
        g.known(), g.last_round, {r: g.witnesses(r) for r in g.rounds}, g.forkers(), len(g.fork_evidence),
        list(g.undetermined), {c: {i: [r.hash for r in s] for i, s in ch.items()} for c, ch in enumerate(g.anc.chains)},
    )


def genesis(g: Hashgraph) -> list[Event]:
    events = [Event.create(k, index=0, self_parent=None, other_parent=None, timestamp=i) for i, k in enumerate(KEYS)]
    for e in events:
        g.insert(e)
    return events


def child(key: PrivateKey, parent: Event | None, other: Event | None, **kw: Any) -> Event:
    return Event.create(
        key,
        index=kw.pop("index", 0 if parent is None else parent.index + 1),
        self_parent=kw.pop("self_parent", None if parent is None else parent.hash),
        other_parent=kw.pop("other_parent", None if other is None else other.hash),
        timestamp=kw.pop("timestamp", 100),
        **kw,
    )


def assert_rejected(g: Hashgraph, event: Event, reason: RejectReason) -> None:
    before = snapshot(g)
    with pytest.raises(EventRejected) as info:
        g.insert(event)
    assert info.value.reason is reason, info.value
    assert snapshot(g) == before


def test_wire_round_trip_and_signature() -> None:
    e = child(
        KEYS[0], None, None, transactions=(b"a", b""),
        internal_transactions=(InternalTransaction(PeerChange.PEER_ADD, b"k" * 32, b"s"),),
        block_signatures=(BlockSignature(KEYS[0].public, 3, b"x" * 64),),
    )
    back = Event.from_wire(e.to_wire())
    assert back == e and back.hash == e.hash and back.signature == e.signature
    assert back.verify_signature()
    assert not dataclasses.replace(e, timestamp=101).verify_signature()


@pytest.mark.parametrize(
    "data",
    [
        b"", b"\xc1", b"\x92\x01", codec.pack([1, 2]), codec.pack([[1] * 8, b"s" * 64]),
        codec.pack([[b"c" * 32, -1, None, None, 0, [], [], []], b"s" * 64]),
        codec.pack([[b"c" * 32, 0, b"short", None, 0, [], [], []], b"s" * 64]),
        codec.pack([[b"c" * 32, 0, None, None, 0, ["str"], [], []], b"s" * 64]),
        codec.pack([[b"c" * 32, 0, None, None, 0, [], [[9, b"p", b""]], []], b"s" * 64]),
        codec.pack([[b"c" * 32, 0, None, None, 0, [], [], [[b"v", -2, b""]]], b"s" * 64]),
        codec.pack([[b"c" * 32, 0, None, None, 0, [], [], []], b"short-signature"]),
    ],
)
def test_malformed_bytes_are_typed_errors(data: bytes) -> None:
    with pytest.raises(EventDecodeError) as info:
        Event.from_wire(data)
    assert info.value.reason is RejectReason.MALFORMED


def test_oversized_wire_and_insert() -> None:
    big = child(KEYS[0], None, None, transactions=(b"x" * (MAX_PAYLOAD_BYTES + 1),))
    with pytest.raises(EventDecodeError) as info:
        Event.from_wire(big.to_wire())
    assert info.value.reason is RejectReason.OVERSIZED
    many = child(KEYS[0], None, None, transactions=(b"",) * (MAX_TRANSACTIONS + 1))
    with pytest.raises(EventDecodeError):
        Event.from_wire(many.to_wire())
    g = new_graph()
    genesis(g)
    assert_rejected(g, big, RejectReason.OVERSIZED)
    assert_rejected(g, many, RejectReason.OVERSIZED)


def test_bad_inputs_leave_the_graph_unchanged() -> None:
    g = new_graph()
    e0, e1, e2, _ = genesis(g)
    good = child(KEYS[0], e0, e1)
    forged = dataclasses.replace(good, signature=bytes(64))
    assert_rejected(g, forged, RejectReason.BAD_SIGNATURE)
    assert_rejected(g, child(OUTSIDER, None, e1), RejectReason.UNKNOWN_CREATOR)
    assert_rejected(g, child(KEYS[0], e0, None, other_parent=b"\x07" * 32), RejectReason.UNKNOWN_PARENT)
    assert_rejected(g, child(KEYS[0], None, None, index=1, self_parent=b"\x07" * 32), RejectReason.UNKNOWN_PARENT)
    assert_rejected(g, child(KEYS[0], e0, e1, index=2), RejectReason.WRONG_INDEX)
    assert_rejected(g, child(KEYS[0], None, e1, index=1), RejectReason.WRONG_INDEX)
    assert_rejected(g, child(KEYS[0], e0, e1, index=0), RejectReason.WRONG_INDEX)
    assert_rejected(g, child(KEYS[0], e1, e2), RejectReason.SELF_PARENT_BY_OTHER_CREATOR)
    g.insert(good)
    assert_rejected(g, child(KEYS[0], good, e0), RejectReason.OTHER_PARENT_BY_SAME_CREATOR)
    # A known event is idempotent, not an error.
    before = snapshot(g)
    assert g.insert(good).hash == good.hash
    assert snapshot(g) == before


def test_fork_both_branches_kept_third_rejected() -> None:
    g = new_graph(max_branches=2)
    e0, e1, e2, e3 = genesis(g)
    a = child(KEYS[0], e0, e1, timestamp=1)
    b = child(KEYS[0], e0, e2, timestamp=2)
    g.insert(a)
    assert g.forkers() == []
    assert g.insert(b).fork
    assert g.forkers() == [KEYS[0].public]
    assert g.fork_evidence == [(a, b)]
    assert_rejected(g, child(KEYS[0], e0, e3, timestamp=3), RejectReason.FORK_LIMIT)
    assert g.fork_rejections[KEYS[0].public] == 1
    # An event that has both branches among its ancestors sees neither, but has both as ancestors.
    x = child(KEYS[1], e1, a)
    g.insert(x)
    y = child(KEYS[1], x, b)
    g.insert(y)
    assert g.see(x.hash, a.hash) and g.ancestor(y.hash, a.hash) and g.ancestor(y.hash, b.hash)
    assert not g.see(y.hash, a.hash) and not g.see(y.hash, b.hash) and not g.see(y.hash, e0.hash)
    assert g.see(y.hash, e2.hash)
    # Branch-aware ancestry: x descends from a only.
    assert g.ancestor(x.hash, a.hash) and not g.ancestor(x.hash, b.hash)


def test_gossip_helpers_let_a_peer_catch_up_in_batches() -> None:
    rng = random.Random(7)
    members = [k.public for k in KEYS]
    keys = {k.public: k for k in KEYS}
    source = new_graph()
    for e in random_gossip(members, 300, rng, keys=keys):
        source.insert(e)
    source.run_consensus()
    mirror = new_graph()
    rounds = 0
    while mirror.known() != source.known():
        batch = source.events_since(mirror.known(), limit=37)
        assert batch and len(batch) <= 37
        result = mirror.insert_batch(batch)
        assert not result.rejected and len(result.inserted) == len(batch)
        mirror.run_consensus()
        rounds += 1
    assert rounds >= 300 // 37
    assert mirror.consensus_order() == source.consensus_order() and source.consensus_order()
    assert mirror.last_event_of(members[0]) == source.last_event_of(members[0])
    assert source.events_since(source.known()) == []


def test_batch_continues_after_a_rejection() -> None:
    g = new_graph()
    e0, e1, *_ = genesis(g)
    good = child(KEYS[0], e0, e1)
    bad = dataclasses.replace(child(KEYS[1], e1, e0), signature=bytes(64))
    result = g.insert_batch([bad, good, good])
    assert result.inserted == (good.hash,) and result.duplicates == 1
    assert [exc.reason for _, exc in result.rejected] == [RejectReason.BAD_SIGNATURE]


def test_create_event_builds_on_our_last_event() -> None:
    g = new_graph()
    e0, e1, *_ = genesis(g)
    mine = g.create_event(KEYS[0], other_parent=e1.hash, timestamp=50, transactions=(b"t",))
    assert (mine.index, mine.self_parent, mine.other_parent) == (1, e0.hash, e1.hash)
    assert mine.verify_signature()
    g.insert(mine)
    assert g.last_event_of(KEYS[0].public) == mine and g.known()[KEYS[0].public] == 1
    first = new_graph().create_event(KEYS[2], other_parent=None, timestamp=0)
    assert first.index == 0 and first.self_parent is None


def test_more_branches_when_configured() -> None:
    g = new_graph(max_branches=4)
    e0, e1, e2, e3 = genesis(g)
    branches = [child(KEYS[0], e0, other, timestamp=t) for t, other in enumerate((e1, e2, e3, None))]
    for b in branches:
        g.insert(b)
    assert len(g.fork_evidence) == 3 and g.forkers() == [KEYS[0].public]
    assert_rejected(g, child(KEYS[0], e0, e1, timestamp=99), RejectReason.FORK_LIMIT)
    # Honest events built on any branch are accepted and see the forker's fork once both meet.
    x = child(KEYS[1], e1, branches[2])
    g.insert(x)
    y = child(KEYS[1], x, branches[3])
    g.insert(y)
    assert g.see(x.hash, branches[2].hash) and not g.see(y.hash, branches[2].hash)

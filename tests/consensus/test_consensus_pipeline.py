"""The consensus pipeline on random graphs: order independence, forks, pruning, membership, blocks."""

from __future__ import annotations

import random

import pytest

from node.consensus.blocks import Block, median_timestamp
from node.consensus.errors import EventRejected, RejectReason
from node.consensus.event import Event, InternalTransaction, PeerChange
from node.consensus.fame import coin
from node.consensus.gossipgen import random_gossip
from node.consensus.hashgraph import Hashgraph
from node.consensus.peers import PeerSchedule, PeerSet, supermajority, trust_count
from node.crypto import PrivateKey

MEMBERS = [bytes([i + 1]) * 32 for i in range(4)]


def new_graph(members: list[bytes] = MEMBERS, **kw: object) -> Hashgraph:
    return Hashgraph(PeerSchedule(PeerSet.of(members)), verify_signatures=False, **kw)  # type: ignore[arg-type]


def shuffled_topologically(events: list[Event], rng: random.Random) -> list[Event]:
    """A random insertion order in which parents still come first."""
    pending = list(events)
    have: set[bytes] = set()
    out: list[Event] = []
    while pending:
        ready = [e for e in pending[:40] if all(p is None or p in have for p in (e.self_parent, e.other_parent))]
        pick = ready[rng.randrange(len(ready))]
        pending.remove(pick)
        have.add(pick.hash)
        out.append(pick)
    return out


def run_all(g: Hashgraph, events: list[Event], every: int = 1) -> list[tuple[int, tuple[bytes, ...], Block | None]]:
    done = []
    for n, e in enumerate(events):
        g.insert(e)
        if n % every == 0:
            done.extend(g.run_consensus())
    done.extend(g.run_consensus())
    return [(d.round_received, d.event_hashes, d.block) for d in done]


def forking_gossip(count: int, rng: random.Random) -> list[Event]:
    """MEMBERS[0] forks now and then; others build on either branch."""
    heads: dict[bytes, list[Event]] = {m: [] for m in MEMBERS}
    out: list[Event] = []
    for step in range(count):
        creator = MEMBERS[step] if step < 4 else MEMBERS[rng.randrange(4)]
        others = [m for m in MEMBERS if m != creator and heads[m]]
        other = rng.choice(heads[rng.choice(others)]).hash if others and step >= 4 else None
        own = heads[creator]
        parent = rng.choice(own) if own else None
        event = Event(creator, 0 if parent is None else parent.index + 1, parent.hash if parent else None, other,
                      step, (b"t%d" % step,))
        branches = [event]
        if creator == MEMBERS[0] and parent is not None and rng.random() < 0.15:
            branches.append(Event(creator, event.index, event.self_parent, other, step, (b"fork%d" % step,)))
        for b in branches:
            out.append(b)
        heads[creator] = branches
    return out


def test_order_does_not_depend_on_insertion_order_or_call_frequency() -> None:
    rng = random.Random(3)
    events = list(random_gossip(MEMBERS, 600, rng))
    reference = run_all(new_graph(), events)
    assert len(reference) > 20 and any(block for _, _, block in reference)
    for seed in range(2):
        other = run_all(new_graph(), shuffled_topologically(events, random.Random(seed)), every=7)
        assert other == reference


def test_forker_is_detected_and_consensus_still_agrees() -> None:
    rng = random.Random(11)
    events = forking_gossip(700, rng)
    g = new_graph()
    reference = run_all(g, events)
    assert g.forkers() == [MEMBERS[0]] and len(g.fork_evidence) > 5
    assert sum(1 for r in g.anc.events.values() if r.forks_seen) > 100  # the fork is seen, not just stored
    ordered = [h for _, hashes, _ in reference for h in hashes]
    assert len(ordered) > 400 and len(set(ordered)) == len(ordered)
    # Events of the forker from before and after its forks are ordered too (ancestor rule, not see).
    assert sum(1 for h in ordered if g.event(h).creator == MEMBERS[0]) > 50
    other = run_all(new_graph(), shuffled_topologically(events, random.Random(5)), every=5)
    assert other == reference


def test_pruning_bounds_memory_and_keeps_the_same_order() -> None:
    events = list(random_gossip(MEMBERS, 4000, random.Random(21)))
    full = run_all(new_graph(), events, every=3)
    g = new_graph(keep_rounds=10)
    peak = 0
    pruned: list[tuple[int, tuple[bytes, ...], Block | None]] = []
    for n, e in enumerate(events):
        g.insert(e)
        if n % 3 == 0:
            pruned.extend((d.round_received, d.event_hashes, d.block) for d in g.run_consensus())
        peak = max(peak, g.event_count())
    pruned.extend((d.round_received, d.event_hashes, d.block) for d in g.run_consensus())
    assert pruned == full
    assert peak < 600, peak  # 4000 events inserted; about 13 rounds of ~12 events stay
    assert min(g.rounds) > 200
    # Gossip can still serve what it holds, and every creator's head survives pruning.
    assert len(g.events_since({}, limit=10**6)) == g.event_count()
    assert all(g.last_event_of(m) is not None for m in MEMBERS)
    assert g.known() == {m: max(e.index for e in events if e.creator == m) for m in MEMBERS}
    # A branch at a pruned index can no longer be checked: refused, and nothing changes.
    count = g.event_count()
    for late in (Event(MEMBERS[0], 0, None, None, 5, (b"late",)), Event(MEMBERS[0], 3, events[0].hash, None, 5)):
        with pytest.raises(EventRejected) as info:
            g.insert(late)
        assert info.value.reason is RejectReason.TOO_OLD
    assert g.event_count() == count


def test_membership_change_takes_effect_six_rounds_after_commit() -> None:
    newcomer = bytes([9]) * 32
    rng = random.Random(2)
    g = new_graph()
    events = list(random_gossip(MEMBERS, 40, rng))
    for e in events:
        g.insert(e)
    last = g.last_event_of(MEMBERS[1])
    assert last is not None
    add = Event(MEMBERS[1], last.index + 1, last.hash, None, 10**9,
                internal_transactions=(InternalTransaction(PeerChange.PEER_ADD, newcomer),))
    g.insert(add)
    committed: Block | None = None
    heads = {m: g.last_event_of(m) for m in MEMBERS}
    step = 0
    while committed is None and step < 2000:
        creator, peer = rng.sample(MEMBERS, 2)
        own, other = heads[creator], heads[peer]
        assert own is not None and other is not None
        e = Event(creator, own.index + 1, own.hash, other.hash, 10**9 + step)
        g.insert(e)
        heads[creator] = e
        for done in g.run_consensus():
            if done.block is not None and done.block.internal_transactions:
                committed = done.block
        step += 1
    assert committed is not None
    r = committed.round_received
    assert newcomer not in g.peers.at(r + 5) and newcomer in g.peers.at(r + 6)
    # The newcomer is a known creator now: its first event is accepted.
    assert g.insert(Event(newcomer, 0, None, heads[MEMBERS[0]].hash, 0)).round >= 0  # type: ignore[union-attr]


def test_block_signatures_anchor_and_proof() -> None:
    keys = [PrivateKey.from_seed(b"v%d" % i) for i in range(4)]
    peers = PeerSet.of(k.public for k in keys)
    g = Hashgraph(PeerSchedule(peers))
    block = Block(0, 1, 5, (b"tx",), (), peers.hash).with_state_hash(b"s" * 32)
    sigs = [block.sign(k) for k in keys]
    assert trust_count(4) == 2 and supermajority(4) == 3
    assert not g.signatures.add(sigs[0])  # block not registered yet: pending
    g.signatures.register_block(block, peers)
    assert len(g.signatures.signatures(0)) == 1
    g.signatures.add(sigs[1])
    assert not g.signatures.is_anchor(0)  # 2 is not more than TC(4) = 2
    forged = sigs[2].__class__(sigs[2].validator, 0, bytes(64))
    assert not g.signatures.add(forged)
    g.signatures.add(sigs[2])
    assert g.signatures.is_anchor(0) and g.signatures.is_proof(0)
    assert g.signatures.anchor_block() == block
    outsider = PrivateKey.from_seed(b"x")
    assert not g.signatures.add(block.sign(outsider))


def test_block_signatures_arrive_inside_events() -> None:
    key = PrivateKey.from_seed(b"solo")
    peers = PeerSet.of([key.public])
    g = Hashgraph(PeerSchedule(peers))
    block = Block(0, 1, 5, (b"tx",), (), peers.hash, b"s" * 32)
    g.signatures.register_block(block, peers)
    g.insert(Event.create(key, index=0, self_parent=None, other_parent=None, timestamp=1,
                          block_signatures=(block.sign(key),)))
    assert g.signatures.is_proof(0) and g.signatures.is_anchor(0)  # one signature > TC(1) = 0
    assert trust_count(1) == 0


def test_median_and_coin() -> None:
    assert median_timestamp([5, 1, 9]) == 5 and median_timestamp([1, 2, 3, 10]) == 2
    assert coin(bytes(16) + b"\x01" + bytes(15)) is True and coin(bytes(16) + b"\xfe" + bytes(15)) is False
    ones = sum(coin(random.Random(i).randbytes(32)) for i in range(2000))
    assert 850 < ones < 1150

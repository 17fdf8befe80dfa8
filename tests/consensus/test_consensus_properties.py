"""Properties of the order on random gossip graphs (hypothesis)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from node.consensus.errors import EventDecodeError
from node.consensus.event import Event
from node.consensus.gossipgen import random_gossip
from node.consensus.hashgraph import Hashgraph
from node.consensus.peers import PeerSchedule, PeerSet
from node.crypto import PrivateKey


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 6), count=st.integers(1, 400), seed=st.integers(0, 2**32), every=st.integers(1, 9))
def test_order_is_topological_and_blocks_are_consecutive(n: int, count: int, seed: int, every: int) -> None:
    members = [bytes([i + 1]) * 32 for i in range(n)]
    events = list(random_gossip(members, count, random.Random(seed)))
    g = Hashgraph(PeerSchedule(PeerSet.of(members)), verify_signatures=False)
    blocks = []
    for i, e in enumerate(events):
        g.insert(e)
        if i % every == 0:
            blocks.extend(d.block for d in g.run_consensus() if d.block is not None)
    blocks.extend(d.block for d in g.run_consensus() if d.block is not None)
    order = g.consensus_order()
    position = {h: i for i, h in enumerate(order)}
    assert len(position) == len(order)
    for h in order:
        e = g.event(h)
        for parent in (e.self_parent, e.other_parent):
            if parent is not None:
                assert parent in position and position[parent] < position[h]
    assert [b.index for b in blocks] == list(range(len(blocks)))
    assert [b.round_received for b in blocks] == sorted({b.round_received for b in blocks})
    received = [g.round_received(h) for h in order]
    assert received == sorted(received)
    # Every transaction in a block comes from an ordered event, in order.
    assert [t for b in blocks for t in b.transactions] == [t for h in order for t in g.event(h).transactions]
    if n == 1:
        assert len(order) == max(count - 3, 0)  # alone: received one round later, decided two after


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_event_decoder_never_crashes_on_garbage(data: bytes) -> None:
    try:
        event = Event.from_wire(data)
    except EventDecodeError:
        return
    assert Event.from_wire(event.to_wire()) == event


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(0, 200), flip=st.integers(0, 255))
def test_mutated_event_bytes_are_rejected_or_fail_signature(cut: int, flip: int) -> None:
    good = Event.create(PrivateKey.from_seed(b"fuzz"), index=0, self_parent=None, other_parent=None,
                        timestamp=7, transactions=(b"payload",))
    wire = bytearray(good.to_wire())
    pos = cut % len(wire)
    wire[pos] ^= flip or 1
    try:
        event = Event.from_wire(bytes(wire))
    except EventDecodeError:
        return
    # Either only the signature changed (same body) or the signature no longer verifies.
    assert event == good or not event.verify_signature()

"""The insertion fast path (witness vectors summed per field) agrees with the per-witness path."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.consensus import hashgraph
from node.consensus.gossipgen import random_gossip
from node.consensus.hashgraph import FIELD, MAX_COUNTED_MEMBERS, Hashgraph, _fields
from node.consensus.peers import PeerSchedule, PeerSet, supermajority

Outcome = tuple[list[tuple[bytes, int, bool, bool | None]], list[bytes], int]


def run(members: list[bytes], count: int, seed: int) -> Outcome:
    g = Hashgraph(PeerSchedule(PeerSet.of(members)), verify_signatures=False, keep_rounds=10)
    for i, e in enumerate(random_gossip(members, count, random.Random(seed))):
        g.insert(e)
        if i % 3 == 0:
            g.run_consensus()
    g.run_consensus()
    recs = sorted(g.anc.events.values(), key=lambda r: r.seq)
    return [(r.hash, r.round, r.witness, r.famous) for r in recs], g.consensus_order(), g.next_to_process


@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_vector_counting_matches_per_witness_strongly_see(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    members = [bytes([i + 1]) * 32 for i in range(n)]
    fast = run(members, 1500, n)
    monkeypatch.setattr(hashgraph, "MAX_COUNTED_MEMBERS", 0)  # every peer set takes the slow path
    slow = run(members, 1500, n)
    assert fast == slow
    assert fast[2] > 20  # rounds processed (and pruned) on the way


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, MAX_COUNTED_MEMBERS), data=st.data())
def test_field_threshold_equals_counting(n: int, data: st.DataObject) -> None:
    sm = supermajority(n)
    columns = data.draw(st.lists(st.integers(0, (1 << n) - 1), min_size=n, max_size=n))
    vectors = [sum(((bits >> i) & 1) << (FIELD * i) for i in range(n)) for bits in columns]
    top = 1 << (FIELD - 1)
    hits = (sum(vectors) + _fields(top - sm, n)) & _fields(top, n)
    for i in range(n):
        count = sum((bits >> i) & 1 for bits in columns)
        assert bool((hits >> (FIELD * i + FIELD - 1)) & 1) == (count >= sm)

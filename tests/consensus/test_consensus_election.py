"""Executor election: deterministic, weighted by reputation, of the configured size."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from node import codec
from node.consensus.election import (
    MAX_REPUTATION,
    ElectionDecodeError,
    ElectionRecord,
    Elector,
    Reputation,
    elect,
    election_due,
    election_seed,
    famous_witnesses,
)
from node.consensus.errors import ConsensusUsageError
from node.consensus.peers import supermajority

sys.path.insert(0, str(Path(__file__).parent))
from simnet import MS, SimNet  # noqa: E402

MEMBERS = [bytes([i + 1]) * 32 for i in range(10)]


def seed(i: int) -> bytes:
    return election_seed(i, [bytes([i % 256]) * 32, bytes([(i * 7) % 256]) * 32])


def test_same_inputs_give_the_same_committee_and_order_of_inputs_does_not_matter() -> None:
    hashes = [bytes([i]) * 32 for i in range(5)]
    assert election_seed(10, hashes) == election_seed(10, list(reversed(hashes)))
    assert election_seed(10, hashes) != election_seed(20, hashes)
    s = election_seed(10, hashes)
    first = elect(MEMBERS, s, Reputation())
    assert first == elect(list(reversed(MEMBERS)), s, Reputation())
    assert list(first) == sorted(first)
    assert len({elect(MEMBERS, seed(i), Reputation()) for i in range(20)}) > 5  # the seed matters


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10])
def test_default_size_is_a_supermajority(n: int) -> None:
    committee = elect(MEMBERS[:n], seed(n), Reputation())
    assert len(committee) == supermajority(n) and set(committee) <= set(MEMBERS[:n])


def test_explicit_size_is_capped_by_the_peer_set() -> None:
    assert len(elect(MEMBERS, seed(1), Reputation(), 3)) == 3
    assert len(elect(MEMBERS[:4], seed(1), Reputation(), 9)) == 4
    with pytest.raises(ConsensusUsageError):
        elect(MEMBERS, seed(1), Reputation(), 0)
    with pytest.raises(ConsensusUsageError):
        elect([], seed(1), Reputation())


def test_low_reputation_is_elected_less_often() -> None:
    rep = Reputation({MEMBERS[0]: 10, MEMBERS[1]: 50})
    counts: Counter[bytes] = Counter()
    for i in range(600):
        counts.update(elect(MEMBERS, seed(i), rep, 3))
    full = sum(counts[m] for m in MEMBERS[2:]) / 8
    assert counts[MEMBERS[0]] < counts[MEMBERS[1]] < full
    assert counts[MEMBERS[0]] < full / 3


def test_penalties_lower_reputation_and_equivocators_are_left_out() -> None:
    rep = Reputation()
    rep.penalise(MEMBERS[0], "silent")
    rep.penalise(MEMBERS[1], "disagreed")
    rep.penalise(MEMBERS[2], "equivocated")
    assert rep.weight(MEMBERS[0]) > rep.weight(MEMBERS[1]) > rep.weight(MEMBERS[2]) == 0
    assert rep.weight(MEMBERS[3]) == MAX_REPUTATION
    for i in range(200):
        assert MEMBERS[2] not in elect(MEMBERS, seed(i), rep)
    with pytest.raises(ConsensusUsageError):
        rep.penalise(MEMBERS[0], "rude")
    rep.recover()
    assert rep.weight(MEMBERS[2]) > 0 and rep.weight(MEMBERS[0]) < MAX_REPUTATION


def test_zero_reputation_still_fills_a_committee_when_nobody_else_is_left() -> None:
    rep = Reputation({m: 0 for m in MEMBERS[:4]})
    assert len(elect(MEMBERS[:4], seed(3), rep)) == supermajority(4)


def test_elector_runs_every_interval_and_records_round_trip() -> None:
    a, b = Elector(election_interval=5), Elector(election_interval=5)
    records = []
    for rnd in range(21):
        witnesses = [bytes([rnd, k]) * 16 for k in range(3)]
        ra, rb = a.on_round(rnd, witnesses, MEMBERS), b.on_round(rnd, list(reversed(witnesses)), MEMBERS)
        assert ra == rb
        if ra is not None:
            records.append(ra)
        if rnd == 7:
            a.penalise(MEMBERS[0], "equivocated")
            b.penalise(MEMBERS[0], "equivocated")
    assert [r.round_received for r in records] == [0, 5, 10, 15, 20]
    assert a.committee() == records[-1].committee
    assert MEMBERS[0] not in records[2].committee  # penalised just before round 10
    for record in records:
        assert ElectionRecord.from_obj(codec.unpack(codec.pack(record.to_obj()))) == record
    assert Reputation.from_obj(codec.unpack(codec.pack(a.reputation.to_obj()))) == a.reputation
    with pytest.raises(ElectionDecodeError):
        ElectionRecord.from_obj([1, b"s", ["not bytes"]])
    with pytest.raises(ElectionDecodeError):
        Reputation.from_obj({b"m": 101})
    assert not election_due(3, 5) and election_due(10, 5)
    with pytest.raises(ConsensusUsageError):
        Elector(election_interval=0)


def test_every_node_derives_the_same_committee_from_consensus() -> None:
    sim = SimNet(4, seed=5)
    for j in range(30):  # a steady load keeps rounds being decided
        sim.submit(j % 4, b"tx-%d" % j)
        sim.run_until((j + 1) * 20 * MS)
    graphs = [nd.core.graph for nd in sim.nodes]
    decided = min(g.next_to_process for g in graphs)
    assert decided >= 3
    for rnd in range(1, decided):
        elections = []
        for g in graphs:
            elector = Elector(election_interval=1)
            elections.append(elector.on_round(rnd, famous_witnesses(g, rnd), g.peers.at(rnd).members))
        assert elections[0] is not None and all(e == elections[0] for e in elections)
        assert len(elections[0].committee) == supermajority(4)
    with pytest.raises(ConsensusUsageError):
        famous_witnesses(graphs[0], 10_000)

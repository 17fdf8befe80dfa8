"""Executor elections inside blocks: every election round makes a block carrying its seed."""

from __future__ import annotations

import random

import pytest

from node import codec
from node.consensus.blocks import Block, BlockDecodeError, ElectionSeed
from node.consensus.election import Reputation, committee_of, elect, election_seed
from node.consensus.errors import ConsensusUsageError
from node.consensus.event import InternalTransaction, PeerChange
from node.consensus.gossipgen import random_gossip
from node.consensus.hashgraph import Hashgraph
from node.consensus.peers import PeerSchedule, PeerSet
from node.engine.records import RecordError, decode_block, encode_block

MEMBERS = [bytes([i + 1]) * 32 for i in range(4)]


def run(
    interval: int | None, tx_every: int, seed: int = 5, count: int = 1500, every: int = 1
) -> tuple[Hashgraph, list[Block]]:
    g = Hashgraph(PeerSchedule(PeerSet.of(MEMBERS)), verify_signatures=False, election_interval=interval)
    blocks: list[Block] = []
    for i, e in enumerate(random_gossip(MEMBERS, count, random.Random(seed), tx_every=tx_every)):
        g.insert(e)
        if i % every == 0:
            blocks.extend(d.block for d in g.run_consensus() if d.block is not None)
    blocks.extend(d.block for d in g.run_consensus() if d.block is not None)
    return g, blocks


def test_every_election_round_makes_a_block_with_its_seed_even_without_transactions() -> None:
    g, blocks = run(10, tx_every=0)  # no transaction at all: only election blocks
    assert g.next_to_process > 40
    assert [b.round_received for b in blocks] == list(range(0, g.next_to_process, 10))
    assert [b.index for b in blocks] == list(range(len(blocks)))
    for b in blocks:
        assert b.election is not None and b.transactions == () and b.internal_transactions == ()
        rnd = b.round_received
        famous = [w.hash for w in g.rounds[rnd].famous_unique] if rnd in g.rounds else None
        if famous is not None:
            assert b.election.seed == election_seed(rnd, famous)
        assert b.election.round_received == rnd and b.election.members == tuple(sorted(MEMBERS))
        # The block hash covers the election.
        assert b.hash != Block(*b.body()[:7]).hash
    seeds = {b.election.seed for b in blocks if b.election is not None}
    assert len(seeds) == len(blocks)


def test_elections_do_not_depend_on_when_consensus_runs() -> None:
    _, first = run(10, tx_every=3, seed=9)
    _, again = run(10, tx_every=3, seed=9, every=13)
    assert [b.hash for b in first] == [b.hash for b in again]
    elections = [b for b in first if b.election is not None]
    assert len(elections) >= 3
    # Blocks of other rounds carry no election, and keep their 7-field body.
    assert all(len(b.body()) == 7 for b in first if b.election is None)
    assert all(len(b.body()) == 8 for b in elections)


def test_no_elections_when_disabled_and_rounds_without_transactions_make_no_block() -> None:
    g, blocks = run(None, tx_every=0)
    assert g.next_to_process > 40 and blocks == []
    with pytest.raises(ConsensusUsageError):
        Hashgraph(PeerSchedule(PeerSet.of(MEMBERS)), election_interval=0)


def test_election_blocks_survive_storage_and_plain_blocks_keep_their_encoding() -> None:
    peers = PeerSet.of(MEMBERS)
    plain = Block(3, 7, 55, (b"a", b"b"), (InternalTransaction(PeerChange.PEER_ADD, b"p" * 32, b"s"),), peers.hash,
                  b"h" * 32)
    # The encoding of a block without an election is what it was before elections existed.
    assert encode_block(plain) == codec.pack([3, 7, 55, [b"a", b"b"], [[0, b"p" * 32, b"s"]], peers.hash, b"h" * 32])
    election = ElectionSeed(10, b"\x05" * 32, tuple(sorted(MEMBERS)))
    elected = Block(4, 10, 60, (), (), peers.hash, b"h" * 32, election)
    for block in (plain, elected):
        back = decode_block(encode_block(block))
        assert back == block and back.hash == block.hash
    assert elected.hash != Block(4, 10, 60, (), (), peers.hash, b"h" * 32).hash
    assert elected.with_state_hash(b"z" * 32).election == election
    for bad in ([1, 2], elected.body()[:7] + [[10, b"short", []]], elected.body() + [0]):
        with pytest.raises(RecordError):
            decode_block(codec.pack(bad))
    with pytest.raises(BlockDecodeError):
        Block.from_body([0, 0, 0, [], [[2, b"", b""]], b"", b""])


def test_the_committee_is_a_pure_function_of_the_election_and_the_reputation() -> None:
    election = ElectionSeed(20, election_seed(20, [b"\x01" * 32, b"\x02" * 32]), tuple(sorted(MEMBERS)))
    fresh = Reputation()
    assert committee_of(election, fresh) == elect(election.members, election.seed, fresh) == committee_of(
        election, Reputation()
    )
    assert len(committee_of(election, fresh)) == 3 and len(committee_of(election, fresh, 2)) == 2
    punished = Reputation()
    for member in committee_of(election, fresh)[:2]:
        punished.penalise(member, "equivocated")
    assert set(committee_of(election, punished, 2)).isdisjoint(committee_of(election, fresh)[:2])

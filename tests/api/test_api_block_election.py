"""Blocks of election rounds carry the executor election seed; the API shows it and the right hash."""

from __future__ import annotations

from node import codec
from node.api import queries
from node.consensus.blocks import Block, ElectionSeed


def test_block_with_election_decodes_with_its_hash_and_seed(node) -> None:
    members = tuple(sorted(k.public for k in node.keys))
    election = ElectionSeed(10, b"s" * 32, members)
    block = Block(7, 10, 123, (), (), b"p" * 32, b"h" * 32, election)
    doc = queries.decode_block(node.view, codec.pack(block.body()))
    assert doc["hash"] == block.hash.hex()
    assert doc["index"] == 7 and doc["round_received"] == 10 and doc["transaction_count"] == 0
    assert doc["election"]["round"] == 10 and doc["election"]["seed"] == (b"s" * 32).hex()
    assert [m["key"] for m in doc["election"]["members"]] == [m.hex() for m in members]
    plain = Block(8, 11, 124, (), (), b"p" * 32, b"h" * 32)
    doc = queries.decode_block(node.view, codec.pack(plain.body()))
    assert doc["hash"] == plain.hash.hex() and doc["election"] is None

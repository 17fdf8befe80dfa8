"""Blocks and the collection of validators' block signatures.

The hashgraph produces a block's ordered content; the application applies it and fills in the
state hash (`Block.with_state_hash`), then members sign `block.hash` and gossip the signature in
their next event.  A block with more than TC(n) valid signatures has at least one honest signer
(an anchor); one with SM(n) is a proof that other origins accept.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from node import codec, crypto
from node.consensus.event import BlockSignature, Event, InternalTransaction
from node.consensus.peers import PeerSet

BLOCK_SIGNATURE_DOMAIN = b"node/consensus/block"


@dataclass(frozen=True)
class Block:
    index: int
    round_received: int
    timestamp: int
    transactions: tuple[bytes, ...]
    internal_transactions: tuple[InternalTransaction, ...]
    peers_hash: bytes
    state_hash: bytes = b""  # filled by the application after applying the block

    def body(self) -> list[Any]:
        return [
            self.index, self.round_received, self.timestamp, list(self.transactions),
            [t.to_obj() for t in self.internal_transactions], self.peers_hash, self.state_hash,
        ]

    @property
    def hash(self) -> bytes:
        return crypto.sha256(codec.pack(self.body()))

    def with_state_hash(self, state_hash: bytes) -> Block:
        return dataclasses.replace(self, state_hash=state_hash)

    def sign(self, key: crypto.PrivateKey) -> BlockSignature:
        return BlockSignature(key.public, self.index, key.sign(crypto.tagged(BLOCK_SIGNATURE_DOMAIN, self.hash)))


@dataclass(frozen=True)
class OrderedRound:
    """A processed round: its received events in consensus order and the block, if any."""

    round_received: int
    event_hashes: tuple[bytes, ...]
    events: tuple[Event, ...]
    block: Block | None


def median_timestamp(timestamps: list[int]) -> int:
    """Median; with an even count, the integer mean of the two middle values."""
    if not timestamps:
        return 0
    ordered = sorted(timestamps)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) // 2


class SignatureBook:
    """Block signatures seen in events, checked once the final block (with its state hash) is known."""

    def __init__(self, *, verify_signatures: bool = True) -> None:
        self._verify = verify_signatures
        self._pending: dict[int, dict[bytes, BlockSignature]] = {}
        self._blocks: dict[int, tuple[Block, PeerSet]] = {}
        self._valid: dict[int, dict[bytes, BlockSignature]] = {}

    def add(self, sig: BlockSignature) -> bool:
        """Record a gossiped signature; True when it is (now or already) counted as valid."""
        known = self._blocks.get(sig.block_index)
        if known is None:
            self._pending.setdefault(sig.block_index, {}).setdefault(sig.validator, sig)
            return False
        return self._check(sig, *known)

    def register_block(self, block: Block, peers: PeerSet) -> None:
        """The final block (state hash filled) and the peer set whose members may sign it."""
        self._blocks[block.index] = (block, peers)
        self._valid.setdefault(block.index, {})
        for sig in self._pending.pop(block.index, {}).values():
            self._check(sig, block, peers)

    def _check(self, sig: BlockSignature, block: Block, peers: PeerSet) -> bool:
        valid = self._valid[block.index]
        if sig.validator in valid:
            return True
        if sig.validator not in peers:
            return False
        message = crypto.tagged(BLOCK_SIGNATURE_DOMAIN, block.hash)
        if self._verify and not crypto.verify("ed25519", sig.validator, message, sig.signature):
            return False
        valid[sig.validator] = sig
        return True

    def signatures(self, block_index: int) -> list[BlockSignature]:
        return list(self._valid.get(block_index, {}).values())

    def is_anchor(self, block_index: int) -> bool:
        known = self._blocks.get(block_index)
        return known is not None and len(self._valid[block_index]) > known[1].trust_count

    def is_proof(self, block_index: int) -> bool:
        known = self._blocks.get(block_index)
        return known is not None and len(self._valid[block_index]) >= known[1].supermajority

    def anchor_block(self) -> Block | None:
        """The newest block with more than TC(n) valid signatures."""
        for index in sorted(self._blocks, reverse=True):
            if self.is_anchor(index):
                return self._blocks[index][0]
        return None

    def forget_before(self, block_index: int) -> None:
        """Drop signatures and blocks older than `block_index` (bounded memory)."""
        for table in (self._pending, self._blocks, self._valid):
            for index in [i for i in table if i < block_index]:
                del table[index]

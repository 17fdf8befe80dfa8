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
from node.consensus.errors import ConsensusError
from node.consensus.event import BlockSignature, Event, InternalTransaction, PeerChange
from node.consensus.peers import PeerSet

BLOCK_SIGNATURE_DOMAIN = b"node/consensus/block"
MAX_ELECTION_MEMBERS = 1024


class BlockDecodeError(ConsensusError):
    """A block body (stored, or in a proof) that does not decode."""


@dataclass(frozen=True)
class ElectionSeed:
    """The executor election a block carries (see `node.consensus.election`): the round received
    R of the block (an election round), the seed drawn from R's unique famous witnesses, and the
    members of P(R), sorted.  The committee itself is `election.elect(members, seed, reputation,
    count)`, computed by the application, which owns the reputation table."""

    round_received: int
    seed: bytes
    members: tuple[bytes, ...]

    def to_obj(self) -> list[Any]:
        return [self.round_received, self.seed, list(self.members)]

    @staticmethod
    def from_obj(obj: Any) -> ElectionSeed:
        ok = isinstance(obj, list) and len(obj) == 3 and type(obj[0]) is int and obj[0] >= 0
        ok = ok and isinstance(obj[1], bytes) and len(obj[1]) == 32 and isinstance(obj[2], list)
        if not ok or len(obj[2]) > MAX_ELECTION_MEMBERS or not all(isinstance(m, bytes) for m in obj[2]):
            raise BlockDecodeError("bad election seed")
        return ElectionSeed(obj[0], obj[1], tuple(obj[2]))


@dataclass(frozen=True)
class Block:
    index: int
    round_received: int
    timestamp: int
    transactions: tuple[bytes, ...]
    internal_transactions: tuple[InternalTransaction, ...]
    peers_hash: bytes
    state_hash: bytes = b""  # filled by the application after applying the block
    election: ElectionSeed | None = None  # set in the block of every election round

    def body(self) -> list[Any]:
        """The encoded fields; a block without an election keeps the 7-field body (and hash) it
        always had, one with an election has the election as an 8th field."""
        body = [
            self.index, self.round_received, self.timestamp, list(self.transactions),
            [t.to_obj() for t in self.internal_transactions], self.peers_hash, self.state_hash,
        ]
        if self.election is not None:
            body.append(self.election.to_obj())
        return body

    @staticmethod
    def from_body(body: Any) -> Block:
        """The inverse of `body` (types checked; raises BlockDecodeError)."""
        if not isinstance(body, list) or len(body) not in (7, 8):
            raise BlockDecodeError("a block body has 7 or 8 fields")
        index, round_received, timestamp, txs, itxs, peers_hash, state_hash = body[:7]
        for value in (index, round_received, timestamp):
            if type(value) is not int or not 0 <= value < 1 << 63:
                raise BlockDecodeError("bad block number field")
        if not isinstance(txs, list) or not all(isinstance(t, bytes) for t in txs):
            raise BlockDecodeError("bad block transactions")
        if not isinstance(peers_hash, bytes) or not isinstance(state_hash, bytes) or not isinstance(itxs, list):
            raise BlockDecodeError("bad block fields")
        internal = []
        for item in itxs:
            if not isinstance(item, list) or len(item) != 3 or item[0] not in (0, 1):
                raise BlockDecodeError("bad internal transaction")
            if not isinstance(item[1], bytes) or not isinstance(item[2], bytes):
                raise BlockDecodeError("bad internal transaction")
            internal.append(InternalTransaction(PeerChange(item[0]), item[1], item[2]))
        election = ElectionSeed.from_obj(body[7]) if len(body) == 8 else None
        return Block(
            index, round_received, timestamp, tuple(txs), tuple(internal), peers_hash, state_hash, election
        )

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

"""Gossip events: the signed vertices of the hashgraph.

The canonical body is a msgpack list (see `Event.body`); the hash is SHA-256 of its encoding and
the signature is Ed25519 over the hash, with a domain tag so an event signature can never be
replayed as another kind of signature.  Decoding is bounded and every failure is typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from node import codec, crypto
from node.consensus.errors import EventDecodeError, RejectReason

EVENT_SIGNATURE_DOMAIN = b"node/consensus/event"
PUBLIC_KEY_BYTES = 32
HASH_BYTES = 32
SIGNATURE_BYTES = 64
MAX_TRANSACTIONS = 4096
MAX_INTERNAL_TRANSACTIONS = 64
MAX_BLOCK_SIGNATURES = 64
MAX_PAYLOAD_BYTES = 512 * 1024  # sum of transaction bytes in one event
MAX_EVENT_BYTES = MAX_PAYLOAD_BYTES + 64 * 1024


class PeerChange(Enum):
    PEER_ADD = 0
    PEER_REMOVE = 1


@dataclass(frozen=True)
class InternalTransaction:
    """A membership change proposal; it takes effect from round R+6 once committed in round R."""

    kind: PeerChange
    peer: bytes
    signature: bytes = b""

    def to_obj(self) -> list[Any]:
        return [self.kind.value, self.peer, self.signature]


@dataclass(frozen=True)
class BlockSignature:
    """A validator's signature over a block hash, gossiped inside its next event."""

    validator: bytes
    block_index: int
    signature: bytes

    def to_obj(self) -> list[Any]:
        return [self.validator, self.block_index, self.signature]


@dataclass(frozen=True)
class Event:
    creator: bytes
    index: int
    self_parent: bytes | None
    other_parent: bytes | None
    timestamp: int
    transactions: tuple[bytes, ...] = ()
    internal_transactions: tuple[InternalTransaction, ...] = ()
    block_signatures: tuple[BlockSignature, ...] = ()
    signature: bytes = field(default=b"", compare=False)

    def body(self) -> list[Any]:
        return [
            self.creator,
            self.index,
            self.self_parent,
            self.other_parent,
            self.timestamp,
            list(self.transactions),
            [t.to_obj() for t in self.internal_transactions],
            [s.to_obj() for s in self.block_signatures],
        ]

    @property
    def hash(self) -> bytes:
        """SHA-256 of the canonical body (the signature is not part of it), computed once."""
        try:
            cached: bytes = self.__dict__["_hash"]
        except KeyError:
            cached = crypto.sha256(codec.pack(self.body()))
            object.__setattr__(self, "_hash", cached)  # a cache, not state: frozen still holds
        return cached

    @property
    def payload_bytes(self) -> int:
        return sum(map(len, self.transactions))

    @staticmethod
    def create(
        key: crypto.PrivateKey,
        *,
        index: int,
        self_parent: bytes | None,
        other_parent: bytes | None,
        timestamp: int,
        transactions: tuple[bytes, ...] = (),
        internal_transactions: tuple[InternalTransaction, ...] = (),
        block_signatures: tuple[BlockSignature, ...] = (),
    ) -> Event:
        unsigned = Event(
            key.public, index, self_parent, other_parent, timestamp,
            tuple(transactions), tuple(internal_transactions), tuple(block_signatures),
        )
        signature = key.sign(crypto.tagged(EVENT_SIGNATURE_DOMAIN, unsigned.hash))
        return Event(
            unsigned.creator, index, self_parent, other_parent, timestamp,
            unsigned.transactions, unsigned.internal_transactions, unsigned.block_signatures, signature,
        )

    def verify_signature(self) -> bool:
        return crypto.verify(
            "ed25519", self.creator, crypto.tagged(EVENT_SIGNATURE_DOMAIN, self.hash), self.signature
        )

    def size_problem(self) -> str | None:
        """Why this event exceeds the limits, or None."""
        txs = self.transactions
        if len(txs) > MAX_TRANSACTIONS:
            return f"{len(txs)} transactions > {MAX_TRANSACTIONS}"
        payload = sum(map(len, txs))
        if payload > MAX_PAYLOAD_BYTES:
            return f"{payload} payload bytes > {MAX_PAYLOAD_BYTES}"
        if len(self.internal_transactions) > MAX_INTERNAL_TRANSACTIONS:
            return f"{len(self.internal_transactions)} internal transactions > {MAX_INTERNAL_TRANSACTIONS}"
        if len(self.block_signatures) > MAX_BLOCK_SIGNATURES:
            return f"{len(self.block_signatures)} block signatures > {MAX_BLOCK_SIGNATURES}"
        return None

    def to_wire(self) -> bytes:
        return codec.pack([self.body(), self.signature])

    @staticmethod
    def from_wire(data: bytes) -> Event:
        try:
            obj = codec.unpack(data, max_bytes=MAX_EVENT_BYTES, max_len=MAX_TRANSACTIONS + 1)
        except codec.DecodeError as exc:
            reason = RejectReason.OVERSIZED if "exceeds" in str(exc) else RejectReason.MALFORMED
            raise EventDecodeError(str(exc), reason) from exc
        return _event_from_obj(obj)


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise EventDecodeError(what)


def _is_hash(value: Any) -> bool:
    return value is None or (isinstance(value, bytes) and len(value) == HASH_BYTES)


def _event_from_obj(obj: Any) -> Event:
    _need(isinstance(obj, list) and len(obj) == 2, "an event is [body, signature]")
    body, signature = obj
    _need(isinstance(signature, bytes) and len(signature) == SIGNATURE_BYTES, "bad signature field")
    _need(isinstance(body, list) and len(body) == 8, "an event body has 8 fields")
    creator, index, self_parent, other_parent, timestamp, txs, itxs, bsigs = body
    _need(isinstance(creator, bytes) and len(creator) == PUBLIC_KEY_BYTES, "bad creator")
    _need(type(index) is int and 0 <= index < 1 << 63, "bad index")
    _need(_is_hash(self_parent) and _is_hash(other_parent), "bad parent hash")
    _need(type(timestamp) is int and 0 <= timestamp < 1 << 63, "bad timestamp")
    _need(isinstance(txs, list) and all(isinstance(t, bytes) for t in txs), "bad transactions")
    _need(isinstance(itxs, list) and isinstance(bsigs, list), "bad payload lists")
    internal: list[InternalTransaction] = []
    for item in itxs:
        _need(isinstance(item, list) and len(item) == 3, "bad internal transaction")
        kind, peer, sig = item
        _need(kind in (0, 1) and isinstance(peer, bytes) and isinstance(sig, bytes), "bad internal transaction")
        internal.append(InternalTransaction(PeerChange(kind), peer, sig))
    sigs: list[BlockSignature] = []
    for item in bsigs:
        _need(isinstance(item, list) and len(item) == 3, "bad block signature")
        validator, block_index, sig = item
        _need(isinstance(validator, bytes) and type(block_index) is int and block_index >= 0, "bad block signature")
        _need(isinstance(sig, bytes), "bad block signature")
        sigs.append(BlockSignature(validator, block_index, sig))
    event = Event(
        creator, index, self_parent, other_parent, timestamp, tuple(txs), tuple(internal), tuple(sigs), signature
    )
    problem = event.size_problem()
    if problem is not None:
        raise EventDecodeError(problem, RejectReason.OVERSIZED)
    return event

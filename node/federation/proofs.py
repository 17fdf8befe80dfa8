"""Block proofs: a block of another origin's chain with enough of its members' signatures.

A `BlockProof` carries the whole block (so its hash is recomputed here, and its transactions can
be checked for the envelope a request or response is about) and the members' `BlockSignature`s.
It is valid against a known peer set of that origin when the block names that peer set
(`block.peers_hash`) and at least SM(n) distinct members signed `block.hash` behind the domain tag
`BLOCK_SIGNATURE_DOMAIN`, exactly as `Block.sign` does. Signatures by non-members, over another
block index, duplicated or forged, do not count.

Why the whole block: `Block.hash` covers the full transaction list, so a header alone cannot be
checked against it; a Merkle root of transactions in the block would make proofs compact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from node import crypto
from node.consensus.blocks import BLOCK_SIGNATURE_DOMAIN, Block, BlockDecodeError, ElectionSeed
from node.consensus.event import BlockSignature, InternalTransaction, PeerChange
from node.consensus.peers import PeerSet, supermajority
from node.federation.errors import FederationDecodeError, ProofError

MAX_PROOF_SIGNATURES = 256  # more than any origin's peer set; bounds the verification work
MAX_BLOCK_TRANSACTIONS = 10_000
HASH_BYTES = 32


@dataclass(frozen=True)
class BlockProof:
    block: Block
    signatures: tuple[BlockSignature, ...]

    def __post_init__(self) -> None:
        if len(self.signatures) > MAX_PROOF_SIGNATURES:
            raise FederationDecodeError(f"a proof carries at most {MAX_PROOF_SIGNATURES} signatures")

    @property
    def block_hash(self) -> bytes:
        return self.block.hash

    def includes(self, transaction: bytes) -> bool:
        """True when the block orders exactly this transaction (an envelope's wire form)."""
        return transaction in self.block.transactions

    def to_obj(self) -> list[Any]:
        return [self.block.body(), [s.to_obj() for s in self.signatures]]

    @staticmethod
    def from_obj(obj: Any) -> BlockProof:
        _need(isinstance(obj, list) and len(obj) == 2, "a block proof is [block, signatures]")
        body, sigs = obj
        _need(isinstance(body, list) and len(body) in (7, 8), "a block has 7 fields (8 with an election)")
        index, round_received, timestamp, txs, itxs, peers_hash, state_hash = body[:7]
        election = None
        if len(body) == 8:
            try:
                election = ElectionSeed.from_obj(body[7])
            except BlockDecodeError as exc:
                raise FederationDecodeError(f"bad block election: {exc}") from exc
        for name, value in (("index", index), ("round received", round_received), ("timestamp", timestamp)):
            _need(type(value) is int and 0 <= value < 1 << 63, f"bad block {name}")
        _need(isinstance(txs, list) and len(txs) <= MAX_BLOCK_TRANSACTIONS, "bad block transactions")
        _need(all(isinstance(t, bytes) for t in txs), "block transactions are bytes")
        _need(isinstance(itxs, list), "bad internal transactions")
        internal: list[InternalTransaction] = []
        for item in itxs:
            _need(isinstance(item, list) and len(item) == 3, "bad internal transaction")
            kind, peer, sig = item
            _need(kind in (0, 1) and isinstance(peer, bytes) and isinstance(sig, bytes), "bad internal transaction")
            internal.append(InternalTransaction(PeerChange(kind), peer, sig))
        _need(isinstance(peers_hash, bytes) and len(peers_hash) == HASH_BYTES, "bad peers hash")
        _need(isinstance(state_hash, bytes) and len(state_hash) <= HASH_BYTES, "bad state hash")
        _need(isinstance(sigs, list) and len(sigs) <= MAX_PROOF_SIGNATURES, "bad signature list")
        signatures: list[BlockSignature] = []
        for item in sigs:
            _need(isinstance(item, list) and len(item) == 3, "bad block signature")
            validator, block_index, signature = item
            _need(isinstance(validator, bytes) and isinstance(signature, bytes), "bad block signature")
            _need(type(block_index) is int and block_index >= 0, "bad block signature index")
            signatures.append(BlockSignature(validator, block_index, signature))
        block = Block(index, round_received, timestamp, tuple(txs), tuple(internal), peers_hash, state_hash, election)
        return BlockProof(block, tuple(signatures))


def _need(condition: bool, what: str) -> None:
    if not condition:
        raise FederationDecodeError(what)


def valid_signers(proof: BlockProof, peers: PeerSet) -> set[bytes]:
    """The distinct members of `peers` with a valid signature over the proof's block."""
    message = crypto.tagged(BLOCK_SIGNATURE_DOMAIN, proof.block.hash)
    signers: set[bytes] = set()
    tried: set[bytes] = set()  # one verification per member, however often a proof repeats it
    for sig in proof.signatures:
        if sig.validator in tried or sig.validator not in peers or sig.block_index != proof.block.index:
            continue
        tried.add(sig.validator)
        if crypto.verify("ed25519", sig.validator, message, sig.signature):
            signers.add(sig.validator)
    return signers


def verify_proof(proof: BlockProof, known_peer_sets: Iterable[PeerSet]) -> PeerSet:
    """Check the proof against the peer sets we know for its origin; return the one that signed it.

    Raises `ProofError` when the block names no known peer set or has fewer than SM(n) valid
    signatures by distinct members.
    """
    peers = next((p for p in known_peer_sets if p.hash == proof.block.peers_hash), None)
    if peers is None:
        raise ProofError(f"block {proof.block.index} names a peer set we do not know for its origin")
    signers = valid_signers(proof, peers)
    needed = supermajority(len(peers))
    if len(signers) < needed:
        raise ProofError(
            f"block {proof.block.index} has {len(signers)} valid member signatures; a proof needs {needed}"
        )
    return peers


def verify_proof_by_ids(proof: BlockProof, node_ids: Iterable[str]) -> set[str]:
    """Check the proof against the node ids another origin publishes (its SRV records); return the signers.

    What an origin learns of another through DNS is its nodes' ids (key fingerprints), not its peer
    set's keys; a signature counts when its key's fingerprint is one of those ids. Raises
    `ProofError` with fewer than SM(n) distinct valid signers, n the number of published ids.
    """
    ids = frozenset(node_ids)
    if not ids:
        raise ProofError("no node of the proof's origin is known")
    message = crypto.tagged(BLOCK_SIGNATURE_DOMAIN, proof.block.hash)
    signers: set[str] = set()
    tried: set[bytes] = set()
    for sig in proof.signatures:
        if sig.validator in tried or sig.block_index != proof.block.index:
            continue
        tried.add(sig.validator)
        node_id = crypto.fingerprint(sig.validator)
        if node_id in ids and crypto.verify("ed25519", sig.validator, message, sig.signature):
            signers.add(node_id)
    needed = supermajority(len(ids))
    if len(signers) < needed:
        raise ProofError(
            f"block {proof.block.index} has {len(signers)} valid signatures of the origin's {len(ids)} nodes;"
            f" a proof needs {needed}"
        )
    return signers

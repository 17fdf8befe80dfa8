"""The target side: answer another origin's request once our chain has decided it.

A request is checked before anything is put on our chain: it must come from a node of its source
origin (the TLS layer checked that node's certificate against the origin's pinned CA key), the
source must be known (resolved and recorded on our chain), and its block proof must carry a
supermajority of the source's published nodes' signatures over a block holding the request.
Then one `/federation/incoming` record runs it in our chain; the answer is the receipt recorded
there with the proof of our block. A retry (from any node of the source, to any node of ours) is
answered from that record, so a request id is executed once however often it arrives.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import trio

from node import codec
from node.consensus.blocks import Block
from node.engine.records import decode_block
from node.federation.chain_actions import INCOMING_PATH, UPDATE_PATH, incoming_key, posted_signal
from node.federation.errors import MismatchedMessage, TrackerRefusal, UnknownOrigin
from node.federation.messages import (
    FederatedRequest,
    FederatedResponse,
    FederatedUpdate,
    RemoteReceipt,
    decode_message,
)
from node.federation.proofs import verify_proof_by_ids
from node.federation.wiring import proof_holds_request, recorded_origin, state_obj

if TYPE_CHECKING:
    from node.engine.service import ConsensusEngine
    from node.federation.service import FederationService

ANSWER_WAIT_S = 5.0  # within the requester's transport timeout; it asks again after this
PROOF_WAIT_S = 2.0
SUBMIT_AGAIN_S = 10.0
POLL_S = 0.05


class NotDecidedYet(TrackerRefusal):
    """Our chain has not decided the request yet (the requester asks again)."""


class Answerer:
    def __init__(self, service: FederationService, engine: ConsensusEngine) -> None:
        self.service = service
        self.engine = engine
        self._decided: dict[bytes, tuple[dict[str, Any], Block]] = {}
        self._waiters: dict[bytes, trio.Event] = {}
        self._submitted: dict[bytes, float] = {}
        self.answered = 0
        self._updates: dict[tuple[str, str, int], None] = {}  # updates put on our chain (dedup)

    def decided(self, request_id: bytes, receipt: dict[str, Any], block: Block) -> None:
        """Our chain executed the request (called for every applied `/federation/incoming` record)."""
        self._decided[request_id] = (receipt, block)
        while len(self._decided) > 10_000:
            self._decided.pop(next(iter(self._decided)))
        self._submitted.pop(request_id, None)
        waiter = self._waiters.pop(request_id, None)
        if waiter is not None:
            waiter.set()

    def decided_ids(self) -> list[bytes]:
        return list(self._decided)

    def check(self, peer_origin: str, request: FederatedRequest) -> None:
        """Refuse (with the reason) a request we must not put on our chain."""
        own = self.engine.origin
        if request.target_origin != own:
            raise MismatchedMessage(f"a request for {request.target_origin!r} reached {own!r}")
        if peer_origin != request.source_origin:
            raise MismatchedMessage(f"a node of {peer_origin!r} sent a request of {request.source_origin!r}")
        found = self.service.directory.known(request.source_origin)
        assert self.engine.chain is not None
        if found is None or recorded_origin(self.engine.chain.state, request.source_origin) is None:
            raise UnknownOrigin(f"a request from origin {request.source_origin!r}, which we do not know (yet)")
        ids = frozenset(e.node_id for e in found.endpoints)
        verify_proof_by_ids(request.source_block_proof, ids)
        if not proof_holds_request(request.source_block_proof, request.envelope_wire, ids):
            raise MismatchedMessage("the source's proved block does not hold this request")

    async def handle(self, peer: Any, payload: bytes) -> bytes:
        message = decode_message(payload)
        if isinstance(message, FederatedUpdate):
            self.take_update(peer.origin, message)
            return b""
        if not isinstance(message, FederatedRequest):
            raise MismatchedMessage("only requests and updates are taken here")
        self.check(peer.origin, message)
        return (await self.answer(message)).to_wire()

    def take_update(self, peer_origin: str, update: FederatedUpdate) -> None:
        """Check a forwarded signal and put it on our chain (once, whichever node of its origin sent it)."""
        if peer_origin != update.origin:
            raise MismatchedMessage(f"a node of {peer_origin!r} sent an update of {update.origin!r}")
        found = self.service.directory.known(update.origin)
        if found is None:
            raise UnknownOrigin(f"an update from origin {update.origin!r}, which we do not know (yet)")
        verify_proof_by_ids(update.proof, frozenset(e.node_id for e in found.endpoints))
        if posted_signal(update.proof, update.action_id, update.point) is None:
            raise MismatchedMessage("the proved block holds no such signal")
        key = (update.origin, update.point, update.seq)
        if key in self._updates:
            return
        self._updates[key] = None
        while len(self._updates) > 10_000:
            self._updates.pop(next(iter(self._updates)))
        self.engine.submit_node_action(UPDATE_PATH, {
            "origin": update.origin, "point": update.point, "seq": update.seq, "sender": update.sender,
            "action_id": update.action_id.hex(), "proof": codec.pack(update.proof.to_obj()).hex(),
        })

    def _from_chain(self, request_id: bytes) -> tuple[dict[str, Any], Block] | None:
        """A request decided before this run (or before we heard of it): from the state and stored block."""
        chain = self.engine.chain
        assert chain is not None
        record = state_obj(chain.state, incoming_key(request_id))
        if not isinstance(record, dict):
            return None
        stored = chain.get_block(record["block"])
        if stored is None:
            return None
        return record["receipt"], decode_block(stored)

    async def answer(self, request: FederatedRequest) -> FederatedResponse:
        request_id = request.request_id
        decided = self._decided.get(request_id) or self._from_chain(request_id)
        if decided is None:
            now = time.monotonic()
            if now - self._submitted.get(request_id, -SUBMIT_AGAIN_S) >= SUBMIT_AGAIN_S:
                self._submitted[request_id] = now
                self.engine.submit_node_action(
                    INCOMING_PATH, {"request_id": request_id.hex(), "envelope": request.envelope_wire.hex()}
                )
            waiter = self._waiters.setdefault(request_id, trio.Event())
            with trio.move_on_after(ANSWER_WAIT_S):
                await waiter.wait()
            decided = self._decided.get(request_id) or self._from_chain(request_id)
            if decided is None:
                raise NotDecidedYet("our chain has not decided the request yet; ask again")
        receipt, block = decided
        proof = self.service.proof_of(block)
        with trio.move_on_after(PROOF_WAIT_S):
            while proof is None:
                await trio.sleep(POLL_S)
                proof = self.service.proof_of(block)
        if proof is None:
            raise NotDecidedYet("our block deciding the request is not signed by a supermajority yet; ask again")
        self.answered += 1
        return FederatedResponse(request_id, self.engine.origin, RemoteReceipt.from_obj(receipt), proof)

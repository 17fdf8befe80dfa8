"""The source side: carry a request our chain committed to its target origin, until it closes.

Only the node that committed the `/federation/request` record carries it (the others would only
multiply the target's work); if it stops, the request ends in a timeout on every node alike.
The carrier waits for a supermajority of our nodes to sign the block holding the record, sends
the request (with that block proof) to the target's nodes in turn, checks the agreed answer
(a proof by a supermajority of the target's published nodes that its chain decided the request)
and posts it as `/federation/response`; the chain checks the proof again before it counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
import trio

from node import codec
from node.actions.envelope import Envelope
from node.actions.model import SignalOutput
from node.consensus.blocks import Block
from node.federation.chain_actions import RESPONSE_PATH, proof_holds_incoming
from node.federation.errors import FederationError, MismatchedMessage, UnknownOrigin
from node.federation.messages import FederatedRequest, FederatedResponse, FederatedUpdate, decode_message
from node.federation.proofs import verify_proof_by_ids
from node.transport import TransportError

if TYPE_CHECKING:
    from node.engine.service import ConsensusEngine
    from node.federation.service import FederationService

log = structlog.get_logger("federation")

POLL_S = 0.05  # how often a carrier looks again at the signatures of our block / the request's state
CLOSE_WAIT_S = 10.0  # how long a posted response may take to close the request before it is posted again
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 2.0
FORWARD_FOR_S = 60.0  # a signal not delivered to another origin within this is dropped


def check_response(response: Any, request: FederatedRequest, node_ids: frozenset[str]) -> FederatedResponse:
    """The target's answer, if it is the agreed answer to this request; else a `FederationError`."""
    if not isinstance(response, FederatedResponse):
        raise MismatchedMessage("the target answered with something other than a response")
    if response.request_id != request.request_id:
        raise MismatchedMessage("the response answers another request")
    if response.target_origin != request.target_origin:
        raise UnknownOrigin(
            f"a response from {response.target_origin!r} to a request sent to {request.target_origin!r}"
        )
    verify_proof_by_ids(response.target_block_proof, node_ids)
    if not proof_holds_incoming(response.target_block_proof, request.request_id, request.source_origin):
        raise MismatchedMessage("the target's proved block does not hold this request")
    return response


class Carrier:
    def __init__(self, service: FederationService, engine: ConsensusEngine) -> None:
        self.service = service
        self.engine = engine
        self.sent = 0
        self.failures = 0
        self.carrying: set[bytes] = set()

    def carry(self, envelope: Envelope, block: Block) -> None:
        """Carry the request until it closes (once per request on this node)."""
        if envelope.action_id in self.carrying:
            return
        self.carrying.add(envelope.action_id)
        self.service.nursery.start_soon(self._carry, envelope, block)

    async def _carry(self, envelope: Envelope, block: Block) -> None:
        try:
            await self._carry_until_closed(envelope, block)
        finally:
            self.carrying.discard(envelope.action_id)

    async def _carry_until_closed(self, envelope: Envelope, block: Block) -> None:
        service, request_id = self.service, envelope.action_id
        proof = None
        while request_id in service.pending:
            proof = service.proof_of(block)
            if proof is not None:
                break
            await trio.sleep(POLL_S)
        if proof is None or envelope.target is None:
            return
        request = FederatedRequest.of(envelope, proof)
        wire = request.to_wire()
        backoff = BACKOFF_MIN_S
        while request_id in service.pending:
            try:
                await self._exchange(request, wire)
                backoff = BACKOFF_MIN_S
            except (FederationError, TransportError) as exc:
                self.failures += 1
                log.info("federated request not answered yet", request=request_id.hex()[:16],
                         target=request.target_origin, error=str(exc)[:300])
                await trio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _exchange(self, request: FederatedRequest, wire: bytes) -> None:
        service = self.service
        assert service.endpoint is not None
        answer = await service.directory.send(service.endpoint, request.target_origin, wire)
        self.sent += 1
        found = service.directory.known(request.target_origin)
        if found is None:
            raise UnknownOrigin(f"{request.target_origin} is no longer resolved")
        response = check_response(decode_message(answer), request, frozenset(e.node_id for e in found.endpoints))
        self.engine.submit_node_action(RESPONSE_PATH, {
            "request_id": request.request_id.hex(),
            "origin": response.target_origin,
            "receipt": response.receipt.to_obj(),
            "proof": codec.pack(response.target_block_proof.to_obj()).hex(),
        })
        with trio.move_on_after(CLOSE_WAIT_S):
            await service.closed(request.request_id).wait()


class Forwarder:
    """Forwards signals of our points to the other origins whose users joined them.

    Every node of ours forwards (the receiving origin puts each signal on its chain once), so a
    signal is delivered while any of our nodes is up. Gives up after `FORWARD_FOR_S`.
    """

    def __init__(self, service: FederationService, engine: ConsensusEngine) -> None:
        self.service = service
        self.engine = engine
        self.forwarded = 0

    def signal_posted(self, output: SignalOutput, block: Block) -> None:
        chain = self.engine.chain
        assert chain is not None
        prefix = b"member/" + output.point.encode() + b"/"
        origins = set()
        for key, _ in chain.state.iterate(prefix):
            actor = key[len(prefix):].decode()
            if "@" in actor:
                origins.add(actor.rsplit("@", 1)[1])
        for origin in sorted(origins & set(self.service.directory.origins)):
            self.service.nursery.start_soon(self._forward, origin, output, block)

    async def _forward(self, origin: str, output: SignalOutput, block: Block) -> None:
        service = self.service
        assert service.endpoint is not None
        with trio.move_on_after(FORWARD_FOR_S):
            proof = service.proof_of(block)
            while proof is None:
                await trio.sleep(POLL_S)
                proof = service.proof_of(block)
            update = FederatedUpdate(self.engine.origin, output.point, output.seq, output.sender, output.action_id,
                                     proof)
            backoff = BACKOFF_MIN_S
            while True:
                try:
                    await service.directory.send(service.endpoint, origin, update.to_wire())
                    self.forwarded += 1
                    return
                except (FederationError, TransportError) as exc:
                    log.info("signal not forwarded yet", origin=origin, point=output.point, error=str(exc)[:300])
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)

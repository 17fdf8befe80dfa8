"""Tracking cross-origin requests in consensus time (sans-IO).

Time here is always *consensus time*: the timestamp (ns) of the block being applied, passed in by
the caller, never a clock. Every node of an origin applies the same blocks in the same order, so
when the engine feeds requests, responses and block timestamps in as their blocks are applied,
every node reaches the same outcome: a response is on time if and only if the block that carries
it is older than the request's deadline.

`RequestTracker` (the source side) follows requests this origin sent:
- `start(request, now, timeout_ns=None)` tracks it (deadline `now + timeout`, default 120 s);
  starting the same request again is a no-op (idempotent by request id);
- `advance(now)` returns the failure outcomes of requests whose deadline passed;
- `on_response(response, now, sender_origin=None)` completes a request with the target chain's
  receipt, after checking the origin is known, the request exists, the proof has SM(n) valid
  signatures of a known peer set of the target and the proved block ordered the request's
  envelope. A response after the timeout (or a second response) is ignored: it returns None and
  the recorded outcome stays as it was.

`IncomingRequests` (the target side) admits requests from other origins exactly once:
- `admit(request, now, sender_origin=None)` returns NEW (check passed: order the envelope in our
  chain), PENDING (a retry of a request still being decided: do nothing) or ANSWERED with the
  recorded response (a retry or replay after completion is answered identically, byte for byte);
- `complete(response, now, envelope_wire)` records our chain's answer for a request (on every
  node, as the block that executed it is applied);
- records are kept for `retention_ns` of consensus time after completion; a request whose
  envelope expired is refused (`RequestExpired`), so with a retention of at least the longest
  envelope lifetime a replay can never be executed twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from node.actions.envelope import Envelope
from node.consensus.peers import PeerSet
from node.federation.errors import (
    ConflictingRequest,
    FederationUsageError,
    MismatchedMessage,
    TrackerRefusal,
    UnknownOrigin,
    UnknownRequest,
)
from node.federation.messages import FederatedRequest, FederatedResponse, RemoteReceipt
from node.federation.proofs import BlockProof, verify_proof

NS = 1_000_000_000
DEFAULT_TIMEOUT_NS = 120 * NS
DEFAULT_RETENTION_NS = 24 * 3600 * NS
MAX_TRACKED = 10_000
TIMEOUT_REASON = "timeout"

# The peer sets we know for an origin (empty when the origin is unknown); the engine derives them
# from configuration or from the other origin's chain history it has verified.
PeerSets = Callable[[str], Sequence[PeerSet]]


class RequestExpired(TrackerRefusal):
    """The request's envelope expired (by consensus time) before we admitted it."""


class Overloaded(TrackerRefusal):
    """More requests are tracked than the configured limit."""


@dataclass(frozen=True)
class Outcome:
    """How a request this origin sent ended: the target's receipt, or a timeout failure."""

    request_id: bytes
    target_origin: str
    receipt: RemoteReceipt
    timed_out: bool
    decided_at: int  # consensus time (ns)
    proof: BlockProof | None = None


@dataclass
class _Outgoing:
    request: FederatedRequest
    deadline: int
    outcome: Outcome | None = None


def _check_proof(peer_sets: PeerSets, origin: str, proof: BlockProof, envelope_wire: bytes) -> None:
    verify_proof(proof, peer_sets(origin))
    if not proof.includes(envelope_wire):
        raise MismatchedMessage(f"the proved block {proof.block.index} of {origin} does not order the envelope")


class RequestTracker:
    def __init__(
        self,
        peer_sets: PeerSets,
        *,
        default_timeout_ns: int = DEFAULT_TIMEOUT_NS,
        retention_ns: int = DEFAULT_RETENTION_NS,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        if default_timeout_ns <= 0:
            raise FederationUsageError("the default timeout must be positive")
        self._peer_sets = peer_sets
        self.default_timeout_ns = default_timeout_ns
        self.retention_ns = retention_ns
        self.max_tracked = max_tracked
        self._requests: dict[bytes, _Outgoing] = {}

    def start(self, request: FederatedRequest, now: int, timeout_ns: int | None = None) -> bool:
        """Track a request sent at consensus time `now`; False when it was already tracked."""
        known = self._requests.get(request.request_id)
        if known is not None:
            if known.request.envelope_wire != request.envelope_wire:
                raise ConflictingRequest("a request id was reused with a different envelope")
            return False
        if timeout_ns is not None and timeout_ns <= 0:
            raise FederationUsageError("a request timeout must be positive")
        if not self._peer_sets(request.target_origin):
            raise UnknownOrigin(f"no peer set is known for origin {request.target_origin!r}")
        if len(self._requests) >= self.max_tracked:
            raise Overloaded(f"{len(self._requests)} requests are tracked already")
        deadline = now + (timeout_ns if timeout_ns is not None else self.default_timeout_ns)
        self._requests[request.request_id] = _Outgoing(request, deadline)
        return True

    def next_deadline(self) -> int | None:
        """The earliest deadline of a pending request (consensus time), if any."""
        pending = [r.deadline for r in self._requests.values() if r.outcome is None]
        return min(pending) if pending else None

    def advance(self, now: int) -> list[Outcome]:
        """Time out every pending request whose deadline is at or before `now`; forget old outcomes."""
        outcomes = []
        for record in self._requests.values():
            if record.outcome is None and now >= record.deadline:
                outcomes.append(self._time_out(record, now))
        self._requests = {
            rid: r
            for rid, r in self._requests.items()
            if r.outcome is None or now - r.outcome.decided_at < self.retention_ns
        }
        return outcomes

    def _time_out(self, record: _Outgoing, now: int) -> Outcome:
        request = record.request
        record.outcome = Outcome(
            request.request_id,
            request.target_origin,
            RemoteReceipt(
                False, TIMEOUT_REASON, None, f"no agreed response from {request.target_origin} by {record.deadline}"
            ),
            timed_out=True,
            decided_at=now,
        )
        return record.outcome

    def on_response(self, response: FederatedResponse, now: int, sender_origin: str | None = None) -> Outcome | None:
        """Complete a request with the target chain's receipt; None when the response is ignored (late, repeated)."""
        if not self._peer_sets(response.target_origin):
            raise UnknownOrigin(f"a response from origin {response.target_origin!r}, which we do not know")
        if sender_origin is not None and sender_origin != response.target_origin:
            raise MismatchedMessage(f"node of {sender_origin!r} sent a response as {response.target_origin!r}")
        record = self._requests.get(response.request_id)
        if record is None:
            raise UnknownRequest(f"a response for request {response.request_id.hex()[:16]}, which we did not send")
        if response.target_origin != record.request.target_origin:
            raise MismatchedMessage("the response comes from another origin than the request went to")
        if record.outcome is not None or now >= record.deadline:
            # Decided already, or the response's block is past the deadline: it lost the race, and
            # `advance(now)` reports the timeout (so the engine learns it in one place only).
            return None
        _check_proof(self._peer_sets, response.target_origin, response.target_block_proof, record.request.envelope_wire)
        record.outcome = Outcome(
            response.request_id, response.target_origin, response.receipt, False, now, response.target_block_proof
        )
        return record.outcome

    def outcome(self, request_id: bytes) -> Outcome | None:
        record = self._requests.get(request_id)
        return None if record is None else record.outcome

    def pending(self) -> list[FederatedRequest]:
        """Requests still waiting (the engine resends these to another endpoint after a transport failure)."""
        return [r.request for r in self._requests.values() if r.outcome is None]


class Admission(Enum):
    NEW = "new"
    PENDING = "pending"
    ANSWERED = "answered"


@dataclass
class _Incoming:
    envelope_wire: bytes
    expiry_ns: int
    response: FederatedResponse | None = None
    completed_at: int | None = None


class IncomingRequests:
    def __init__(
        self,
        origin: str,
        peer_sets: PeerSets,
        *,
        retention_ns: int = DEFAULT_RETENTION_NS,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self.origin = origin
        self._peer_sets = peer_sets
        self.retention_ns = retention_ns
        self.max_tracked = max_tracked
        self._records: dict[bytes, _Incoming] = {}

    def admit(
        self, request: FederatedRequest, now: int, sender_origin: str | None = None
    ) -> tuple[Admission, FederatedResponse | None]:
        """Decide what to do with a request from another origin (see the module docstring)."""
        if request.target_origin != self.origin:
            raise MismatchedMessage(f"a request for {request.target_origin!r} reached {self.origin!r}")
        if not self._peer_sets(request.source_origin):
            raise UnknownOrigin(f"a request from origin {request.source_origin!r}, which we do not know")
        if sender_origin is not None and sender_origin != request.source_origin:
            raise MismatchedMessage(f"node of {sender_origin!r} sent a request as {request.source_origin!r}")
        known = self._records.get(request.request_id)
        if known is not None:
            if known.envelope_wire != request.envelope_wire:
                raise ConflictingRequest("a request id was reused with a different envelope")
            if known.response is not None:
                return Admission.ANSWERED, known.response
            return Admission.PENDING, None
        expiry = Envelope.from_wire(request.envelope_wire).expiry_ns
        if expiry <= now:
            raise RequestExpired(f"the request's envelope expired at {expiry} (consensus time is {now})")
        if len(self._records) >= self.max_tracked:
            raise Overloaded(f"{len(self._records)} incoming requests are tracked already")
        _check_proof(self._peer_sets, request.source_origin, request.source_block_proof, request.envelope_wire)
        self._records[request.request_id] = _Incoming(request.envelope_wire, expiry)
        return Admission.NEW, None

    def complete(self, response: FederatedResponse, now: int, envelope_wire: bytes | None = None) -> None:
        """Record our chain's answer to a request (the first answer stays).

        Every node of the origin should call this when it applies the block that executed a
        federated envelope, passing `envelope_wire`: then a retry reaching any node is answered
        from the record, not only a retry reaching the node that admitted the request.
        """
        record = self._records.get(response.request_id)
        if record is None:
            if envelope_wire is None:
                raise UnknownRequest(f"request {response.request_id.hex()[:16]} was never admitted")
            envelope = Envelope.from_wire(envelope_wire)
            if envelope.action_id != response.request_id:
                raise FederationUsageError("the response is not for this envelope")
            record = self._records[response.request_id] = _Incoming(envelope_wire, envelope.expiry_ns)
        elif envelope_wire is not None and envelope_wire != record.envelope_wire:
            raise ConflictingRequest("a request id was reused with a different envelope")
        if record.response is None:
            record.response = response
            record.completed_at = now

    def prune(self, now: int) -> int:
        """Forget answers older than the retention, and unanswered requests whose envelope expired."""
        before = len(self._records)
        self._records = {
            rid: r
            for rid, r in self._records.items()
            if (r.completed_at is None and now < r.expiry_ns + self.retention_ns)
            or (r.completed_at is not None and now - r.completed_at < self.retention_ns)
        }
        return before - len(self._records)

    def response_for(self, request_id: bytes) -> FederatedResponse | None:
        record = self._records.get(request_id)
        return None if record is None else record.response

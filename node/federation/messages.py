"""Messages between origins: a request carried to its target origin, and the agreed response.

Wire form: `node.codec` maps with a `kind` and exactly the listed keys; decoding is bounded
(`MAX_FEDERATION_BYTES`) and every failure is a `FederationDecodeError`.

- `FederatedRequest`: the source origin's chain ordered `envelope_wire` (an action whose target
  is another origin) in the block of `source_block_proof`. Its `request_id` is the envelope's
  `action_id`, its `source_origin` the envelope's origin and its `target_origin` the envelope's
  target: these are checked on construction, so one request id can never name two contents.
- `FederatedResponse`: what the target origin's chain decided (`receipt`), with the block of the
  target chain that ordered the envelope (`target_block_proof`). The block proves the envelope was
  decided there; the receipt itself is as reported by the answering node, because blocks do not
  (yet) commit to receipts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node import codec
from node.actions.envelope import Envelope, check_json_like
from node.actions.errors import EnvelopeError
from node.actions.model import Receipt
from node.federation.errors import FederationDecodeError
from node.federation.proofs import BlockProof
from node.trust.certs import check_origin
from node.trust.errors import WrongOrigin

MAX_FEDERATION_BYTES = codec.MAX_MESSAGE_BYTES  # one transport frame
MAX_DETAIL_CHARS = 1024
REQUEST_KIND = "federation/request"
RESPONSE_KIND = "federation/response"
UPDATE_KIND = "federation/update"


def _origin(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise FederationDecodeError(f"{what} must be a string")
    try:
        return check_origin(value)
    except WrongOrigin as exc:
        raise FederationDecodeError(f"{what}: {exc}") from exc


@dataclass(frozen=True)
class RemoteReceipt:
    """The outcome the target origin's chain reached for the envelope."""

    ok: bool
    reason: str | None = None
    result: Any = None  # JSON-like (no floats, no bytes)
    detail: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.ok, bool):
            raise FederationDecodeError("receipt ok must be a boolean")
        if self.reason is not None and (not isinstance(self.reason, str) or len(self.reason) > 64):
            raise FederationDecodeError("receipt reason must be a short string")
        if not isinstance(self.detail, str) or len(self.detail) > MAX_DETAIL_CHARS:
            raise FederationDecodeError(f"receipt detail must be a string of at most {MAX_DETAIL_CHARS} chars")
        try:
            check_json_like(self.result, "result")
        except EnvelopeError as exc:
            raise FederationDecodeError(str(exc)) from exc

    @staticmethod
    def of(receipt: Receipt) -> RemoteReceipt:
        reason = None if receipt.reason is None else str(receipt.reason.value)
        return RemoteReceipt(receipt.ok, reason, receipt.result, receipt.detail[:MAX_DETAIL_CHARS])

    def to_obj(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason, "result": self.result, "detail": self.detail}

    @staticmethod
    def from_obj(obj: Any) -> RemoteReceipt:
        if not isinstance(obj, dict) or set(obj) != {"ok", "reason", "result", "detail"}:
            raise FederationDecodeError("a receipt is a map of ok, reason, result, detail")
        return RemoteReceipt(obj["ok"], obj["reason"], obj["result"], obj["detail"])


@dataclass(frozen=True)
class FederatedRequest:
    request_id: bytes
    source_origin: str
    target_origin: str
    envelope_wire: bytes
    source_block_proof: BlockProof

    def __post_init__(self) -> None:
        try:
            envelope = Envelope.from_wire(self.envelope_wire)
        except EnvelopeError as exc:
            raise FederationDecodeError(f"the request's envelope: {exc}") from exc
        if self.request_id != envelope.action_id:
            raise FederationDecodeError("the request id is not the envelope's action id")
        if envelope.origin != self.source_origin or envelope.target != self.target_origin:
            raise FederationDecodeError("the request's origins are not the envelope's origin and target")
        if self.source_origin == self.target_origin:
            raise FederationDecodeError("a federated request crosses origins")

    @staticmethod
    def of(envelope: Envelope, source_block_proof: BlockProof) -> FederatedRequest:
        if envelope.target is None:
            raise FederationDecodeError("the envelope names no target origin")
        return FederatedRequest(
            envelope.action_id, envelope.origin, envelope.target, envelope.to_wire(), source_block_proof
        )

    def to_wire(self) -> bytes:
        return _pack_checked(
            {
                "kind": REQUEST_KIND,
                "request_id": self.request_id,
                "source": self.source_origin,
                "target": self.target_origin,
                "envelope": self.envelope_wire,
                "proof": self.source_block_proof.to_obj(),
            }
        )


@dataclass(frozen=True)
class FederatedResponse:
    request_id: bytes
    target_origin: str
    receipt: RemoteReceipt
    target_block_proof: BlockProof

    def to_wire(self) -> bytes:
        return _pack_checked(
            {
                "kind": RESPONSE_KIND,
                "request_id": self.request_id,
                "target": self.target_origin,
                "receipt": self.receipt.to_obj(),
                "proof": self.target_block_proof.to_obj(),
            }
        )


@dataclass(frozen=True)
class FederatedUpdate:
    """A change at `origin` that concerns another origin's members: today a signal posted to one of
    `origin`'s points they joined. `action_id` names the action (in the proved block) that posted it."""

    origin: str
    point: str
    seq: int
    sender: str
    action_id: bytes
    proof: BlockProof

    def to_wire(self) -> bytes:
        return _pack_checked(
            {
                "kind": UPDATE_KIND,
                "request_id": self.action_id,
                "target": self.origin,
                "point": self.point,
                "seq": self.seq,
                "sender": self.sender,
                "proof": self.proof.to_obj(),
            }
        )


FederationMessage = FederatedRequest | FederatedResponse | FederatedUpdate
_KEYS = {
    REQUEST_KIND: {"kind", "request_id", "source", "target", "envelope", "proof"},
    RESPONSE_KIND: {"kind", "request_id", "target", "receipt", "proof"},
    UPDATE_KIND: {"kind", "request_id", "target", "point", "seq", "sender", "proof"},
}


def _pack_checked(obj: dict[str, Any]) -> bytes:
    data = codec.pack(obj)
    if len(data) > MAX_FEDERATION_BYTES:
        raise FederationDecodeError(f"a federation message of {len(data)} bytes exceeds {MAX_FEDERATION_BYTES}")
    return data


def decode_message(data: bytes) -> FederationMessage:
    """Parse a request or a response; raise `FederationDecodeError` for anything else."""
    try:
        obj = codec.unpack(data, max_bytes=MAX_FEDERATION_BYTES)
    except codec.DecodeError as exc:
        raise FederationDecodeError(str(exc)) from exc
    if not isinstance(obj, dict) or _KEYS.get(obj.get("kind")) != set(obj):  # type: ignore[arg-type]
        raise FederationDecodeError("not a federation request or response")
    request_id = obj["request_id"]
    if not isinstance(request_id, bytes) or len(request_id) != 32:
        raise FederationDecodeError("a request id is 32 bytes")
    proof = BlockProof.from_obj(obj["proof"])
    target = _origin(obj["target"], "target origin")
    if obj["kind"] == REQUEST_KIND:
        if not isinstance(obj["envelope"], bytes):
            raise FederationDecodeError("the envelope must be bytes")
        return FederatedRequest(request_id, _origin(obj["source"], "source origin"), target, obj["envelope"], proof)
    if obj["kind"] == UPDATE_KIND:
        point, seq, sender = obj["point"], obj["seq"], obj["sender"]
        if not isinstance(point, str) or not 0 < len(point) <= 64:
            raise FederationDecodeError("an update's point is a short string")
        if type(seq) is not int or not 0 <= seq < 1 << 63:
            raise FederationDecodeError("an update's seq is a non-negative integer")
        if not isinstance(sender, str) or not 0 < len(sender) <= 300:
            raise FederationDecodeError("an update's sender is a short string")
        return FederatedUpdate(target, point, seq, sender, request_id, proof)
    return FederatedResponse(request_id, target, RemoteReceipt.from_obj(obj["receipt"]), proof)

"""Pure helpers of the federation service: reading our chain's federation records, building the
DNS zone from them, recognising federation records in applied blocks, and admitting a user's
cross-origin action at the API. No I/O beyond the state reader handed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from node.actions.envelope import Envelope
from node.actions.errors import ActionRejected, EnvelopeError, Reason
from node.actions.model import Receipt
from node.actions.state import StateReader
from node.federation.chain_actions import (
    REMOTE_PATHS,
    REQUEST_PATH,
    endpoint_key,
    origin_key,
)
from node.federation.proofs import BlockProof
from node.federation.records import NodeEndpoint, OriginRecords

ZONE_TTL = 10  # seconds: a node that (re)publishes its endpoint is seen by the other origins soon


def state_obj(state: StateReader, key: bytes) -> Any:
    raw = state.get(key)
    return None if raw is None else msgpack.unpackb(raw, raw=False, strict_map_key=False)


def zone_from_state(
    state: StateReader, origin: str, member_ids: Iterable[str], *, quorum: int, ttl: int = ZONE_TTL
) -> OriginRecords | None:
    """Our origin's DNS records: the endpoints our nodes recorded on the chain, and their CA pin.

    None (the responder answers SERVFAIL) until `quorum` members have recorded theirs: a proof is
    checked against the published node ids, so publishing fewer would make proofs easier to forge.
    """
    endpoints: list[NodeEndpoint] = []
    pins: set[bytes] = set()
    for node_id in member_ids:
        record = state_obj(state, endpoint_key(node_id))
        if not isinstance(record, dict):
            continue
        endpoints.append(NodeEndpoint(node_id, record["host"], record["port"]))
        pins.add(bytes.fromhex(record["pin"]))
    if len(endpoints) < quorum or not pins:
        return None
    return OriginRecords(origin, tuple(sorted(endpoints)), tuple(sorted(pins)), ttl=ttl)


def recorded_origin(state: StateReader, origin: str) -> dict[str, Any] | None:
    record = state_obj(state, origin_key(origin))
    return record if isinstance(record, dict) else None


def receipt_dict(action_id: bytes, receipt: dict[str, Any]) -> dict[str, Any]:
    """A federated outcome in the API's receipt form (what `POST /actions?wait=1` returns)."""
    return {"action_id": action_id.hex(), "ok": receipt["ok"], "reason": receipt["reason"],
            "result": receipt["result"], "detail": receipt["detail"]}


@dataclass(frozen=True)
class FederationRecord:
    """A federation record found in an applied block, with its receipt."""

    envelope: Envelope
    receipt: Receipt


def federation_records(transactions: Iterable[bytes], receipts: Iterable[Receipt]) -> list[FederationRecord]:
    out = []
    for tx, receipt in zip(transactions, receipts, strict=False):
        if b"/federation/" not in tx:  # cheap filter: most transactions are not ours
            continue
        try:
            envelope = Envelope.from_wire(tx)
        except EnvelopeError:
            continue
        if envelope.path.startswith("/federation/"):
            out.append(FederationRecord(envelope, receipt))
    return out


def carried_envelope(record: Envelope) -> Envelope | None:
    try:
        return Envelope.from_wire(bytes.fromhex(str(record.args.get("envelope", ""))))
    except (ValueError, EnvelopeError):
        return None


def proof_holds_request(proof: BlockProof, envelope_wire: bytes, node_ids: frozenset[str]) -> bool:
    """True when the proved block holds a `/federation/request` record carrying this envelope,
    signed by one of the source origin's published nodes."""
    wanted = envelope_wire.hex()
    for tx in proof.block.transactions:
        try:
            record = Envelope.from_wire(tx)
        except EnvelopeError:
            continue
        if record.path == REQUEST_PATH and record.args.get("envelope") == wanted:
            if record.actor_fingerprint in node_ids and record.verify_signature():
                return True
    return False


def admit_remote(wire: bytes, *, origin: str, resolvable: Callable[[str], str | None]) -> Envelope | None:
    """The user's envelope if it targets another origin (None: an ordinary action for us).

    Raises `ActionRejected` with a clear reason for what cannot be carried: a bad signature, the
    wrong origin, a path other origins do not take, an expired envelope, or a target that does not
    resolve (`resolvable(target)` returns why not, or None when it does).
    """
    envelope = Envelope.from_wire(wire)
    if envelope.target is None or envelope.target == origin:
        return None
    if not envelope.verify_signature():
        raise ActionRejected(Reason.BAD_SIGNATURE)
    if envelope.origin != origin:
        raise ActionRejected(Reason.WRONG_ORIGIN, f"from {envelope.origin}, this is {origin}")
    if envelope.path not in REMOTE_PATHS:
        raise ActionRejected(Reason.FORBIDDEN, f"{envelope.path} cannot be sent to another origin")
    if envelope.expiry_ns <= time.time_ns():
        raise ActionRejected(Reason.EXPIRED)
    why = resolvable(envelope.target)
    if why is not None:
        raise ActionRejected(Reason.NOT_FOUND, f"origin {envelope.target} does not resolve: {why}")
    return envelope

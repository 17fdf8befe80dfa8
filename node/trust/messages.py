"""Messages of the certificate service, as frozen dataclasses encoded through `node.codec`.

On the wire each message is the canonical msgpack `[kind, map]` with a kind starting `trust/`, so a
node's handler recognises bootstrap traffic (the only traffic a self-signed peer may send) from the
first bytes, without decoding anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node import codec
from node.errors import ProtocolViolation
from node.trust.verify import RevocationSet

PREFIX = "trust/"
MAX_PEM = 16 * 1024


class MalformedTrustMessage(ProtocolViolation):
    """Bytes that claim to be a trust message but are not a valid one."""


@dataclass(frozen=True)
class CertificateRequest:
    """Please issue a certificate for the key in `csr_pem`; `token` is a one-time bootstrap token."""

    csr_pem: bytes
    token: str | None = None


@dataclass(frozen=True)
class CertificateIssued:
    cert_pem: bytes
    ca_pem: bytes


@dataclass(frozen=True)
class CertificateDenied:
    """A typed refusal: `code` is one of `node.trust.errors.DENIALS`."""

    code: str
    reason: str


@dataclass(frozen=True)
class RevocationsRequest:
    """Ask the CA for its revocation list."""


@dataclass(frozen=True)
class Revocations:
    """The CA's revocation list; `owners` maps revoked serials to the node they were issued to."""

    revoked: RevocationSet
    owners: dict[int, str] = field(default_factory=dict)


TrustMessage = CertificateRequest | CertificateIssued | CertificateDenied | RevocationsRequest | Revocations


def encode(message: TrustMessage) -> bytes:
    kind: str
    body: dict[str, Any]
    if isinstance(message, CertificateRequest):
        kind, body = "trust/csr", {"csr": message.csr_pem, "token": message.token}
    elif isinstance(message, CertificateIssued):
        kind, body = "trust/issued", {"cert": message.cert_pem, "ca": message.ca_pem}
    elif isinstance(message, CertificateDenied):
        kind, body = "trust/denied", {"code": message.code, "reason": message.reason}
    elif isinstance(message, RevocationsRequest):
        kind, body = "trust/revocations?", {}
    else:
        kind, body = "trust/revocations", {"revoked": message.revoked.to_record(), "owners": dict(message.owners)}
    return codec.pack([kind, body])


_HEAD = b"\x92"  # a msgpack array of two; then the kind as a short string (one header byte)


def is_trust_message(payload: bytes) -> bool:
    """Constant-time recognition (no decoding): `[<kind starting with trust/>, {...}]` (validated by `decode`)."""
    return len(payload) > 8 and payload[:1] == _HEAD and 0xA0 <= payload[1] <= 0xBF and payload[2:8] == b"trust/"


def _bytes(body: dict[str, Any], name: str, limit: int = MAX_PEM) -> bytes:
    value = body.get(name)
    if not isinstance(value, bytes) or not 0 < len(value) <= limit:
        raise MalformedTrustMessage(f"field {name!r} must be 1..{limit} bytes")
    return value


def _text(body: dict[str, Any], name: str, *, optional: bool = False, limit: int = 1000) -> str | None:
    value = body.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise MalformedTrustMessage(f"field {name!r} must be a string of at most {limit} characters")
    return value


def decode(payload: bytes) -> TrustMessage:
    try:
        body = codec.unpack(payload)
    except codec.DecodeError as exc:
        raise MalformedTrustMessage(str(exc)) from exc
    if not isinstance(body, list) or len(body) != 2 or not isinstance(body[1], dict):
        raise MalformedTrustMessage("a trust message is [kind, map]")
    kind, body = body
    if kind == "trust/csr":
        return CertificateRequest(_bytes(body, "csr"), _text(body, "token", optional=True, limit=200))
    if kind == "trust/issued":
        return CertificateIssued(_bytes(body, "cert"), _bytes(body, "ca"))
    if kind == "trust/denied":
        return CertificateDenied(str(_text(body, "code", limit=50)), str(_text(body, "reason")))
    if kind == "trust/revocations?":
        return RevocationsRequest()
    if kind == "trust/revocations":
        try:
            revoked = RevocationSet.from_record(body.get("revoked"))
        except Exception as exc:
            raise MalformedTrustMessage(f"bad revocation list: {exc}") from exc
        owners = body.get("owners", {})
        if not isinstance(owners, dict) or not all(
            isinstance(k, int) and isinstance(v, str) for k, v in owners.items()
        ):
            raise MalformedTrustMessage("owners must map serials to node ids")
        return Revocations(revoked, owners)
    raise MalformedTrustMessage(f"unknown trust message type {kind!r}")

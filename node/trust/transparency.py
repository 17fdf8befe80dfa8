"""Certificate transparency on the chain: the record of each issuance and revocation, and the rule
"a CA-issued certificate not recorded on the chain after a grace period is refused".

Pure functions; the engine puts records on the chain and passes back the set of recorded serials.
Times are epoch seconds (integers: the codec has no floats).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from node.trust.certs import CLOCK_SKEW, node_id_of_key
from node.trust.errors import NotOnChain, TrustError
from node.trust.verify import NodeIdentity

Action = Literal["issued", "revoked"]
DEFAULT_GRACE = dt.timedelta(minutes=10)


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, hex (how a CA certificate is pinned, like step-ca's root fingerprint)."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def issued_at(cert: x509.Certificate) -> dt.datetime:
    """When the CA signed it (issued certificates start CLOCK_SKEW in the past)."""
    return cert.not_valid_before_utc + CLOCK_SKEW


@dataclass(frozen=True)
class TransparencyRecord:
    action: Action
    serial: int
    node_id: str
    not_before: int  # for "revoked": when it was revoked
    not_after: int
    issuer: str  # fingerprint of the CA certificate

    def to_record(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "serial": self.serial,
            "node_id": self.node_id,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "issuer": self.issuer,
        }

    @staticmethod
    def from_record(record: object) -> TransparencyRecord:
        if not isinstance(record, dict):
            raise TrustError("a transparency record must be a map")
        try:
            action, serial, node_id = record["action"], record["serial"], record["node_id"]
            not_before, not_after, issuer = record["not_before"], record["not_after"], record["issuer"]
        except KeyError as exc:
            raise TrustError(f"a transparency record lacks {exc.args[0]!r}") from exc
        if action not in ("issued", "revoked") or not all(isinstance(v, int) for v in (serial, not_before, not_after)):
            raise TrustError("a transparency record has a bad action or non-integer serial/times")
        if not isinstance(node_id, str) or not isinstance(issuer, str):
            raise TrustError("a transparency record's node id and issuer are strings")
        return TransparencyRecord(action, serial, node_id, not_before, not_after, issuer)


def issued_record(cert: x509.Certificate, ca: x509.Certificate) -> TransparencyRecord:
    return TransparencyRecord(
        "issued",
        cert.serial_number,
        node_id_of_key(cert.public_key()),
        int(issued_at(cert).timestamp()),
        int(cert.not_valid_after_utc.timestamp()),
        certificate_fingerprint(ca),
    )


def revoked_record(
    serial: int, node_id: str, now: dt.datetime, ca: x509.Certificate, not_after: int = 0
) -> TransparencyRecord:
    return TransparencyRecord("revoked", serial, node_id, int(now.timestamp()), not_after, certificate_fingerprint(ca))


def check_on_chain(
    serial: int, issued: dt.datetime, recorded: Collection[int], now: dt.datetime, grace: dt.timedelta = DEFAULT_GRACE
) -> None:
    """Refuse (NotOnChain) a certificate issued more than `grace` ago whose serial the chain does not hold."""
    if serial not in recorded and now > issued + grace:
        raise NotOnChain(f"certificate {serial:x} is not on the chain {grace} after its issuance")


@dataclass(frozen=True)
class RecordedOnChain:
    """A peer policy: what `inner` accepts, provided its certificate is on the chain (after the grace).

    Self-signed certificates (bootstrap) pass through. Structurally a transport `PeerAuthenticator`.
    """

    inner: Any  # a PeerAuthenticator (node.transport imports node.trust, not the other way round)
    recorded: frozenset[int]
    grace: dt.timedelta = DEFAULT_GRACE

    def authenticate(
        self, certificate: x509.Certificate | None, chain: Sequence[x509.Certificate], now: dt.datetime
    ) -> NodeIdentity:
        identity: NodeIdentity = self.inner.authenticate(certificate, chain, now)
        if identity.ca_issued and certificate is not None:
            check_on_chain(identity.serial, issued_at(certificate), self.recorded, now, self.grace)
        return identity

"""Checking a peer's certificate: CA-issued (chain, validity, revocation, origin, key) or pinned.

Checks run in a fixed order so the reason given is the most useful one: issuer (foreign CA),
validity (expired / not yet valid), the X.509 path policy, revocation, then names (origin, node
id = fingerprint of the certificate's key) and finally membership. Only certificates issued
directly by the origin CA are accepted; extra certificates a peer sends in its chain are ignored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from node.trust.certs import URI_SCHEME, certificate_uris, check_origin, node_id_of_key, public_key_bytes
from node.trust.errors import (
    CertificateExpired,
    CertificateRevoked,
    ForeignCA,
    KeyMismatch,
    MalformedCertificate,
    MissingCertificate,
    NotAMember,
    NotPinned,
    TrustError,
    TrustUsageError,
    WrongOrigin,
)


@dataclass(frozen=True)
class NodeIdentity:
    """Who a verified certificate belongs to."""

    node_id: str
    origin: str
    public_key: bytes  # the form node.crypto fingerprints (raw Ed25519, or DER SPKI for RSA)
    serial: int
    not_after: dt.datetime
    ca_issued: bool


@dataclass(frozen=True)
class RevocationSet:
    """Revoked certificate serials and node ids (a revoked node id refuses every certificate of that key)."""

    serials: frozenset[int] = field(default_factory=frozenset)
    node_ids: frozenset[str] = field(default_factory=frozenset)

    def revoke_serial(self, serial: int) -> RevocationSet:
        return RevocationSet(self.serials | {serial}, self.node_ids)

    def revoke_node(self, node_id: str) -> RevocationSet:
        return RevocationSet(self.serials, self.node_ids | {node_id})

    def is_revoked(self, serial: int, node_id: str) -> bool:
        return serial in self.serials or node_id in self.node_ids

    def to_record(self) -> dict[str, list[int] | list[str]]:
        """A canonical, `node.codec`-encodable form (sorted lists)."""
        return {"serials": sorted(self.serials), "node_ids": sorted(self.node_ids)}

    @staticmethod
    def from_record(record: object) -> RevocationSet:
        if not isinstance(record, dict):
            raise TrustError("a revocation record must be a map")
        serials, node_ids = record.get("serials", []), record.get("node_ids", [])
        if not isinstance(serials, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in serials):
            raise TrustError("revoked serials must be a list of integers")
        if not isinstance(node_ids, list) or not all(isinstance(n, str) for n in node_ids):
            raise TrustError("revoked node ids must be a list of strings")
        return RevocationSet(frozenset(serials), frozenset(node_ids))


def _aware(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None:
        raise TrustUsageError("pass an aware datetime (UTC) as now")
    return now.astimezone(dt.UTC)


def _check_validity(cert: x509.Certificate, now: dt.datetime, what: str) -> None:
    if now < cert.not_valid_before_utc:
        raise CertificateExpired(f"{what} is not valid before {cert.not_valid_before_utc.isoformat()}")
    if now > cert.not_valid_after_utc:
        raise CertificateExpired(f"{what} expired at {cert.not_valid_after_utc.isoformat()}")


def identity_of(cert: x509.Certificate, *, ca_issued: bool) -> NodeIdentity:
    """Read origin and node id from the URI SAN and check the id is the fingerprint of the key."""
    uris = [u for u in certificate_uris(cert) if u.startswith(URI_SCHEME + "://")]
    if len(uris) != 1:
        raise WrongOrigin(f"expected exactly one {URI_SCHEME}:// URI name, found {len(uris)}")
    parts = urlsplit(uris[0])
    origin, node_id = parts.hostname or "", parts.path.lstrip("/")
    check_origin(origin)
    try:
        public = cert.public_key()
    except ValueError as exc:
        raise MalformedCertificate(f"unreadable public key: {exc}") from exc
    actual = node_id_of_key(public)
    if node_id != actual:
        raise KeyMismatch(f"certificate names node {node_id!r} but its key is node {actual!r}")
    return NodeIdentity(
        node_id=actual,
        origin=origin,
        public_key=public_key_bytes(public),
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
        ca_issued=ca_issued,
    )


def verify_issued(
    cert: x509.Certificate | None,
    *,
    ca: x509.Certificate,
    origin: str,
    now: dt.datetime,
    revoked: RevocationSet = RevocationSet(),
    members: Iterable[str] | None = None,
) -> NodeIdentity:
    """Accept a node certificate issued by `ca` for `origin`, valid at `now`, not revoked."""
    if cert is None:
        raise MissingCertificate("the peer presented no certificate")
    now = _aware(now)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ForeignCA(f"certificate is not issued by the CA of {origin}: {exc or 'bad signature'}") from exc
    _check_validity(ca, now, "the CA certificate")
    _check_validity(cert, now, "certificate")
    verifier = PolicyBuilder().store(Store([ca])).time(now).build_client_verifier()
    try:
        verifier.verify(cert, [])
    except VerificationError as exc:
        raise MalformedCertificate(f"certificate fails the X.509 policy: {exc}") from exc
    identity = identity_of(cert, ca_issued=True)
    if revoked.is_revoked(cert.serial_number, identity.node_id):
        raise CertificateRevoked(f"certificate {cert.serial_number:x} of node {identity.node_id} is revoked")
    if identity.origin != origin:
        raise WrongOrigin(f"certificate is for origin {identity.origin!r}, expected {origin!r}")
    if members is not None and identity.node_id not in set(members):
        raise NotAMember(f"node {identity.node_id} is not a member of {origin}")
    return identity


def verify_pinned(
    cert: x509.Certificate | None,
    *,
    allowed: Iterable[str],
    now: dt.datetime,
    origin: str | None = None,
) -> NodeIdentity:
    """Accept a self-signed node certificate whose key fingerprint is in `allowed`."""
    if cert is None:
        raise MissingCertificate("the peer presented no certificate")
    now = _aware(now)
    identity = identity_of(cert, ca_issued=False)
    if identity.node_id not in set(allowed):
        raise NotPinned(f"key of node {identity.node_id} is not in the pinned set")
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise MalformedCertificate(f"not a valid self-signed certificate: {exc or 'bad signature'}") from exc
    _check_validity(cert, now, "certificate")
    if origin is not None and identity.origin != origin:
        raise WrongOrigin(f"certificate is for origin {identity.origin!r}, expected {origin!r}")
    return identity

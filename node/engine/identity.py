"""The node's TLS identity and its peer policy, from what its home holds.

A home with a CA-issued certificate (`keys/node.crt`, signed by the origin CA in `config/ca.crt`)
presents it and accepts only peers the same CA issued for the origin's members; a home without
one presents a self-signed certificate and accepts only the pinned keys of its genesis members.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from node.crypto import PrivateKey
from node.engine.paths import ca_certificate_path, issued_certificate_path
from node.errors import ConfigError
from node.transport import IssuedByCA, PeerAuthenticator, PinnedKeys, TlsIdentity
from node.trust import load_certificate, verify_issued
from node.trust.errors import CertificateRefused


@dataclass(frozen=True)
class HomeIdentity:
    identity: TlsIdentity
    authenticator: PeerAuthenticator
    ca_issued: bool
    ca: x509.Certificate | None


def _read_cert(path: Path) -> x509.Certificate:
    try:
        return load_certificate(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def load_identity(
    home_root: Path, key: PrivateKey, origin: str, members: frozenset[str], now: dt.datetime
) -> HomeIdentity:
    cert_path, ca_path = issued_certificate_path(home_root), ca_certificate_path(home_root)
    if cert_path.exists() and ca_path.exists():
        ca = _read_cert(ca_path)
        cert = _read_cert(cert_path)
        try:
            identity = verify_issued(cert, ca=ca, origin=origin, now=now)
        except CertificateRefused as exc:
            raise ConfigError(f"{cert_path} is not usable: {exc}") from exc
        if identity.node_id != key.fingerprint:
            raise ConfigError(f"{cert_path} was issued for node {identity.node_id}, not this node's key")
        return HomeIdentity(
            TlsIdentity(cert, key.to_cryptography(), (ca,)),
            IssuedByCA(ca=ca, origin=origin, members=members),
            True,
            ca,
        )
    return HomeIdentity(
        TlsIdentity.self_signed(key, origin, now), PinnedKeys(allowed=members, origin=origin), False, None
    )

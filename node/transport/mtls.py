"""Mutual TLS for aioquic, with the peer's certificate checked inside the handshake.

Why this design: aioquic 1.7.2 cannot do mutual TLS through its public API. A server never asks
for a client certificate unless the private `tls.Context._request_client_certificate` is set, and
even then it checks only the client's proof of key possession, never its chain, and accepts an
empty certificate. Clients check chains with `cadata`/`cafile` and a DNS name, which does not fit
node identities (a URI SAN naming origin and node id, or a pinned key). So `MutualTlsConnection`
subclasses `QuicConnection` and, once aioquic has created the TLS context (`_initialize`):

- on a server, turns the certificate request on and wraps `_server_expect_finished`, which aioquic
  calls right after the client's CertificateVerify was checked (or after an empty Certificate);
- on a client, disables aioquic's own chain check and wraps `_client_handle_certificate_verify`
  so our check runs after the server's signature was verified.

Both call an injected `PeerAuthenticator`; a refusal raises a TLS alert (`certificate_required`,
`unknown_ca`, `certificate_expired`, `certificate_revoked`, `access_denied`, `bad_certificate`)
whose text is the reason, so the handshake fails before either side can send application data,
and the peer learns why. The alternative, an authentication exchange of our own after the
handshake, needs its own channel binding and replay protection; the hook is smaller and lets TLS
prove key possession. It relies on private names, so aioquic is pinned exactly and
tests/transport/test_transport_aioquic_api.py fails loudly if they move. As a second line, the
endpoint refuses any connection whose handshake completed without an authenticated peer.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aioquic import tls
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from cryptography import x509

from node.crypto import PrivateKey
from node.transport.errors import PeerRefused
from node.trust.certs import TlsPrivateKey, node_id_of_key, self_signed_identity
from node.trust.errors import (
    CertificateExpired,
    CertificateRefused,
    CertificateRevoked,
    ForeignCA,
    MissingCertificate,
    NotAMember,
    NotPinned,
)
from node.trust.verify import NodeIdentity, RevocationSet, verify_issued, verify_pinned

log = logging.getLogger(__name__)

ALPN = "node/1"
CONNECTION_ID_LENGTH = 8


@dataclass(frozen=True)
class TlsIdentity:
    """What we present in TLS: our certificate, its private key, and any chain to send with it."""

    certificate: x509.Certificate
    private_key: TlsPrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    @staticmethod
    def self_signed(key: PrivateKey, origin: str, now: dt.datetime) -> TlsIdentity:
        return TlsIdentity(self_signed_identity(key, origin, now), key.to_cryptography())

    @property
    def node_id(self) -> str:
        return node_id_of_key(self.certificate.public_key())


@dataclass(frozen=True)
class PeerInfo:
    """An authenticated peer, as handlers see it."""

    node_id: str
    origin: str
    address: tuple[str, int]
    ca_issued: bool
    not_after: dt.datetime


class PeerAuthenticator(Protocol):
    """Policy deciding whether a peer's certificate is acceptable; raises `CertificateRefused` if not."""

    def authenticate(
        self, certificate: x509.Certificate | None, chain: Sequence[x509.Certificate], now: dt.datetime
    ) -> NodeIdentity: ...


@dataclass(frozen=True)
class PinnedKeys:
    """Accept self-signed certificates whose key fingerprint (node id) is in `allowed`."""

    allowed: frozenset[str]
    origin: str | None = None

    def authenticate(
        self, certificate: x509.Certificate | None, chain: Sequence[x509.Certificate], now: dt.datetime
    ) -> NodeIdentity:
        return verify_pinned(certificate, allowed=self.allowed, now=now, origin=self.origin)


@dataclass(frozen=True)
class IssuedByCA:
    """Accept certificates issued by the origin CA (valid, not revoked, right origin, optionally a member)."""

    ca: x509.Certificate
    origin: str
    revoked: RevocationSet = RevocationSet()
    members: frozenset[str] | None = None

    def authenticate(
        self, certificate: x509.Certificate | None, chain: Sequence[x509.Certificate], now: dt.datetime
    ) -> NodeIdentity:
        return verify_issued(
            certificate, ca=self.ca, origin=self.origin, now=now, revoked=self.revoked, members=self.members
        )


@dataclass(frozen=True)
class AnyOf:
    """Accept what any of the policies accepts (e.g. pinned keys while CA certificates roll out)."""

    policies: tuple[PeerAuthenticator, ...]

    def authenticate(
        self, certificate: x509.Certificate | None, chain: Sequence[x509.Certificate], now: dt.datetime
    ) -> NodeIdentity:
        refusals: list[CertificateRefused] = []
        for policy in self.policies:
            try:
                return policy.authenticate(certificate, chain, now)
            except CertificateRefused as exc:
                refusals.append(exc)
        if not refusals:
            raise NotPinned("no policy configured")
        if len(refusals) == 1:
            raise refusals[0]
        raise type(refusals[-1])("; ".join(str(r) for r in refusals))


class _PolicyAlert(tls.Alert):
    """A TLS alert carrying our refusal; aioquic turns it into a CRYPTO_ERROR connection close."""

    def __init__(self, description: tls.AlertDescription, reason: str) -> None:
        super().__init__(reason)
        self.description = description


def alert_for(exc: Exception) -> _PolicyAlert:
    description = tls.AlertDescription.bad_certificate
    if isinstance(exc, MissingCertificate):
        description = tls.AlertDescription.certificate_required
    elif isinstance(exc, ForeignCA):
        description = tls.AlertDescription.unknown_ca
    elif isinstance(exc, CertificateExpired):
        description = tls.AlertDescription.certificate_expired
    elif isinstance(exc, CertificateRevoked):
        description = tls.AlertDescription.certificate_revoked
    elif isinstance(exc, NotPinned | NotAMember | PeerRefused):
        description = tls.AlertDescription.access_denied
    return _PolicyAlert(description, str(exc)[:200])


# Called with the peer's certificate and chain; returns who the peer is or raises CertificateRefused/PeerRefused.
CertificateCheck = Callable[[x509.Certificate | None, Sequence[x509.Certificate]], NodeIdentity]


class MutualTlsConnection(QuicConnection):
    """A `QuicConnection` whose TLS handshake demands and checks the peer's certificate."""

    def __init__(self, *, configuration: QuicConfiguration, check: CertificateCheck, **kwargs: Any) -> None:
        super().__init__(configuration=configuration, **kwargs)
        self._check_peer = check
        self.peer_identity: NodeIdentity | None = None
        self.refusal: str | None = None  # our own reason for refusing the peer, if we did

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        context = self.tls
        if self._is_client:
            handle_verify = context._client_handle_certificate_verify

            def client_handle_certificate_verify(input_buf: Any) -> None:
                handle_verify(input_buf)  # checks the server's signature over the handshake first
                self._run_check(context)

            context._client_handle_certificate_verify = client_handle_certificate_verify  # type: ignore[method-assign]
        else:
            context._request_client_certificate = True
            expect_finished = context._server_expect_finished

            def server_expect_finished() -> None:
                self._run_check(context)
                expect_finished()

            context._server_expect_finished = server_expect_finished  # type: ignore[method-assign]

    def _run_check(self, context: tls.Context) -> None:
        try:
            self.peer_identity = self._check_peer(context._peer_certificate, list(context._peer_certificate_chain))
        except (CertificateRefused, PeerRefused) as exc:
            self.refusal = str(exc)
            raise alert_for(exc) from exc
        except Exception as exc:  # a broken policy must refuse, never let the peer in
            log.exception("certificate check failed unexpectedly")
            self.refusal = f"certificate check failed: {type(exc).__name__}"
            raise _PolicyAlert(tls.AlertDescription.internal_error, "certificate check failed") from exc


def make_configuration(
    identity: TlsIdentity,
    *,
    is_client: bool,
    alpn: str = ALPN,
    idle_timeout: float = 30.0,
    max_datagram_size: int = 1200,
) -> QuicConfiguration:
    """A fresh configuration per connection, so a new identity only affects new connections."""
    configuration = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[alpn],
        # aioquic's own chain check wants a CA bundle and a DNS name; our check replaces it (see above).
        verify_mode=ssl.CERT_NONE,
        idle_timeout=idle_timeout,
        max_datagram_size=max_datagram_size,
        connection_id_length=CONNECTION_ID_LENGTH,
    )
    configuration.certificate = identity.certificate
    configuration.certificate_chain = list(identity.chain)
    configuration.private_key = identity.private_key
    return configuration

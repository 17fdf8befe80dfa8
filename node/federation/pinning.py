"""Accepting nodes of other origins by their origin CA's pinned key (TLSA `2 1 1`, DANE trust anchor).

A node of origin O presents its certificate and, in its TLS chain, the CA certificate of O. We
accept it when that CA certificate's SubjectPublicKeyInfo hashes to a pin we trust for O (from
`OriginResolver`, i.e. configured, or DNS when explicitly trusted), and the node certificate is
validly issued by it for O (`node.trust.verify_issued`: signature, validity, X.509 policy, URI SAN
naming O and the key's node id, revocation). A CA certificate is only a carrier of its key here:
its own self-signature and validity are checked by `verify_issued` too.

`PinnedOrigins` is a transport `PeerAuthenticator`; combine it with the node's own policy with
`node.transport.mtls.AnyOf((IssuedByCA(own_ca, own_origin), pinned_origins))`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509

from node.federation.records import ca_pin
from node.trust.errors import ForeignCA, MissingCertificate
from node.trust.verify import NodeIdentity, RevocationSet, identity_of, verify_issued


def pinned_ca_in_chain(chain: Sequence[x509.Certificate], pins: frozenset[bytes]) -> x509.Certificate | None:
    """The first certificate of `chain` whose key matches one of `pins`."""
    for candidate in chain:
        try:
            if ca_pin(candidate) in pins:
                return candidate
        except ValueError:  # an unreadable key in a chain is just not a match
            continue
    return None


def verify_pinned_origin(
    certificate: x509.Certificate | None,
    chain: Sequence[x509.Certificate],
    *,
    pins: Mapping[str, frozenset[bytes]],
    now: dt.datetime,
    revoked: RevocationSet = RevocationSet(),
) -> NodeIdentity:
    """Accept a node of any origin in `pins` whose certificate chains to a pinned CA key of that origin."""
    if certificate is None:
        raise MissingCertificate("the peer presented no certificate")
    claimed = identity_of(certificate, ca_issued=True).origin  # read the name first: it selects the pins
    origin_pins = pins.get(claimed)
    if not origin_pins:
        raise ForeignCA(f"no CA pin is known for origin {claimed!r}")
    ca = pinned_ca_in_chain(chain, origin_pins)
    if ca is None:
        raise ForeignCA(f"no CA certificate in the peer's chain matches the pin of origin {claimed!r}")
    return verify_issued(certificate, ca=ca, origin=claimed, now=now, revoked=revoked)


@dataclass(frozen=True)
class PinnedOrigins:
    """Transport policy: accept nodes of other origins by their pinned CA keys (origin -> pins)."""

    pins: Mapping[str, frozenset[bytes]]
    revoked: RevocationSet = field(default_factory=RevocationSet)

    def authenticate(
        self, certificate: x509.Certificate | None, chain: Sequence[x509.Certificate], now: dt.datetime
    ) -> NodeIdentity:
        return verify_pinned_origin(certificate, chain, pins=self.pins, now=now, revoked=self.revoked)

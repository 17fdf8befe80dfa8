"""Peer policies and the traffic gate of the self-signed phase.

While a node holds only its self-signed certificate it may talk to its pinned bootstrap peers and
to the CA node, and only bootstrap (trust) traffic. These policies are transport
`PeerAuthenticator`s (structurally); `bootstrap_gate` wraps a request handler so a peer that
authenticated without a CA certificate can send nothing but trust messages.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from node.errors import InvalidInput
from node.transport.endpoint import Handler
from node.transport.mtls import AnyOf, PeerAuthenticator, PeerInfo, PinnedKeys
from node.trust.errors import ForeignCA, NotPinned
from node.trust.messages import is_trust_message
from node.trust.transparency import certificate_fingerprint
from node.trust.verify import NodeIdentity, identity_of, verify_issued, verify_pinned


class BootstrapOnly(InvalidInput):
    """A peer without a CA certificate sent something other than bootstrap traffic."""


@dataclass(frozen=True)
class AnySelfSigned:
    """Any valid self-signed node certificate of `origin` (the CA service's door for token holders).

    TLS proves the peer holds the key; what it may do is decided by the gate and the CA core.
    """

    origin: str

    def authenticate(
        self, certificate: x509.Certificate | None, chain: Sequence[x509.Certificate], now: dt.datetime
    ) -> NodeIdentity:
        if certificate is None:
            return verify_pinned(None, allowed=(), now=now)  # raises MissingCertificate
        claimed = identity_of(certificate, ca_issued=False).node_id
        return verify_pinned(certificate, allowed={claimed}, now=now, origin=self.origin)


@dataclass(frozen=True)
class PinnedCAFingerprint:
    """A peer in `allowed` whose certificate is issued by the CA it sends in its chain, provided that CA
    certificate has the pinned SHA-256 fingerprint (how a new node recognises a CA node it has no CA file for)."""

    ca_fingerprint: str
    origin: str
    allowed: frozenset[str]

    def authenticate(
        self, certificate: x509.Certificate | None, chain: Sequence[x509.Certificate], now: dt.datetime
    ) -> NodeIdentity:
        pinned = self.ca_fingerprint.lower().replace(":", "")
        for ca in chain:
            if hmac.compare_digest(certificate_fingerprint(ca), pinned):
                identity = verify_issued(certificate, ca=ca, origin=self.origin, now=now, members=self.allowed)
                return identity
        raise ForeignCA("the peer sent no CA certificate with the pinned fingerprint")


def bootstrap_policy(origin: str, ca_node_id: str, ca_fingerprint: str, peers: frozenset[str] = frozenset()) -> AnyOf:
    """What a self-signed node accepts: the CA node and its pinned bootstrap peers (self-signed or CA-issued)."""
    allowed = frozenset(peers | {ca_node_id})
    policies: tuple[PeerAuthenticator, ...] = (
        PinnedKeys(allowed, origin),
        PinnedCAFingerprint(ca_fingerprint, origin, allowed),
    )
    return AnyOf(policies)


def bootstrap_gate(handler: Handler, trust_handler: Handler) -> Handler:
    """Route trust messages to `trust_handler`; everything else to `handler`, only from CA-issued peers."""

    async def gated(peer: PeerInfo, payload: bytes) -> bytes:
        if is_trust_message(payload):
            return await trust_handler(peer, payload)
        if not peer.ca_issued:
            raise BootstrapOnly(f"node {peer.node_id} has no CA certificate yet: bootstrap traffic only")
        return await handler(peer, payload)

    return gated


async def refuse_trust(peer: PeerInfo, payload: bytes) -> bytes:
    """The trust handler of a node that holds no CA."""
    raise NotPinned("this node is not a CA")

"""What the chain's transparency log says about peers, applied at every TLS handshake.

`ChainGate` holds the serials recorded on the chain and the revocations recorded there; `wrap`
puts it around any peer policy. A CA-issued peer certificate is then refused when the chain revoked
it, and, once the gate is armed (the node runs consensus, so records can land), when it is still
not recorded `grace` after the later of its issuance and the arming (so certificates issued before
the chain ran, e.g. offline-issued homes, get a full grace period too). Self-signed certificates
(bootstrap traffic) pass through unchanged.

Pure and synchronous: time comes in as `now`; the engine feeds the gate from applied blocks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509

from node.trust.errors import CertificateRevoked, NotOnChain
from node.trust.transparency import DEFAULT_GRACE, issued_at
from node.trust.verify import NodeIdentity, RevocationSet


@dataclass(frozen=True)
class Seen:
    """The CA-issued certificate a peer last presented to us."""

    serial: int
    issued: dt.datetime


class ChainGate:
    def __init__(self, grace: dt.timedelta = DEFAULT_GRACE) -> None:
        self.grace = grace
        self.recorded: set[int] = set()
        self.revoked = RevocationSet()
        self.armed_at: dt.datetime | None = None
        self.seen: dict[str, Seen] = {}
        self.refusals = 0

    # -- learning from the chain -------------------------------------------------------------------

    def add_recorded(self, serials: Iterable[int]) -> None:
        self.recorded.update(serials)

    def add_revoked(self, revoked: RevocationSet) -> list[str]:
        """Learn revocations; returns the peers we have seen whose certificate they revoke."""
        self.revoked = RevocationSet(self.revoked.serials | revoked.serials, self.revoked.node_ids | revoked.node_ids)
        return sorted(n for n, s in self.seen.items() if self.revoked.is_revoked(s.serial, n))

    def arm(self, now: dt.datetime) -> None:
        """Start refusing unrecorded certificates (their grace runs from now at the earliest)."""
        if self.armed_at is None:
            self.armed_at = now

    # -- judging -----------------------------------------------------------------------------------

    def due(self, issued: dt.datetime) -> dt.datetime | None:
        """When a certificate issued at `issued` must be on the chain (None: not armed yet)."""
        if self.armed_at is None:
            return None
        return max(issued, self.armed_at) + self.grace

    def check(self, node_id: str, serial: int, issued: dt.datetime, now: dt.datetime) -> None:
        if self.revoked.is_revoked(serial, node_id):
            raise CertificateRevoked(f"the chain records certificate {serial:x} of node {node_id} as revoked")
        due = self.due(issued)
        if serial not in self.recorded and due is not None and now > due:
            raise NotOnChain(f"certificate {serial:x} of node {node_id} is not on the chain after {self.grace}")

    def overdue(self, connected: Iterable[str], now: dt.datetime) -> dict[str, str]:
        """Connected peers to cut off now, with the reason (revoked, or unrecorded after the grace)."""
        out = {}
        for node_id in connected:
            seen = self.seen.get(node_id)
            if seen is None:
                continue
            try:
                self.check(node_id, seen.serial, seen.issued, now)
            except (CertificateRevoked, NotOnChain) as exc:
                out[node_id] = str(exc)
        return out

    def wrap(self, inner: object) -> GatedPolicy:
        return inner if isinstance(inner, GatedPolicy) else GatedPolicy(inner, self)


@dataclass(frozen=True)
class GatedPolicy:
    """A peer policy (structurally a transport `PeerAuthenticator`): `inner`, then the chain's say."""

    inner: object  # a PeerAuthenticator (node.transport imports node.trust, not the other way round)
    gate: ChainGate

    def authenticate(
        self, certificate: x509.Certificate | None, chain: Sequence[x509.Certificate], now: dt.datetime
    ) -> NodeIdentity:
        identity: NodeIdentity = self.inner.authenticate(certificate, chain, now)  # type: ignore[attr-defined]
        if identity.ca_issued and certificate is not None:
            issued = issued_at(certificate)
            try:
                self.gate.check(identity.node_id, identity.serial, issued, now)
            except (CertificateRevoked, NotOnChain):
                self.gate.refusals += 1
                raise
            self.gate.seen[identity.node_id] = Seen(identity.serial, issued)
        return identity

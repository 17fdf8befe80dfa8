"""The decisions of a node's certificate life, sans-IO: is a certificate usable, when to renew,
how long to back off, what a revocation list means for us and our peers.

`TrustManager` (the Trio shell) asks this class and does what it says; time comes in as `now`
and jitter from an injected source, so every decision is unit-tested without a network.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography import x509

from node.trust.certs import load_certificate
from node.trust.errors import CertificateRefused, TrustError, UntrustedCA
from node.trust.transparency import certificate_fingerprint
from node.trust.verify import RevocationSet, verify_issued

RENEW_FRACTION = 2 / 3  # like step-ca: renew when two thirds of the lifetime have passed


class Backoff:
    """Exponential backoff with proportional jitter (`jitter()` returns a number in [0, 1))."""

    def __init__(
        self,
        initial: float = 0.2,
        maximum: float = 10.0,
        factor: float = 2.0,
        spread: float = 0.2,
        jitter: Callable[[], float] = lambda: 0.5,
    ) -> None:
        self.initial, self.maximum, self.factor, self.spread = initial, maximum, factor, spread
        self._jitter = jitter
        self._next = initial
        self.failures = 0

    def next_delay(self) -> float:
        base = self._next
        self._next = min(self._next * self.factor, self.maximum)
        self.failures += 1
        return base * (1 - self.spread / 2 + self.spread * self._jitter())

    def reset(self) -> None:
        self._next = self.initial
        self.failures = 0


@dataclass(frozen=True)
class Credential:
    """A CA-issued certificate we hold, and when we should replace it."""

    certificate: x509.Certificate
    ca: x509.Certificate
    renew_at: dt.datetime

    @property
    def serial(self) -> int:
        return self.certificate.serial_number


@dataclass(frozen=True)
class RevocationUpdate:
    revoked: RevocationSet
    changed: bool
    disconnect: frozenset[str]  # peers to drop now (their node id, or one of their serials, was revoked)
    self_revoked: bool


def renew_time(cert: x509.Certificate, received: dt.datetime, fraction: float = RENEW_FRACTION) -> dt.datetime:
    """`fraction` of the way from when we received it to its expiry (not_before is back-dated for skew)."""
    start = max(received, cert.not_valid_before_utc)
    return start + (cert.not_valid_after_utc - start) * fraction


class TrustDecisions:
    def __init__(
        self,
        *,
        node_id: str,
        origin: str,
        ca_fingerprint: str,
        renew_fraction: float = RENEW_FRACTION,
        renew_jitter: Callable[[], float] = lambda: 0.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.node_id = node_id
        self.origin = origin
        self.ca_fingerprint = ca_fingerprint.lower().replace(":", "")
        self.renew_fraction = renew_fraction
        self._renew_jitter = renew_jitter  # in [0, 1): renew up to 10 % earlier, so a fleet does not renew at once
        self.backoff = backoff or Backoff()
        self.credential: Credential | None = None
        self.revoked = RevocationSet()
        self.retry_at: dt.datetime | None = None
        self.unreachable_reported = False

    @property
    def issued(self) -> bool:
        return self.credential is not None

    def check(self, cert: x509.Certificate, ca: x509.Certificate, now: dt.datetime) -> None:
        """Raise unless `cert` is ours, from the pinned CA, for our origin, valid now and not revoked."""
        if not hmac.compare_digest(certificate_fingerprint(ca), self.ca_fingerprint):
            raise UntrustedCA(f"the CA certificate {certificate_fingerprint(ca)[:16]}... is not the pinned CA")
        identity = verify_issued(cert, ca=ca, origin=self.origin, now=now, revoked=self.revoked)
        if identity.node_id != self.node_id:
            raise UntrustedCA(f"the CA issued a certificate for node {identity.node_id}, not for us ({self.node_id})")

    def usable(self, cert: x509.Certificate, ca: x509.Certificate, now: dt.datetime) -> bool:
        try:
            self.check(cert, ca, now)
        except (CertificateRefused, TrustError):
            return False
        return True

    def parse_issued(
        self, cert_pem: bytes, ca_pem: bytes, now: dt.datetime
    ) -> tuple[x509.Certificate, x509.Certificate]:
        cert, ca = load_certificate(cert_pem), load_certificate(ca_pem)
        self.check(cert, ca, now)
        return cert, ca

    def accept(self, cert: x509.Certificate, ca: x509.Certificate, now: dt.datetime) -> bool:
        """Hold a checked certificate; True when it is our first (the phase changes to ca-issued)."""
        self.check(cert, ca, now)
        first = self.credential is None
        fraction = self.renew_fraction * (1 - 0.1 * self._renew_jitter())
        self.credential = Credential(cert, ca, renew_time(cert, now, fraction))
        self.retry_at = None
        self.backoff.reset()
        self.unreachable_reported = False
        return first

    def next_request_at(self, now: dt.datetime) -> dt.datetime:
        """When to ask the CA next: now without a certificate, at the renewal time with one; later after failures."""
        due = now if self.credential is None else self.credential.renew_at
        if self.retry_at is not None:
            due = max(due, self.retry_at)
        return due

    def expires_at(self) -> dt.datetime | None:
        return None if self.credential is None else self.credential.certificate.not_valid_after_utc

    def expired(self, now: dt.datetime) -> bool:
        expiry = self.expires_at()
        return expiry is not None and now >= expiry

    def drop(self) -> None:
        """Give up the credential (it expired unrenewed): back to self-signed, asking the CA at once."""
        self.credential = None
        self.retry_at = None

    def failed(self, now: dt.datetime) -> tuple[float, bool]:
        """A request failed: (seconds until the next try, whether this is the first failure in a row)."""
        first = self.backoff.failures == 0
        delay = self.backoff.next_delay()
        self.retry_at = now + dt.timedelta(seconds=delay)
        return delay, first

    def learn(self, revoked: RevocationSet, owners: Mapping[int, str] = {}) -> RevocationUpdate:
        """Merge a revocation list; say whom to disconnect and whether our own certificate is revoked."""
        merged = RevocationSet(self.revoked.serials | revoked.serials, self.revoked.node_ids | revoked.node_ids)
        new_nodes = merged.node_ids - self.revoked.node_ids
        new_serials = merged.serials - self.revoked.serials
        changed = merged != self.revoked
        self.revoked = merged
        disconnect = set(new_nodes) | {owners[s] for s in new_serials if s in owners}
        self_revoked = False
        if self.credential is not None and merged.is_revoked(self.credential.serial, self.node_id):
            self_revoked = True
            self.credential = None  # back to self-signed; ask again (a revoked node id will be refused)
        disconnect.discard(self.node_id)
        return RevocationUpdate(merged, changed, frozenset(disconnect), self_revoked)

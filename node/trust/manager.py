"""`TrustManager`: the Trio shell that takes a node from its self-signed identity to a CA-issued
certificate and keeps it renewed and in step with revocations.

It asks the pinned CA node (address + node id pinned, CA certificate pinned by its SHA-256
fingerprint) for a certificate, retrying with backoff while the CA is unreachable (warning once,
then reporting progress), stores what it gets in the home, swaps it into the endpoint for new
connections, switches the peer policy to `IssuedByCA`, and calls `on_issued`. Every decision
(usable? when to renew? how long to wait? whom to drop?) is `TrustDecisions`'.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import trio
from cryptography import x509

from node.crypto import PrivateKey
from node.engine.paths import ca_certificate_path, issued_certificate_path
from node.errors import InvalidInput
from node.fileutil import write_atomically
from node.transport.connection import Address
from node.transport.endpoint import Endpoint, utc_now
from node.transport.errors import RequestTimeout, TransportError
from node.transport.mtls import AnyOf, IssuedByCA, PeerAuthenticator, TlsIdentity
from node.trust.bootstrap import bootstrap_policy
from node.trust.certs import certificate_pem, csr_pem, load_certificate, make_csr
from node.trust.errors import DENIALS, RequestDenied, TrustError
from node.trust.messages import (
    CertificateDenied,
    CertificateIssued,
    CertificateRequest,
    MalformedTrustMessage,
    Revocations,
    RevocationsRequest,
    decode,
    encode,
)
from node.trust.schedule import RENEW_FRACTION, Backoff, RevocationUpdate, TrustDecisions
from node.trust.transparency import DEFAULT_GRACE, RecordedOnChain
from node.trust.verify import RevocationSet

log = logging.getLogger(__name__)


class TrustManager:
    def __init__(
        self,
        *,
        endpoint: Endpoint,
        key: PrivateKey,
        origin: str,
        ca_node_id: str,
        ca_address: Address,
        ca_fingerprint: str,
        home: Path | None = None,
        token: str | None = None,
        bootstrap_peers: frozenset[str] = frozenset(),
        members: frozenset[str] | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        request_timeout: float = 5.0,
        revocation_poll: float | None = None,
        backoff: Backoff | None = None,
        renew_fraction: float = RENEW_FRACTION,
        renew_jitter: Callable[[], float] = lambda: 0.0,
        on_issued: Callable[[x509.Certificate], None] = lambda cert: None,
        on_renewed: Callable[[x509.Certificate], None] = lambda cert: None,
        on_revoked: Callable[[], None] = lambda: None,
        on_expired: Callable[[], None] = lambda: None,
        on_peer_revoked: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._key = key
        self.origin = origin
        self.ca_node_id = ca_node_id
        self.ca_address = ca_address
        self._home = home
        self._token = token
        self._bootstrap_peers = bootstrap_peers
        self._members = members
        self._clock = clock
        self._request_timeout = request_timeout
        self._revocation_poll = revocation_poll
        self.decisions = TrustDecisions(
            node_id=key.fingerprint,
            origin=origin,
            ca_fingerprint=ca_fingerprint,
            renew_fraction=renew_fraction,
            renew_jitter=renew_jitter,
            backoff=backoff,
        )
        self._on_issued = on_issued
        self._on_renewed = on_renewed
        self._on_revoked = on_revoked
        self._on_expired = on_expired
        self._on_peer_revoked = on_peer_revoked or (lambda node_id: endpoint.disconnect(node_id, "certificate revoked"))
        self._recorded: tuple[frozenset[int], dt.timedelta] | None = None
        # Applied to every policy set on the endpoint (the engine adds the chain's say: `ChainGate.wrap`).
        self.wrap_policy: Callable[[PeerAuthenticator], PeerAuthenticator] = lambda policy: policy
        self._wake = trio.Event()
        self.attempts = 0
        self.last_error: str | None = None
        self.transitions: list[tuple[str, dt.datetime]] = []  # ("self-signed" | "ca-issued" | "renewed", when)

    # -- public ------------------------------------------------------------------------------------

    @property
    def phase(self) -> str:
        return "ca-issued" if self.decisions.issued else "self-signed"

    def bootstrap_identity(self) -> TlsIdentity:
        return TlsIdentity.self_signed(self._key, self.origin, self._clock())

    def bootstrap_policy(self) -> AnyOf:
        return bootstrap_policy(self.origin, self.ca_node_id, self.decisions.ca_fingerprint, self._bootstrap_peers)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if not self._load_home():
            self._enter_self_signed()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._certificate_loop)
            if self._revocation_poll is not None:
                nursery.start_soon(self._revocation_loop, self._revocation_poll)
            task_status.started()

    async def request_certificate(self) -> tuple[x509.Certificate, x509.Certificate]:
        """One request to the CA; returns (certificate, CA certificate), both checked.

        Raises a `RequestDenied` subclass (the CA's typed refusal), `TransportError`, or `TrustError`.
        """
        token = None if self.decisions.issued else self._token
        request = CertificateRequest(csr_pem(make_csr(self._key, self.origin)), token)
        answer = await self._ask(encode(request))
        if isinstance(answer, CertificateDenied):
            raise DENIALS.get(answer.code, RequestDenied)(answer.reason)
        if not isinstance(answer, CertificateIssued):
            raise MalformedTrustMessage(f"the CA answered a certificate request with {type(answer).__name__}")
        return self.decisions.parse_issued(answer.cert_pem, answer.ca_pem, self._clock())

    async def fetch_revocations(self) -> RevocationUpdate:
        answer = await self._ask(encode(RevocationsRequest()))
        if not isinstance(answer, Revocations):
            raise MalformedTrustMessage(f"the CA answered a revocation query with {type(answer).__name__}")
        return self.apply_revocations(answer.revoked, answer.owners)

    def apply_revocations(self, revoked: RevocationSet, owners: Mapping[int, str] = {}) -> RevocationUpdate:
        """Learn revocations (from the CA or the chain): refuse revoked peers from now on and drop their connections."""
        update = self.decisions.learn(revoked, owners)
        if not update.changed:
            return update
        if update.self_revoked:
            log.warning("our certificate was revoked; back to the self-signed phase")
            if self._home is not None:  # never load it again at start
                cert_path = issued_certificate_path(self._home)
                if cert_path.exists():
                    os.replace(cert_path, cert_path.with_suffix(".crt.revoked"))
            self._enter_self_signed()
            self._on_revoked()
            self._wake.set()
        elif self.decisions.credential is not None:
            self.endpoint.set_authenticator(self.wrap_policy(self._issued_policy()))
        for node_id in sorted(update.disconnect):
            self._on_peer_revoked(node_id)
        return update

    def retry_now(self) -> None:
        """Ask the CA again now instead of waiting out the backoff (a missed phase deadline)."""
        if not self.decisions.issued:
            self.decisions.retry_at = None
            self._wake.set()

    def set_recorded_serials(self, serials: frozenset[int], grace: dt.timedelta = DEFAULT_GRACE) -> None:
        """From now on refuse CA-issued peers whose certificate is not on the chain `grace` after issuance."""
        self._recorded = (serials, grace)
        if self.decisions.credential is not None:
            self.endpoint.set_authenticator(self.wrap_policy(self._issued_policy()))

    # -- internals ---------------------------------------------------------------------------------

    async def _ask(self, payload: bytes) -> object:
        with trio.move_on_after(self._request_timeout) as scope:
            reply = await self.endpoint.request(self.ca_node_id, self.ca_address, payload)
        if scope.cancelled_caught:
            raise RequestTimeout(f"the CA {self.ca_node_id} did not answer within {self._request_timeout}s")
        return decode(reply)

    def set_members(self, members: frozenset[str]) -> PeerAuthenticator | None:
        """Accept these node ids from now on; the policy to install, or None while we hold no
        CA-issued credential (the next issuance builds it with these members)."""
        self._members = members
        return self._issued_policy() if self.decisions.credential is not None else None

    def _issued_policy(self) -> PeerAuthenticator:
        credential = self.decisions.credential
        assert credential is not None
        policy = IssuedByCA(credential.ca, self.origin, self.decisions.revoked, self._members)
        if self._recorded is None:
            return policy
        return RecordedOnChain(policy, *self._recorded)

    def _enter_self_signed(self) -> None:
        self.endpoint.set_identity(self.bootstrap_identity())
        self.endpoint.set_authenticator(self.wrap_policy(self.bootstrap_policy()))
        self.transitions.append(("self-signed", self._clock()))

    def _load_home(self) -> bool:
        """Use a certificate the home already holds, when it is still good for us."""
        if self._home is None:
            return False
        cert_path, ca_path = issued_certificate_path(self._home), ca_certificate_path(self._home)
        try:
            cert, ca = load_certificate(cert_path.read_bytes()), load_certificate(ca_path.read_bytes())
        except (OSError, TrustError):
            return False
        if not self.decisions.usable(cert, ca, self._clock()):
            return False
        self._install(cert, ca, store=False)
        return True

    def _install(self, cert: x509.Certificate, ca: x509.Certificate, *, store: bool = True) -> None:
        now = self._clock()
        first = self.decisions.accept(cert, ca, now)
        if store and self._home is not None:
            write_atomically(ca_certificate_path(self._home), certificate_pem(ca))
            write_atomically(issued_certificate_path(self._home), certificate_pem(cert))
        self.endpoint.set_identity(TlsIdentity(cert, self._key.to_cryptography(), (ca,)))
        self.endpoint.set_authenticator(self.wrap_policy(self._issued_policy()))
        credential = self.decisions.credential
        assert credential is not None
        if first:
            # Connections made while self-signed carry the bootstrap identity and policy: redo them.
            for peer in self.endpoint.peers():
                self.endpoint.disconnect(peer.node_id, "re-authenticating with a CA certificate")
            self.transitions.append(("ca-issued", now))
            log.info("CA certificate %x obtained; renewing at %s", cert.serial_number, credential.renew_at.isoformat())
            self._on_issued(cert)
        else:
            self.transitions.append(("renewed", now))
            log.info("CA certificate renewed (%x); next renewal at %s", cert.serial_number, credential.renew_at)
            self._on_renewed(cert)

    async def _certificate_loop(self) -> None:
        while True:
            now = self._clock()
            if self.decisions.expired(now):
                log.error("our CA certificate expired before it could be renewed; back to the self-signed phase")
                self.decisions.drop()
                self._enter_self_signed()
                self._on_expired()
            due = self.decisions.next_request_at(now)
            expiry = self.decisions.expires_at()
            wait = (min(due, expiry) if expiry is not None else due) - now
            if wait.total_seconds() > 0:
                with trio.move_on_after(wait.total_seconds()):
                    await self._wake.wait()
                self._wake = trio.Event()
                continue
            self.attempts += 1
            try:
                cert, ca = await self.request_certificate()
            except (TransportError, InvalidInput) as exc:
                self._failed(exc)
                continue
            self._install(cert, ca)

    def _failed(self, exc: Exception) -> None:
        delay, first = self.decisions.failed(self._clock())
        denied = isinstance(exc, RequestDenied)
        self.last_error = f"{'the CA refused' if denied else 'CA unreachable'}: {exc}"
        if first:
            log.warning("%s; retrying with backoff", self.last_error)
        else:
            log.info("certificate attempt %d failed (%s); next in %.2fs", self.attempts, exc, delay)

    async def _revocation_loop(self, every: float) -> None:
        while True:
            await trio.sleep(every)
            try:
                await self.fetch_revocations()
            except (TransportError, InvalidInput) as exc:
                log.debug("revocation list not fetched: %s", exc)

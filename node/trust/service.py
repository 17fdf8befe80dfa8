"""The CA node's side: answering certificate requests over the transport, and keeping the node's
own peer policy in step with revocations.

`CaService.handler` is a transport handler for trust messages (put it behind `bootstrap_gate`);
the decisions are `CertificateAuthority`'s. The CA node presents a certificate of its own CA
(`own_identity`), so CA-issued nodes accept it under a plain `IssuedByCA` policy.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import trio

from node.crypto import PrivateKey
from node.transport.endpoint import Endpoint, utc_now
from node.transport.mtls import AnyOf, IssuedByCA, PeerAuthenticator, PeerInfo, TlsIdentity
from node.trust.authority import CertificateAuthority
from node.trust.bootstrap import AnySelfSigned
from node.trust.certs import make_csr
from node.trust.errors import TrustUsageError
from node.trust.messages import CertificateDenied, CertificateIssued, decode, encode
from node.trust.schedule import renew_time
from node.trust.transparency import issued_at

log = logging.getLogger(__name__)


class CaService:
    def __init__(
        self,
        authority: CertificateAuthority,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        members: frozenset[str] | None = None,
    ) -> None:
        self.authority = authority
        self._clock = clock
        self._members = members
        self.endpoint: Endpoint | None = None
        self.refusals: list[CertificateDenied] = []  # what we refused, for logs and tests
        # Applied to every policy set on the endpoint (the engine adds the chain's say: `ChainGate.wrap`).
        self.wrap_policy: Callable[[PeerAuthenticator], PeerAuthenticator] = lambda policy: policy

    def own_identity(self, key: PrivateKey, lifetime: dt.timedelta | None = None) -> TlsIdentity:
        """A certificate of this CA for the CA node's own key (sent with the CA certificate)."""
        cert = self.authority.sign(make_csr(key, self.authority.origin), self._clock(), lifetime)
        return TlsIdentity(cert, key.to_cryptography(), (self.authority.ca.certificate,))

    async def run(self, key: PrivateKey, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the CA node's own certificate fresh on the attached endpoint (renewed at two thirds of its life)."""
        if self.endpoint is None:
            raise TrustUsageError("attach the CA service to an endpoint before running it")
        if not self._presents_own(key):  # keep a certificate of ours already presented (one issuance, one record)
            self.endpoint.set_identity(self.own_identity(key))
        task_status.started()
        while True:
            current = self.endpoint.identity.certificate
            renew_at = renew_time(current, issued_at(current))
            await trio.sleep(max((renew_at - self._clock()).total_seconds(), 0.0))
            self.endpoint.set_identity(self.own_identity(key))

    def _presents_own(self, key: PrivateKey) -> bool:
        assert self.endpoint is not None
        identity = self.endpoint.identity
        cert = identity.certificate
        return (
            identity.node_id == key.fingerprint
            and identity.chain[:1] == (self.authority.ca.certificate,)
            and cert.serial_number in self.authority.issued
            and cert.not_valid_after_utc > self._clock()
        )

    def set_members(self, members: frozenset[str]) -> PeerAuthenticator:
        """Accept these node ids from now on (committed membership changes); the policy to install."""
        self._members = members
        return self.policy()

    def policy(self) -> PeerAuthenticator:
        """Peers the CA node accepts: CA-issued ones (not revoked), and self-signed ones for bootstrap traffic."""
        issued = IssuedByCA(self.authority.ca.certificate, self.authority.origin, self.authority.revoked, self._members)
        return AnyOf((issued, AnySelfSigned(self.authority.origin)))

    def attach(self, endpoint: Endpoint) -> None:
        """Keep `endpoint`'s policy in step with this CA's revocations."""
        self.endpoint = endpoint
        endpoint.set_authenticator(self.wrap_policy(self.policy()))

    async def handler(self, peer: PeerInfo, payload: bytes) -> bytes:
        message = decode(payload)  # MalformedTrustMessage goes back to the caller as a RemoteError
        answer = self.authority.handle(peer.node_id, peer.ca_issued, message, self._clock())
        if isinstance(answer, CertificateDenied):
            log.info("refused a certificate request from %s: %s", peer.node_id, answer.reason)
            self.refusals.append(answer)
        elif isinstance(answer, CertificateIssued):
            log.info("issued a certificate to %s", peer.node_id)
        return encode(answer)

    def revoke_node(self, node_id: str) -> None:
        self.authority.revoke_node(node_id, self._clock())
        self._apply(frozenset({node_id}))

    def revoke_serial(self, serial: int) -> None:
        self.authority.revoke_serial(serial, self._clock())
        self._apply(frozenset({self.authority.issued[serial].node_id}))

    def _apply(self, nodes: frozenset[str]) -> None:
        if self.endpoint is None:
            return
        self.endpoint.set_authenticator(self.wrap_policy(self.policy()))
        for node_id in nodes:
            self.endpoint.disconnect(node_id, "certificate revoked")

"""The origin CA as a service core: who may get a certificate, unique serials, revocations.

Sans-IO: `handle(requester, message, now)` takes the TLS-authenticated requester (its node id and
whether it presented a certificate of this CA) and a decoded message, and returns the answer.
Randomness (serials) comes from an injected `rng`. A requester is authorised by a one-time token,
by its key being in the member list, or (renewal) by already holding a certificate of this CA.
The CSR must be for the requester's own TLS key and name only this origin.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509

from node.trust.certs import DEFAULT_ISSUED_LIFETIME, OriginCA, certificate_pem, load_csr, node_id_of_key
from node.trust.errors import (
    BadRequest,
    CsrForeignOrigin,
    CsrKeyMismatch,
    KeyMismatch,
    NotAuthorised,
    RequestDenied,
    RequesterRevoked,
    TrustUsageError,
)
from node.trust.messages import (
    CertificateDenied,
    CertificateIssued,
    CertificateRequest,
    Revocations,
    RevocationsRequest,
    TrustMessage,
)
from node.trust.tokens import Random, TokenStore
from node.trust.transparency import TransparencyRecord, issued_record, revoked_record
from node.trust.verify import RevocationSet

SERIAL_BITS = 128


@dataclass(frozen=True)
class IssuedEntry:
    """A certificate this CA signed (epoch seconds)."""

    node_id: str
    not_before: int
    not_after: int


def csr_origins(csr: x509.CertificateSigningRequest) -> set[str]:
    """Every origin the CSR's names point at (URI `node://<origin>/..` and DNS `<id>.<origin>`)."""
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    except ValueError as exc:
        raise BadRequest(f"unreadable CSR extensions: {exc}") from exc
    origins = {urlsplit(str(u)).hostname or "" for u in san.get_values_for_type(x509.UniformResourceIdentifier)}
    origins |= {str(d).partition(".")[2] for d in san.get_values_for_type(x509.DNSName)}
    return origins


class CertificateAuthority:
    def __init__(
        self,
        ca: OriginCA,
        *,
        rng: Random,
        tokens: TokenStore | None = None,
        members: Iterable[str] = (),
        revoked: RevocationSet = RevocationSet(),
        issued: dict[int, IssuedEntry] | None = None,
        lifetime: dt.timedelta = DEFAULT_ISSUED_LIFETIME,
    ) -> None:
        self.ca = ca
        self.tokens = tokens if tokens is not None else TokenStore()
        self.members = frozenset(members)
        self.revoked = revoked
        self.issued: dict[int, IssuedEntry] = dict(issued or {})  # every certificate we signed, by serial
        self.lifetime = lifetime
        self._rng = rng
        self.records: list[TransparencyRecord] = []  # for the chain; the owner drains it
        self.signed: list[x509.Certificate] = []  # what we issued, for the chain's log; the owner drains it
        self.on_change: Callable[[], None] = lambda: None  # persistence hook

    @property
    def origin(self) -> str:
        return self.ca.origin

    # -- issuing -----------------------------------------------------------------------------------

    def new_serial(self) -> int:
        while True:
            serial = int.from_bytes(self._rng(SERIAL_BITS // 8), "big")
            if serial > 0 and serial not in self.issued:
                return serial

    def sign(
        self, csr: x509.CertificateSigningRequest, now: dt.datetime, lifetime: dt.timedelta | None = None
    ) -> x509.Certificate:
        """Issue without request checks (offline issuance by the CA operator, the CA node's own certificate)."""
        serial = self.new_serial()
        cert = self.ca.issue(csr, now, lifetime or self.lifetime, serial=serial)
        record = issued_record(cert, self.ca.certificate)
        self.issued[serial] = IssuedEntry(record.node_id, record.not_before, record.not_after)
        self.records.append(record)
        self.signed.append(cert)
        self.on_change()
        return cert

    def check_request(
        self, requester: str, renewing: bool, request: CertificateRequest, now: dt.datetime
    ) -> tuple[x509.CertificateSigningRequest, str | None]:
        """Everything but signing; returns the CSR and the token hash to use up. Raises RequestDenied/BadRequest."""
        csr = load_csr(request.csr_pem)
        if not csr.is_signature_valid:
            raise BadRequest("the CSR signature is invalid (no proof of key possession)")
        foreign = csr_origins(csr) - {self.origin}
        if foreign:
            raise CsrForeignOrigin(f"the CSR names origin {sorted(foreign)[0]!r}; this CA serves {self.origin!r}")
        try:
            key_id = node_id_of_key(csr.public_key())
        except KeyMismatch as exc:
            raise BadRequest(str(exc)) from exc
        if key_id != requester:
            raise CsrKeyMismatch(f"the CSR is for key {key_id}, not the requester's TLS key {requester}")
        if requester in self.revoked.node_ids:
            raise RequesterRevoked(f"node {requester} is revoked")
        if request.token is not None:
            return csr, self.tokens.check(request.token, now)
        if requester in self.members or renewing:
            return csr, None
        raise NotAuthorised(f"node {requester} gave no token and is not in the member list")

    def request(
        self, requester: str, renewing: bool, request: CertificateRequest, now: dt.datetime
    ) -> CertificateIssued:
        csr, token = self.check_request(requester, renewing, request, now)
        if token is not None:
            self.tokens.use(token)  # used up only by a request that succeeds
        cert = self.sign(csr, now)
        return CertificateIssued(certificate_pem(cert), self.ca.certificate_pem())

    def handle(self, requester: str, renewing: bool, message: TrustMessage, now: dt.datetime) -> TrustMessage:
        """Answer one request; refusals come back as `CertificateDenied`, never as exceptions."""
        if isinstance(message, CertificateRequest):
            try:
                return self.request(requester, renewing, message, now)
            except RequestDenied as exc:
                return CertificateDenied(exc.code, str(exc))
            except BadRequest as exc:
                return CertificateDenied(RequestDenied.code, str(exc))
        if isinstance(message, RevocationsRequest):
            return self.revocations()
        return CertificateDenied(RequestDenied.code, f"the CA does not answer {type(message).__name__}")

    # -- revoking ----------------------------------------------------------------------------------

    def revoke_serial(self, serial: int, now: dt.datetime) -> None:
        if serial not in self.issued:
            raise TrustUsageError(f"serial {serial} was not issued by this CA")
        self.revoked = self.revoked.revoke_serial(serial)
        entry = self.issued[serial]
        self.records.append(revoked_record(serial, entry.node_id, now, self.ca.certificate, entry.not_after))
        self.on_change()

    def revoke_node(self, node_id: str, now: dt.datetime) -> list[int]:
        """Revoke a node (every certificate of its key, now and later); returns its known serials."""
        self.revoked = self.revoked.revoke_node(node_id)
        serials = sorted(s for s, e in self.issued.items() if e.node_id == node_id)
        for serial in serials:
            entry = self.issued[serial]
            self.records.append(revoked_record(serial, node_id, now, self.ca.certificate, entry.not_after))
        self.on_change()
        return serials

    def revocations(self) -> Revocations:
        owners = {s: self.issued[s].node_id for s in self.revoked.serials if s in self.issued}
        return Revocations(self.revoked, owners)

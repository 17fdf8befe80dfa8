"""Building certificates: the origin CA, a node's self-signed identity, CSRs and CA issuance.

Names: a node certificate carries the URI SAN `node://<origin>/<node_id>` (what we check) and the
DNS SAN `<node_id>.<origin>` (what TLS tooling shows). The node id is always the fingerprint of the
certificate's own public key (`node.crypto.fingerprint`), so a certificate cannot claim another
node's id. The origin CA key is ECDSA P-256: `cryptography`'s X.509 verifier refuses Ed25519 CA
keys, while node keys stay Ed25519 (or RSA). Everything here is pure: time comes in as `now`, and
serial numbers are derived from the inputs rather than drawn from a global random source.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.crypto import PrivateKey, fingerprint
from node.trust.errors import (
    BadRequest,
    KeyMismatch,
    MalformedCertificate,
    TrustUsageError,
    WrongOrigin,
)

URI_SCHEME = "node"
DEFAULT_ISSUED_LIFETIME = dt.timedelta(hours=24)
DEFAULT_SELF_SIGNED_LIFETIME = dt.timedelta(days=365)
DEFAULT_CA_LIFETIME = dt.timedelta(days=5 * 365)
CLOCK_SKEW = dt.timedelta(minutes=5)  # issued certificates start a little in the past

_ORIGIN_RE = re.compile(r"^(?=.{1,200}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")

NodePublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey
TlsPrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def check_origin(origin: str) -> str:
    """An origin is a lower-case DNS name (`alpha.example`)."""
    if not _ORIGIN_RE.match(origin):
        raise WrongOrigin(f"{origin!r} is not a valid origin name (a lower-case DNS name)")
    return origin


def _aware(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None:
        raise TrustUsageError("pass an aware datetime (UTC) as now")
    return now.astimezone(dt.UTC)


def public_key_bytes(key: object) -> bytes:
    """The wire form `node.crypto` fingerprints: raw 32 bytes for Ed25519, DER SPKI for RSA."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    raise KeyMismatch(f"a node key must be Ed25519 or RSA, not {type(key).__name__}")


def node_id_of_key(key: object) -> str:
    return fingerprint(public_key_bytes(key))


def node_uri(origin: str, node_id: str) -> str:
    return f"{URI_SCHEME}://{origin}/{node_id}"


def node_dns_name(origin: str, node_id: str) -> str:
    return f"{node_id}.{origin}"


def _serial(*parts: bytes) -> int:
    digest = hashlib.sha256(b"\x00".join(parts)).digest()
    return (int.from_bytes(digest[:20], "big") >> 1) | 1  # positive, at most 159 bits, never zero


def _node_names(origin: str, node_id: str) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName(
        [x509.UniformResourceIdentifier(node_uri(origin, node_id)), x509.DNSName(node_dns_name(origin, node_id))]
    )


def _sign_algorithm(key: TlsPrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class OriginCA:
    """The certificate authority of one origin: an ECDSA P-256 key and its self-signed certificate."""

    origin: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @staticmethod
    def create(
        origin: str, key: ec.EllipticCurvePrivateKey, now: dt.datetime, lifetime: dt.timedelta = DEFAULT_CA_LIFETIME
    ) -> OriginCA:
        """A new CA for `origin`, name-constrained to the origin's DNS names.

        URI constraints would fit better but `cryptography`'s verifier refuses them ("unsupported name
        constraint"); the URI SAN is checked by `verify_issued` instead.
        """
        check_origin(origin)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise TrustUsageError("the origin CA key must be ECDSA P-256")
        now = _aware(now)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, f"{origin} node CA"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, origin),
            ]
        )
        public = key.public_key()
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(_serial(b"ca", der, now.isoformat().encode()))
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.NameConstraints(
                    permitted_subtrees=[x509.DNSName(origin)],
                    excluded_subtrees=None,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return OriginCA(origin, key, cert)

    @staticmethod
    def generate(origin: str, now: dt.datetime, lifetime: dt.timedelta = DEFAULT_CA_LIFETIME) -> OriginCA:
        return OriginCA.create(origin, ec.generate_private_key(ec.SECP256R1()), now, lifetime)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def certificate_pem(self) -> bytes:
        return _pem(self.certificate)

    @staticmethod
    def from_pem(key_pem: bytes, certificate_pem: bytes) -> OriginCA:
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"not a usable CA key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise BadRequest("the CA key must be ECDSA P-256")
        cert = load_certificate(certificate_pem)
        if cert.public_key() != key.public_key():
            raise BadRequest("the CA certificate does not belong to the CA key")
        names = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        if not names:
            raise BadRequest("the CA certificate names no origin")
        return OriginCA(check_origin(str(names[0].value)), key, cert)

    def issue(
        self,
        csr: x509.CertificateSigningRequest,
        now: dt.datetime,
        lifetime: dt.timedelta = DEFAULT_ISSUED_LIFETIME,
        serial: int | None = None,
    ) -> x509.Certificate:
        """Issue a node certificate for the key in `csr` (names are set by the CA, not taken from the CSR).

        `serial` defaults to one derived from the key and `now`; a CA service keeping a register of
        serials passes its own (positive, below 2**159).
        """
        now = _aware(now)
        if not csr.is_signature_valid:
            raise BadRequest("the CSR signature is invalid (no proof of key possession)")
        public = csr.public_key()
        try:
            node_id = node_id_of_key(public)
        except KeyMismatch as exc:
            raise BadRequest(str(exc)) from exc
        requested = _uris(csr.extensions)
        if requested and requested != [node_uri(self.origin, node_id)]:
            raise BadRequest(f"the CSR asks for {requested}, not {node_uri(self.origin, node_id)}")
        if serial is not None and not 0 < serial < 2**159:
            raise TrustUsageError("a certificate serial must be positive and below 2**159")
        not_after = min(now + lifetime, self.certificate.not_valid_after_utc)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
            .issuer_name(self.certificate.subject)
            .public_key(public)
            .serial_number(
                serial if serial is not None else _serial(b"node", public_key_bytes(public), now.isoformat().encode())
            )
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(_node_names(self.origin, node_id), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )


def _uris(extensions: x509.Extensions) -> list[str]:
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(u) for u in san.get_values_for_type(x509.UniformResourceIdentifier)]


def certificate_uris(cert: x509.Certificate) -> list[str]:
    try:
        return _uris(cert.extensions)
    except ValueError as exc:  # an extension cryptography cannot parse
        raise MalformedCertificate(f"unreadable extensions: {exc}") from exc


def self_signed_identity(
    key: PrivateKey, origin: str, now: dt.datetime, lifetime: dt.timedelta = DEFAULT_SELF_SIGNED_LIFETIME
) -> x509.Certificate:
    """A node's own certificate for its key, used before the origin CA has issued one (pinned-key mode)."""
    check_origin(origin)
    now = _aware(now)
    private = key.to_cryptography()
    public = private.public_key()
    node_id = key.fingerprint
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(_serial(b"self", key.public, now.isoformat().encode()))
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(_node_names(origin, node_id), critical=False)
        .sign(private, _sign_algorithm(private))
    )


def make_csr(key: PrivateKey, origin: str) -> x509.CertificateSigningRequest:
    """A CSR for a node key, asking for the node's URI in `origin`."""
    check_origin(origin)
    private = key.to_cryptography()
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key.fingerprint)]))
        .add_extension(_node_names(origin, key.fingerprint), critical=False)
        .sign(private, _sign_algorithm(private))
    )


def certificate_pem(cert: x509.Certificate) -> bytes:
    return _pem(cert)


def load_certificate(data: bytes) -> x509.Certificate:
    """One certificate from PEM or DER."""
    try:
        if data.lstrip().startswith(b"-----"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise MalformedCertificate(f"not a certificate: {exc}") from exc


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    try:
        if data.lstrip().startswith(b"-----"):
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise BadRequest(f"not a certificate signing request: {exc}") from exc


def csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)

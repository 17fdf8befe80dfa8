"""Certificate primitives: real certificates, time passed in."""

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from node.crypto import PrivateKey
from node.trust import (
    OriginCA,
    RevocationSet,
    certificate_pem,
    csr_pem,
    load_certificate,
    load_csr,
    make_csr,
    node_uri,
    self_signed_identity,
    verify_issued,
    verify_pinned,
)
from node.trust.errors import (
    BadRequest,
    CertificateExpired,
    CertificateRevoked,
    ForeignCA,
    KeyMismatch,
    MalformedCertificate,
    MissingCertificate,
    NotAMember,
    NotPinned,
    TrustUsageError,
    WrongOrigin,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
ORIGIN = "alpha.example"


@pytest.fixture(scope="module")
def ca() -> OriginCA:
    return OriginCA.generate(ORIGIN, NOW - dt.timedelta(days=1))


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.from_seed(b"node-1")


def test_issue_and_verify_names_the_node(ca, key):
    cert = ca.issue(make_csr(key, ORIGIN), NOW)
    ident = verify_issued(cert, ca=ca.certificate, origin=ORIGIN, now=NOW)
    assert ident.node_id == key.fingerprint
    assert ident.origin == ORIGIN
    assert ident.public_key == key.public
    assert ident.ca_issued
    assert cert.not_valid_after_utc == NOW + dt.timedelta(hours=24)
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert node_uri(ORIGIN, key.fingerprint) in [
        str(u) for u in uris.get_values_for_type(x509.UniformResourceIdentifier)
    ]
    assert f"{key.fingerprint}.{ORIGIN}" in uris.get_values_for_type(x509.DNSName)


def test_rsa_node_key_is_issued(ca):
    key = PrivateKey.generate("rsa-pss")
    cert = ca.issue(make_csr(key, ORIGIN), NOW)
    assert verify_issued(cert, ca=ca.certificate, origin=ORIGIN, now=NOW).node_id == key.fingerprint


def test_ca_key_must_be_p256():
    with pytest.raises(TrustUsageError):
        OriginCA.create(ORIGIN, ec.generate_private_key(ec.SECP384R1()), NOW)


def test_naive_time_is_refused(ca, key):
    with pytest.raises(TrustUsageError):
        ca.issue(make_csr(key, ORIGIN), NOW.replace(tzinfo=None))


def test_foreign_ca(ca, key):
    other = OriginCA.generate(ORIGIN, NOW - dt.timedelta(days=1))
    cert = other.issue(make_csr(key, ORIGIN), NOW)
    with pytest.raises(ForeignCA):
        verify_issued(cert, ca=ca.certificate, origin=ORIGIN, now=NOW)


def test_expired_and_not_yet_valid(ca, key):
    cert = ca.issue(make_csr(key, ORIGIN), NOW)
    with pytest.raises(CertificateExpired, match="expired"):
        verify_issued(cert, ca=ca.certificate, origin=ORIGIN, now=NOW + dt.timedelta(hours=25))
    with pytest.raises(CertificateExpired, match="not valid before"):
        verify_issued(cert, ca=ca.certificate, origin=ORIGIN, now=NOW - dt.timedelta(hours=1))


def test_revoked_by_serial_and_by_node(ca, key):
    cert = ca.issue(make_csr(key, ORIGIN), NOW)
    with pytest.raises(CertificateRevoked):
        verify_issued(
            cert, ca=ca.certificate, origin=ORIGIN, now=NOW, revoked=RevocationSet().revoke_serial(cert.serial_number)
        )
    with pytest.raises(CertificateRevoked):
        verify_issued(
            cert, ca=ca.certificate, origin=ORIGIN, now=NOW, revoked=RevocationSet().revoke_node(key.fingerprint)
        )
    other = RevocationSet().revoke_serial(cert.serial_number + 1).revoke_node("0" * 20)
    assert verify_issued(cert, ca=ca.certificate, origin=ORIGIN, now=NOW, revoked=other).node_id == key.fingerprint


def test_wrong_origin(key):
    beta = OriginCA.generate("beta.example", NOW - dt.timedelta(days=1))
    cert = beta.issue(make_csr(key, "beta.example"), NOW)
    with pytest.raises(WrongOrigin):
        verify_issued(cert, ca=beta.certificate, origin=ORIGIN, now=NOW)


def test_csr_for_another_origin_is_refused(ca, key):
    with pytest.raises(BadRequest):
        ca.issue(make_csr(key, "beta.example"), NOW)


def test_membership(ca, key):
    cert = ca.issue(make_csr(key, ORIGIN), NOW)
    with pytest.raises(NotAMember):
        verify_issued(cert, ca=ca.certificate, origin=ORIGIN, now=NOW, members={"0" * 20})
    assert verify_issued(cert, ca=ca.certificate, origin=ORIGIN, now=NOW, members={key.fingerprint})


def test_missing_certificate(ca):
    with pytest.raises(MissingCertificate):
        verify_issued(None, ca=ca.certificate, origin=ORIGIN, now=NOW)
    with pytest.raises(MissingCertificate):
        verify_pinned(None, allowed=set(), now=NOW)


def test_pinned_self_signed(key):
    cert = self_signed_identity(key, ORIGIN, NOW)
    assert verify_pinned(cert, allowed={key.fingerprint}, now=NOW, origin=ORIGIN).node_id == key.fingerprint
    with pytest.raises(NotPinned):
        verify_pinned(cert, allowed={"0" * 20}, now=NOW)
    with pytest.raises(WrongOrigin):
        verify_pinned(cert, allowed={key.fingerprint}, now=NOW, origin="beta.example")
    with pytest.raises(CertificateExpired):
        verify_pinned(cert, allowed={key.fingerprint}, now=NOW + dt.timedelta(days=400))


def test_self_signed_is_not_ca_issued(ca, key):
    with pytest.raises(ForeignCA):
        verify_issued(self_signed_identity(key, ORIGIN, NOW), ca=ca.certificate, origin=ORIGIN, now=NOW)


def test_certificate_claiming_another_key_is_refused(ca, key):
    # A CA-signed certificate whose URI names a node id that is not its key's fingerprint.
    victim = PrivateKey.from_seed(b"victim")
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, victim.fingerprint)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.to_cryptography().public_key())
        .serial_number(7)
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(node_uri(ORIGIN, victim.fingerprint)),
                    x509.DNSName(f"{victim.fingerprint}.{ORIGIN}"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    from cryptography.hazmat.primitives import hashes

    forged = builder.sign(ca.key, hashes.SHA256())
    with pytest.raises(KeyMismatch):
        verify_issued(forged, ca=ca.certificate, origin=ORIGIN, now=NOW)


def test_pem_round_trips(ca, key):
    cert = ca.issue(make_csr(key, ORIGIN), NOW)
    assert load_certificate(certificate_pem(cert)) == cert
    assert load_csr(csr_pem(make_csr(key, ORIGIN))).public_key() == make_csr(key, ORIGIN).public_key()
    again = OriginCA.from_pem(ca.key_pem(), ca.certificate_pem())
    assert again.origin == ORIGIN and again.certificate == ca.certificate
    with pytest.raises(MalformedCertificate):
        load_certificate(b"garbage")
    with pytest.raises(BadRequest):
        OriginCA.from_pem(OriginCA.generate(ORIGIN, NOW).key_pem(), ca.certificate_pem())


def test_bad_origin_name(key):
    with pytest.raises(WrongOrigin):
        make_csr(key, "Not A Name!")


def test_revocation_set_round_trips_through_the_codec():
    from node import codec
    from node.trust.errors import TrustError

    revoked = RevocationSet().revoke_serial(12345678901234567890).revoke_node("ab" * 10).revoke_serial(7)
    assert RevocationSet.from_record(codec.unpack(codec.pack(revoked.to_record()))) == revoked
    for bad in ([], {"serials": ["x"]}, {"node_ids": [1]}, {"serials": [True]}):
        with pytest.raises(TrustError):
            RevocationSet.from_record(bad)


def test_explicit_serials(ca, key):
    assert ca.issue(make_csr(key, ORIGIN), NOW, serial=4242).serial_number == 4242
    assert (
        ca.issue(make_csr(key, ORIGIN), NOW).serial_number
        != ca.issue(make_csr(key, ORIGIN), NOW + dt.timedelta(seconds=1)).serial_number
    )
    with pytest.raises(TrustUsageError):
        ca.issue(make_csr(key, ORIGIN), NOW, serial=0)

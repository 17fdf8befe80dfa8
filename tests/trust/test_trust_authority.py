"""The CA service core, tokens, messages, transparency records and the CA directory (no network)."""

import datetime as dt
import os
import stat

import pytest

from node.crypto import PrivateKey
from node.trust import OriginCA, RevocationSet, make_csr
from node.trust.authority import CertificateAuthority
from node.trust.ca_dir import CaDirectory
from node.trust.certs import csr_pem
from node.trust.errors import NotOnChain, TokenExpired, TokenReused, WrongToken
from node.trust.messages import (
    CertificateDenied,
    CertificateIssued,
    CertificateRequest,
    MalformedTrustMessage,
    Revocations,
    RevocationsRequest,
    decode,
    encode,
    is_trust_message,
)
from node.trust.tokens import TokenStore, token_hash
from node.trust.transparency import (
    RecordedOnChain,
    TransparencyRecord,
    certificate_fingerprint,
    check_on_chain,
    issued_at,
    issued_record,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
ORIGIN = "alpha.example"
A = PrivateKey.from_seed(b"authority-a")
B = PrivateKey.from_seed(b"authority-b")


def counter_rng(values):
    """An rng returning the given integers as 16 big-endian bytes (to force serial collisions)."""
    it = iter(values)
    return lambda n: next(it).to_bytes(n, "big")


@pytest.fixture(scope="module")
def ca():
    return OriginCA.generate(ORIGIN, NOW - dt.timedelta(days=1))


def request(key=A, origin=ORIGIN, token=None):
    return CertificateRequest(csr_pem(make_csr(key, origin)), token)


def test_tokens_are_single_use_expire_and_are_stored_hashed():
    store = TokenStore()
    token = store.issue(lambda n: b"\x01" * n, NOW, dt.timedelta(minutes=10))
    assert token.startswith("ntk_") and token not in str(store.to_record())
    assert token_hash(token) in store.to_record()
    with pytest.raises(WrongToken):
        store.redeem("ntk_nope", NOW)
    with pytest.raises(TokenExpired):
        store.check(token, NOW + dt.timedelta(minutes=10))
    store.redeem(token, NOW)
    with pytest.raises(TokenReused):
        store.redeem(token, NOW)
    restored = TokenStore.from_record(store.to_record())
    with pytest.raises(TokenReused):
        restored.check(token, NOW)
    restored.prune(NOW + dt.timedelta(days=30))
    assert restored.entries == {}


def test_token_is_used_up_only_by_a_successful_request(ca):
    authority = CertificateAuthority(ca, rng=counter_rng([1, 2]))
    token = authority.tokens.issue(lambda n: b"\x02" * n, NOW)
    denied = authority.handle(A.fingerprint, False, request(origin="beta.example", token=token), NOW)
    assert denied == CertificateDenied("wrong-origin", denied.reason)
    issued = authority.handle(A.fingerprint, False, request(token=token), NOW)
    assert isinstance(issued, CertificateIssued)
    again = authority.handle(A.fingerprint, False, request(token=token), NOW)
    assert again.code == "token-reused"


def test_requests_are_authorised_by_token_membership_or_renewal(ca):
    authority = CertificateAuthority(ca, rng=counter_rng(range(1, 100)), members=[B.fingerprint])
    assert authority.handle(A.fingerprint, False, request(), NOW).code == "not-authorised"
    assert isinstance(authority.handle(B.fingerprint, False, request(key=B), NOW), CertificateIssued)
    assert isinstance(authority.handle(A.fingerprint, True, request(), NOW), CertificateIssued)
    assert authority.handle(A.fingerprint, True, request(key=B), NOW).code == "key-mismatch"
    assert authority.handle(A.fingerprint, True, CertificateRequest(b"junk"), NOW).code == "denied"
    authority.revoke_node(A.fingerprint, NOW)
    assert authority.handle(A.fingerprint, True, request(), NOW).code == "revoked"


def test_serials_are_unique_even_when_the_rng_repeats(ca):
    authority = CertificateAuthority(ca, rng=counter_rng([7, 7, 0, 7, 8]), members=[A.fingerprint])
    first = authority.sign(make_csr(A, ORIGIN), NOW)
    second = authority.sign(make_csr(A, ORIGIN), NOW)
    assert (first.serial_number, second.serial_number) == (7, 8)
    assert [r.action for r in authority.records] == ["issued", "issued"]


def test_revocation_list_names_owners_and_records_revocations(ca):
    authority = CertificateAuthority(ca, rng=counter_rng([3, 4]))
    one = authority.sign(make_csr(A, ORIGIN), NOW)
    authority.sign(make_csr(B, ORIGIN), NOW)
    authority.revoke_serial(one.serial_number, NOW)
    assert authority.revoke_node(B.fingerprint, NOW) == [4]
    answer = authority.handle(A.fingerprint, True, RevocationsRequest(), NOW)
    assert answer == Revocations(RevocationSet(frozenset({3}), frozenset({B.fingerprint})), {3: A.fingerprint})
    assert [(r.action, r.serial) for r in authority.records] == [
        ("issued", 3),
        ("issued", 4),
        ("revoked", 3),
        ("revoked", 4),
    ]


@pytest.mark.parametrize(
    "message",
    [
        CertificateRequest(b"pem", None),
        CertificateRequest(b"pem", "ntk_x"),
        CertificateIssued(b"cert", b"ca"),
        CertificateDenied("wrong-token", "no"),
        RevocationsRequest(),
        Revocations(RevocationSet(frozenset({1}), frozenset({"n"})), {1: "n"}),
    ],
)
def test_messages_round_trip(message):
    assert is_trust_message(encode(message))
    assert decode(encode(message)) == message


def test_malformed_messages_are_refused():
    from node import codec

    assert not is_trust_message(b"\xc1") and not is_trust_message(codec.pack({"t": "gossip"}))
    for bad in (b"\xc1", codec.pack([1]), codec.pack({"t": "trust/what"}), codec.pack({"t": "trust/csr", "csr": 5})):
        with pytest.raises(MalformedTrustMessage):
            decode(bad)


def test_transparency_records_and_the_on_chain_rule(ca):
    cert = ca.issue(make_csr(A, ORIGIN), NOW, serial=11)
    record = issued_record(cert, ca.certificate)
    assert record == TransparencyRecord(
        "issued",
        11,
        A.fingerprint,
        int(NOW.timestamp()),
        int((NOW + dt.timedelta(hours=24)).timestamp()),
        certificate_fingerprint(ca.certificate),
    )
    assert TransparencyRecord.from_record(record.to_record()) == record
    assert issued_at(cert) == NOW
    grace = dt.timedelta(minutes=10)
    check_on_chain(11, NOW, set(), NOW + grace, grace)  # within the grace period
    check_on_chain(11, NOW, {11}, NOW + 2 * grace, grace)  # recorded
    with pytest.raises(NotOnChain):
        check_on_chain(11, NOW, {12}, NOW + 2 * grace, grace)

    class Accept:
        def authenticate(self, certificate, chain, now):
            from node.trust import verify_issued

            return verify_issued(certificate, ca=ca.certificate, origin=ORIGIN, now=now)

    policy = RecordedOnChain(Accept(), frozenset({11}), grace)
    assert policy.authenticate(cert, [], NOW + 2 * grace).serial == 11
    late = ca.issue(make_csr(B, ORIGIN), NOW, serial=12)
    with pytest.raises(NotOnChain):
        RecordedOnChain(Accept(), frozenset({11}), grace).authenticate(late, [], NOW + 2 * grace)


def test_ca_directory_keeps_key_private_and_state_across_loads(tmp_path):
    directory = CaDirectory(tmp_path / "ca")
    ca = directory.create(ORIGIN, NOW)
    assert stat.S_IMODE(os.stat(directory.key_file).st_mode) == 0o600
    authority = directory.authority(counter_rng([21, 22]))
    token = authority.tokens.issue(lambda n: b"\x03" * n, NOW)
    authority.on_change()
    authority.handle(A.fingerprint, False, request(token=token), NOW)
    authority.revoke_node(B.fingerprint, NOW)
    again = directory.authority(counter_rng([21, 23]))
    assert again.ca.certificate == ca.certificate
    assert set(again.issued) == {21} and again.issued[21].node_id == A.fingerprint
    assert again.revoked.node_ids == {B.fingerprint}
    with pytest.raises(TokenReused):
        again.tokens.check(token, NOW)
    assert again.new_serial() == 23

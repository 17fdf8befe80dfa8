"""The CA pin check: a node of another origin is accepted only through its pinned CA key."""

import datetime as dt

import pytest
import trio

from node.crypto import PrivateKey
from node.federation.pinning import PinnedOrigins, verify_pinned_origin
from node.federation.records import ca_pin
from node.transport import Endpoint, IssuedByCA, Limits, PeerRefused, TlsIdentity
from node.transport.mtls import AnyOf
from node.trust import OriginCA, RevocationSet, make_csr
from node.trust.errors import CertificateRefused, CertificateRevoked, ForeignCA, MissingCertificate, WrongOrigin

from .conftest import utc_now

NOW = utc_now()
FAST = Limits(request_timeout=5.0, handshake_timeout=3.0, redial_backoff_min=0.05, redial_backoff_max=0.2)


@pytest.fixture(scope="module")
def cas():
    start = NOW - dt.timedelta(days=1)
    return {
        "alpha": OriginCA.generate("alpha.example", start),
        "beta": OriginCA.generate("beta.example", start),
        "beta-impostor": OriginCA.generate("beta.example", start),  # same origin name, another key
    }


def node_identity(ca, seed):
    key = PrivateKey.from_seed(seed.encode())
    cert = ca.issue(make_csr(key, ca.origin), NOW, dt.timedelta(hours=24))
    return TlsIdentity(cert, key.to_cryptography(), (ca.certificate,))


def test_pin_is_sha256_of_the_ca_key(cas):
    assert len(ca_pin(cas["beta"].certificate)) == 32
    assert ca_pin(cas["beta"].certificate) != ca_pin(cas["beta-impostor"].certificate)


def test_verify_pinned_origin(cas):
    beta = node_identity(cas["beta"], "pin-b1")
    pins = {"beta.example": frozenset({ca_pin(cas["beta"].certificate)})}
    identity = verify_pinned_origin(beta.certificate, beta.chain, pins=pins, now=NOW)
    assert identity.origin == "beta.example" and identity.ca_issued
    # Certificate of the impostor CA (same origin name, other key): its CA does not match the pin.
    fake = node_identity(cas["beta-impostor"], "pin-b2")
    with pytest.raises(ForeignCA, match="matches the pin"):
        verify_pinned_origin(fake.certificate, fake.chain, pins=pins, now=NOW)
    # The impostor sends the real CA certificate in its chain: the signature check refuses it.
    with pytest.raises(ForeignCA, match="not issued by"):
        verify_pinned_origin(fake.certificate, (cas["beta"].certificate,), pins=pins, now=NOW)
    # No chain at all (a usage 2 pin needs the CA certificate sent).
    with pytest.raises(ForeignCA):
        verify_pinned_origin(beta.certificate, (), pins=pins, now=NOW)
    # An origin without pins.
    alpha = node_identity(cas["alpha"], "pin-a1")
    with pytest.raises(ForeignCA, match="no CA pin is known"):
        verify_pinned_origin(alpha.certificate, alpha.chain, pins=pins, now=NOW)
    # The alpha CA pinned as if it were beta's: alpha's node names alpha, so it is still refused.
    crossed = {"alpha.example": pins["beta.example"], "beta.example": frozenset({ca_pin(cas["alpha"].certificate)})}
    with pytest.raises(CertificateRefused):
        verify_pinned_origin(alpha.certificate, alpha.chain, pins=crossed, now=NOW)
    with pytest.raises(MissingCertificate):
        verify_pinned_origin(None, (), pins=pins, now=NOW)
    revoked = RevocationSet().revoke_node(identity.node_id)
    with pytest.raises(CertificateRevoked):
        verify_pinned_origin(beta.certificate, beta.chain, pins=pins, now=NOW, revoked=revoked)


def test_wrong_origin_name_with_pinned_ca(cas):
    # alpha's CA key pinned for beta: a node certificate of alpha names alpha, beta's pins do not apply.
    alpha = node_identity(cas["alpha"], "pin-a2")
    pins = {"alpha.example": frozenset({ca_pin(cas["beta"].certificate)})}
    with pytest.raises((ForeignCA, WrongOrigin)):
        verify_pinned_origin(alpha.certificate, alpha.chain, pins=pins, now=NOW)


async def echo(peer, request: bytes) -> bytes:
    return f"{peer.origin}:".encode() + request


def endpoint(identity, authenticator):
    return Endpoint(bind=("127.0.0.1", 0), identity=identity, authenticator=authenticator, handler=echo, limits=FAST)


async def test_quic_across_origins_by_pin(cas):
    alpha_ca, beta_ca = cas["alpha"], cas["beta"]
    alpha = node_identity(alpha_ca, "pin-quic-a")
    beta = node_identity(beta_ca, "pin-quic-b")
    impostor = node_identity(cas["beta-impostor"], "pin-quic-x")
    # Each side accepts its own origin by its CA, and the other origin by its pin.
    alpha_policy = AnyOf(
        (IssuedByCA(alpha_ca.certificate, "alpha.example"),
         PinnedOrigins({"beta.example": frozenset({ca_pin(beta_ca.certificate)})}))
    )
    beta_policy = AnyOf(
        (IssuedByCA(beta_ca.certificate, "beta.example"),
         PinnedOrigins({"alpha.example": frozenset({ca_pin(alpha_ca.certificate)})}))
    )
    a, b = endpoint(alpha, alpha_policy), endpoint(beta, beta_policy)
    x = endpoint(impostor, AnyOf((PinnedOrigins({"alpha.example": frozenset({ca_pin(alpha_ca.certificate)})}),)))
    async with trio.open_nursery() as nursery:
        a_addr = await nursery.start(a.run)
        b_addr = await nursery.start(b.run)
        await nursery.start(x.run)
        with trio.fail_after(10):
            assert await a.request(beta.node_id, b_addr, b"hi") == b"alpha.example:hi"
            assert await b.request(alpha.node_id, a_addr, b"yo") == b"beta.example:yo"
            # The impostor claims beta.example but its CA key is not beta's pin: alpha refuses it.
            with pytest.raises(PeerRefused):
                await x.request(alpha.node_id, a_addr, b"let me in")
            # And alpha dialling the impostor as if it were a beta node refuses the server's certificate.
            with pytest.raises(PeerRefused):
                await a.request(impostor.node_id, x.address, b"who are you")
        nursery.cancel_scope.cancel()

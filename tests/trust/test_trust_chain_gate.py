"""ChainGate: the chain's say at the handshake (revoked there; not recorded after the grace)."""

import datetime as dt
import random

import pytest

from node.crypto import PrivateKey
from node.transport.mtls import AnyOf, IssuedByCA
from node.trust import OriginCA, RevocationSet, make_csr, self_signed_identity
from node.trust.authority import CertificateAuthority
from node.trust.bootstrap import AnySelfSigned
from node.trust.chain_gate import ChainGate
from node.trust.errors import CertificateRevoked, NotOnChain

ORIGIN = "alpha.example"
T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
GRACE = dt.timedelta(seconds=30)
KEY = PrivateKey.from_seed(b"gate-peer")


@pytest.fixture
def setup():
    ca = OriginCA.generate(ORIGIN, T0 - dt.timedelta(days=1))
    authority = CertificateAuthority(ca, rng=random.Random(3).randbytes)
    cert = authority.sign(make_csr(KEY, ORIGIN), T0)
    gate = ChainGate(GRACE)
    policy = gate.wrap(AnyOf((IssuedByCA(authority.ca.certificate, ORIGIN), AnySelfSigned(ORIGIN))))
    return gate, policy, cert


def test_unrecorded_certificate_accepted_until_armed_and_grace_then_refused(setup) -> None:
    gate, policy, cert = setup
    late = T0 + dt.timedelta(hours=1)
    assert policy.authenticate(cert, [], late).node_id == KEY.fingerprint  # not armed: the chain may not run yet
    gate.arm(late)  # the grace runs from the arming for certificates issued earlier (offline homes)
    assert policy.authenticate(cert, [], late + GRACE).ca_issued
    with pytest.raises(NotOnChain, match="not on the chain"):
        policy.authenticate(cert, [], late + GRACE + dt.timedelta(seconds=1))
    assert gate.refusals == 1
    assert gate.overdue([KEY.fingerprint], late + GRACE + dt.timedelta(seconds=1))
    gate.add_recorded([cert.serial_number])
    assert policy.authenticate(cert, [], late + dt.timedelta(hours=2)).serial == cert.serial_number
    assert gate.overdue([KEY.fingerprint], late + dt.timedelta(hours=2)) == {}


def test_chain_revocation_refuses_and_names_the_peers_to_cut(setup) -> None:
    gate, policy, cert = setup
    policy.authenticate(cert, [], T0)  # seen
    assert gate.add_revoked(RevocationSet(frozenset({cert.serial_number}))) == [KEY.fingerprint]
    with pytest.raises(CertificateRevoked, match="revoked"):
        policy.authenticate(cert, [], T0)
    assert KEY.fingerprint in gate.overdue([KEY.fingerprint, "someone-else"], T0)


def test_self_signed_bootstrap_traffic_passes_through(setup) -> None:
    gate, policy, _ = setup
    gate.arm(T0)
    gate.add_revoked(RevocationSet(node_ids=frozenset({KEY.fingerprint})))
    own = self_signed_identity(KEY, ORIGIN, T0)
    assert not policy.authenticate(own, [], T0 + dt.timedelta(days=1)).ca_issued
    assert gate.wrap(policy) is policy  # wrapping twice adds nothing

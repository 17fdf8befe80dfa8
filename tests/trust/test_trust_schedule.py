"""The sans-IO decisions of a node's certificate life: backoff, renewal time, usability, revocations."""

import datetime as dt

import pytest

from node.crypto import PrivateKey
from node.trust import OriginCA, RevocationSet, certificate_pem, make_csr
from node.trust.errors import CertificateExpired, CertificateRevoked, UntrustedCA
from node.trust.schedule import Backoff, TrustDecisions, renew_time
from node.trust.transparency import certificate_fingerprint

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
ORIGIN = "alpha.example"
KEY = PrivateKey.from_seed(b"schedule-a")
OTHER = PrivateKey.from_seed(b"schedule-b")


@pytest.fixture(scope="module")
def ca():
    return OriginCA.generate(ORIGIN, NOW - dt.timedelta(days=1))


def decisions(ca, **options):
    return TrustDecisions(
        node_id=KEY.fingerprint, origin=ORIGIN, ca_fingerprint=certificate_fingerprint(ca.certificate), **options
    )


def issue(ca, key=KEY, now=NOW, seconds=6, serial=None):
    return ca.issue(make_csr(key, ORIGIN), now, dt.timedelta(seconds=seconds), serial=serial)


def test_backoff_grows_caps_jitters_and_resets():
    draws = iter([0.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    backoff = Backoff(initial=1.0, maximum=4.0, factor=2.0, spread=0.2, jitter=lambda: next(draws))
    assert [round(backoff.next_delay(), 3) for _ in range(5)] == [0.9, 2.2, 4.0, 4.0, 4.0]
    assert backoff.failures == 5
    backoff.reset()
    assert backoff.next_delay() == 1.0 and backoff.failures == 1


def test_renewal_at_two_thirds_of_the_lifetime_from_receipt(ca):
    cert = issue(ca, seconds=6)  # not_before is back-dated 5 minutes for skew; the renewal ignores that
    assert renew_time(cert, NOW) == NOW + dt.timedelta(seconds=4)
    assert renew_time(cert, NOW + dt.timedelta(seconds=3)) == NOW + dt.timedelta(seconds=5)


def test_first_request_now_then_at_renewal_and_later_after_failures(ca):
    d = decisions(ca)
    assert d.next_request_at(NOW) == NOW and not d.issued
    delay, first = d.failed(NOW)
    assert first and d.next_request_at(NOW) == NOW + dt.timedelta(seconds=delay)
    _, first = d.failed(NOW)
    assert not first
    assert d.accept(issue(ca), ca.certificate, NOW) is True
    assert d.next_request_at(NOW) == NOW + dt.timedelta(seconds=4)
    assert d.backoff.failures == 0
    assert (
        d.accept(issue(ca, now=NOW + dt.timedelta(seconds=4)), ca.certificate, NOW + dt.timedelta(seconds=4)) is False
    )
    assert d.next_request_at(NOW) == NOW + dt.timedelta(seconds=8)
    assert not d.expired(NOW + dt.timedelta(seconds=9)) and d.expired(NOW + dt.timedelta(seconds=10))


def test_unusable_certificates_are_refused(ca):
    d = decisions(ca)
    other_ca = OriginCA.generate(ORIGIN, NOW - dt.timedelta(days=1))
    with pytest.raises(UntrustedCA, match="not the pinned CA"):
        d.accept(issue(other_ca), other_ca.certificate, NOW)
    with pytest.raises(UntrustedCA, match="not for us"):
        d.accept(issue(ca, key=OTHER), ca.certificate, NOW)
    with pytest.raises(CertificateExpired):
        d.accept(issue(ca), ca.certificate, NOW + dt.timedelta(seconds=7))
    d.learn(RevocationSet().revoke_serial(77))
    with pytest.raises(CertificateRevoked):
        d.accept(issue(ca, serial=77), ca.certificate, NOW)
    assert not d.issued
    assert d.parse_issued(certificate_pem(issue(ca)), ca.certificate_pem(), NOW)[1] == ca.certificate
    assert d.usable(issue(ca), ca.certificate, NOW) and not d.usable(issue(ca), other_ca.certificate, NOW)


def test_revocations_name_peers_to_drop_and_our_own_loss(ca):
    d = decisions(ca)
    d.accept(issue(ca, serial=5), ca.certificate, NOW)
    update = d.learn(RevocationSet().revoke_node("peer-x").revoke_serial(9), owners={9: "peer-y"})
    assert update.changed and update.disconnect == {"peer-x", "peer-y"} and not update.self_revoked
    again = d.learn(RevocationSet().revoke_node("peer-x"))
    assert not again.changed and again.disconnect == frozenset()
    ours = d.learn(RevocationSet().revoke_serial(5), owners={5: KEY.fingerprint})
    assert ours.self_revoked and ours.disconnect == frozenset() and not d.issued
    assert d.next_request_at(NOW) == NOW


def test_renewal_jitter_renews_up_to_ten_percent_earlier(ca):
    d = decisions(ca, renew_jitter=lambda: 0.999)
    d.accept(issue(ca, seconds=600), ca.certificate, NOW)
    renew_in = (d.next_request_at(NOW) - NOW).total_seconds()
    assert 359 < renew_in < 361  # 2/3 * 600 * (1 - 0.1)


def test_an_expired_credential_is_dropped_and_asked_for_again(ca):
    d = decisions(ca)
    d.accept(issue(ca, seconds=6), ca.certificate, NOW)
    d.failed(NOW + dt.timedelta(seconds=4))
    assert d.expires_at() == NOW + dt.timedelta(seconds=6)
    assert d.expired(NOW + dt.timedelta(seconds=6))
    d.drop()
    assert not d.issued and d.expires_at() is None and d.next_request_at(NOW) == NOW

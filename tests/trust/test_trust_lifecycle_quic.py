"""Renewal, revocation and refused certificates on real QUIC endpoints."""

import datetime as dt
from functools import partial

import pytest
import trio

from node.engine.paths import ca_certificate_path, issued_certificate_path
from node.transport import Endpoint, IssuedByCA, PeerRefused
from node.trust import OriginCA, RevocationSet, certificate_pem
from node.trust.errors import RequesterRevoked

from .conftest import (
    FAST,
    ORIGIN,
    ca_node,
    echo,
    issued_identity,
    new_node,
    request_until_ok,
    running,
    third_node,
    utc_now,
    wait_until,
)


async def test_renewal_before_expiry_keeps_the_node_connected(keys, authority):
    authority.members = frozenset({keys["a"].fingerprint})  # member-list authorisation, no token
    service, ca_endpoint = ca_node(authority, keys["ca"])
    b = third_node(authority, keys["b"])
    authority.lifetime = dt.timedelta(seconds=3)  # renewed at 2 s; the CA node renews its own too
    async with running(ca_endpoint, b, partial(service.run, keys["ca"])) as (ca_address, b_address, _):
        a, manager = new_node(keys["a"], authority, keys["ca"], ca_address)
        async with running(a, manager):
            await wait_until(lambda: manager.phase == "ca-issued", seconds=10)
            first = manager.decisions.credential.certificate
            start = trio.current_time()
            # 2.5 lifetimes of traffic; every 0.5 s also a fresh handshake, which needs a valid certificate
            count = 0
            while trio.current_time() - start < 7.5:
                if count % 10 == 0:
                    a.disconnect(keys["b"].fingerprint)
                assert await request_until_ok(a, keys["b"].fingerprint, b_address, b"%d" % count, seconds=3) == (
                    b"echo:%d" % count
                )
                count += 1
                await trio.sleep(0.05)
            current = manager.decisions.credential.certificate
    renewals = [when for what, when in manager.transitions if what == "renewed"]
    assert len(renewals) >= 3
    assert current.serial_number != first.serial_number
    assert current.not_valid_after_utc > first.not_valid_after_utc + dt.timedelta(seconds=4)
    issued_at = next(when for what, when in manager.transitions if what == "ca-issued")
    gaps = [(b - a).total_seconds() for a, b in zip([issued_at, *renewals], renewals, strict=False)]
    # X.509 times have whole seconds: a "3 s" certificate lives 2-3 s, so it is renewed 1.3-2 s after receipt
    assert all(1.3 < g < 3.0 for g in gaps), gaps
    print(f"\nrenewals every {', '.join(f'{g:.2f}' for g in gaps)} s (3 s lifetime); {count} requests, none failed")


async def test_revocation_disconnects_and_refuses_reconnection(keys, authority, tmp_path):
    authority.members = frozenset({keys["a"].fingerprint})
    service, ca_endpoint = ca_node(authority, keys["ca"])
    # b: a node already holding a CA certificate in its home, learning revocations from the CA
    b_identity = issued_identity(authority, keys["b"])
    ca_certificate_path(tmp_path).parent.mkdir(parents=True)
    ca_certificate_path(tmp_path).write_bytes(certificate_pem(authority.ca.certificate))
    issued_certificate_path(tmp_path).parent.mkdir(parents=True)
    issued_certificate_path(tmp_path).write_bytes(certificate_pem(b_identity.certificate))
    revoked_seen = []
    async with running(ca_endpoint) as (ca_address,):
        b, b_manager = new_node(
            keys["b"],
            authority,
            keys["ca"],
            ca_address,
            home=tmp_path,
            revocation_poll=0.1,
            on_peer_revoked=lambda node_id: (revoked_seen.append(node_id), b.disconnect(node_id)),
        )
        a, a_manager = new_node(keys["a"], authority, keys["ca"], ca_address)
        async with running(a, b, b_manager, a_manager) as (a_address, b_address, _, _):
            assert b_manager.phase == "ca-issued"  # loaded from the home, no request needed
            await wait_until(lambda: a_manager.phase == "ca-issued")
            await request_until_ok(a, keys["b"].fingerprint, b_address)
            assert keys["a"].fingerprint in [p.node_id for p in b.peers()]
            serial = a_manager.decisions.credential.serial
            revoked_at = trio.current_time()
            service.revoke_node(keys["a"].fingerprint)
            await wait_until(lambda: keys["a"].fingerprint not in [p.node_id for p in b.peers()], seconds=5)
            dropped = trio.current_time() - revoked_at
            a.disconnect(keys["b"].fingerprint)
            with trio.fail_after(5):
                while True:
                    try:
                        await a.request(keys["b"].fingerprint, b_address, b"again")
                    except PeerRefused as exc:
                        if "revoked" in exc.reason:
                            break
                    await trio.sleep(0.05)
            # a learns it too: back to self-signed, and the CA refuses to issue again
            update = a_manager.apply_revocations(service.authority.revoked)
            assert update.self_revoked and a_manager.phase == "self-signed"
            with pytest.raises(RequesterRevoked):
                await a_manager.request_certificate()
    assert revoked_seen == [keys["a"].fingerprint]
    assert {r.action for r in authority.records if r.serial == serial} == {"issued", "revoked"}
    print(f"\nrevocation -> peer dropped: {dropped * 1000:.1f} ms (poll every 100 ms)")


def client(identity, policy):
    return Endpoint(bind=("127.0.0.1", 0), identity=identity, authenticator=policy, handler=echo, limits=FAST)


async def expect_refused(endpoint, node_id, address, *words):
    with pytest.raises(PeerRefused) as info:
        await endpoint.request(node_id, address, b"hello")
    for word in words:
        assert word in info.value.reason, info.value.reason


async def test_ca_only_peer_refuses_expired_foreign_and_revoked_certificates(keys, authority):
    b = third_node(authority, keys["b"])
    policy = IssuedByCA(authority.ca.certificate, ORIGIN)
    expired = issued_identity(authority, keys["a"], lifetime=dt.timedelta(seconds=1))
    other_ca = OriginCA.generate(ORIGIN, utc_now() - dt.timedelta(hours=1))
    foreign = issued_identity(type(authority)(other_ca, rng=authority._rng), keys["a"])
    good = issued_identity(authority, keys["c"])
    async with running(b) as (b_address,):
        b_id = keys["b"].fingerprint
        await wait_until(lambda: utc_now() > expired.certificate.not_valid_after_utc, seconds=3)
        e = client(expired, policy)
        f = client(foreign, policy)
        g = client(good, policy)
        async with running(e, f, g):
            await expect_refused(e, b_id, b_address, "certificate_expired", "expired")
            await expect_refused(f, b_id, b_address, "unknown_ca", "not issued by the CA")
            assert await g.request(b_id, b_address, b"x") == b"echo:x"
            b.set_authenticator(
                IssuedByCA(
                    authority.ca.certificate, ORIGIN, RevocationSet().revoke_serial(good.certificate.serial_number)
                )
            )
            g.disconnect(b_id)
            await wait_until(lambda: not g.peers())
            await expect_refused(g, b_id, b_address, "certificate_revoked", "revoked")


async def test_self_signed_peer_gets_only_bootstrap_traffic_through(keys, authority):
    service, ca_endpoint = ca_node(authority, keys["ca"])
    async with running(ca_endpoint) as (ca_address,):
        a, manager = new_node(keys["a"], authority, keys["ca"], ca_address)
        async with running(a):
            with pytest.raises(Exception, match="bootstrap traffic only"):
                await a.request(keys["ca"].fingerprint, ca_address, b"not a trust message")


async def test_unrenewed_expiry_falls_back_to_self_signed_then_recovers(keys, authority):
    authority.members = frozenset({keys["a"].fingerprint})
    service, ca_endpoint = ca_node(authority, keys["ca"])
    authority.lifetime = dt.timedelta(seconds=1)  # the CA node's own certificate stays at 24 h
    expired = trio.Event()
    checked = False
    async with trio.open_nursery() as outer:
        ca_scope = trio.CancelScope()

        async def run_ca(task_status=trio.TASK_STATUS_IGNORED):
            with ca_scope:
                await ca_endpoint.run(task_status=task_status)

        ca_address = await outer.start(run_ca)
        a, manager = new_node(keys["a"], authority, keys["ca"], ca_address, on_expired=expired.set)
        async with running(a, manager):
            await wait_until(lambda: manager.phase == "ca-issued")
            ca_scope.cancel()  # the CA goes away: the renewal at ~0.67 s fails
            with trio.fail_after(5):
                await expired.wait()
            assert manager.phase == "self-signed"
            assert a.identity.certificate.issuer == a.identity.certificate.subject  # self-signed again
            service, ca_endpoint = ca_node(authority, keys["ca"], port=ca_address[1], lifetime=dt.timedelta(hours=1))
            async with running(ca_endpoint):
                await wait_until(lambda: manager.phase == "ca-issued", seconds=5)
                checked = True
    assert checked
    assert [what for what, _ in manager.transitions][:4] == ["self-signed", "ca-issued", "self-signed", "ca-issued"]


async def test_certificate_not_on_the_chain_after_the_grace_period_is_refused(keys, authority, tmp_path):
    authority.members = frozenset({keys["a"].fingerprint, keys["b"].fingerprint})
    service, ca_endpoint = ca_node(authority, keys["ca"])
    async with running(ca_endpoint) as (ca_address,):
        a, a_manager = new_node(keys["a"], authority, keys["ca"], ca_address)
        b, b_manager = new_node(keys["b"], authority, keys["ca"], ca_address)
        async with running(a, b, a_manager, b_manager) as (_, b_address, _, _):
            await wait_until(lambda: a_manager.phase == "ca-issued" and b_manager.phase == "ca-issued")
            b_manager.set_recorded_serials(frozenset(), grace=dt.timedelta(0))
            with trio.fail_after(5):
                while True:
                    try:
                        await a.request(keys["b"].fingerprint, b_address, b"x")
                    except PeerRefused as exc:
                        if "not on the chain" in exc.reason:
                            break
                    await trio.sleep(0.05)
            b_manager.set_recorded_serials(frozenset({a_manager.decisions.credential.serial}), grace=dt.timedelta(0))
            assert await request_until_ok(a, keys["b"].fingerprint, b_address, b"y") == b"echo:y"

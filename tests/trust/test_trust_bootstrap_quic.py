"""The phased trust bootstrap on real QUIC endpoints (127.0.0.1) with real certificates."""

import datetime as dt
import logging

import pytest
import trio

from node.engine.paths import ca_certificate_path, issued_certificate_path
from node.transport import Endpoint, PeerRefused
from node.trust import load_certificate, make_csr
from node.trust.certs import csr_pem
from node.trust.errors import TokenExpired, TokenReused, WrongToken
from node.trust.messages import CertificateDenied, CertificateRequest, decode, encode

from .conftest import (
    ORIGIN,
    ca_node,
    free_udp_port,
    new_node,
    request_until_ok,
    running,
    seeded_rng,
    third_node,
    utc_now,
    wait_until,
)


async def test_token_bootstrap_then_ca_only_peer_accepts(keys, authority, tmp_path):
    token = authority.tokens.issue(seeded_rng(7), utc_now(), dt.timedelta(minutes=5))
    service, ca_endpoint = ca_node(authority, keys["ca"])
    b = third_node(authority, keys["b"])
    issued = trio.Event()
    async with running(ca_endpoint, b) as (ca_address, b_address):
        a, manager = new_node(
            keys["a"], authority, keys["ca"], ca_address, token=token, home=tmp_path, on_issued=lambda c: issued.set()
        )
        async with running(a):
            with pytest.raises(PeerRefused):
                await a.request(keys["b"].fingerprint, b_address, b"before")
            started = trio.current_time()
            async with running(manager):
                with trio.fail_after(10):
                    await issued.wait()
                took = trio.current_time() - started
                answer = await request_until_ok(a, keys["b"].fingerprint, b_address, b"after")
                connected = trio.current_time() - started
    assert answer == b"echo:after"
    assert manager.phase == "ca-issued"
    assert [t for t, _ in manager.transitions] == ["self-signed", "ca-issued"]
    cert = load_certificate(issued_certificate_path(tmp_path).read_bytes())
    assert cert.serial_number in authority.issued
    assert load_certificate(ca_certificate_path(tmp_path).read_bytes()) == authority.ca.certificate
    assert authority.records[-1].action == "issued" and authority.records[-1].node_id == keys["a"].fingerprint
    print(f"\nself-signed -> ca-issued: {took * 1000:.1f} ms; to the CA-only peer: {connected * 1000:.1f} ms")


async def test_client_retries_until_the_ca_comes_up(keys, authority, caplog):
    caplog.set_level(logging.INFO, logger="node.trust.manager")
    token = authority.tokens.issue(seeded_rng(8), utc_now())
    port = free_udp_port()
    a, manager = new_node(keys["a"], authority, keys["ca"], ("127.0.0.1", port), token=token)
    async with running(a, manager):
        await wait_until(lambda: manager.attempts >= 3, seconds=15)
        assert manager.phase == "self-signed"
        assert "CA unreachable" in (manager.last_error or "")
        service, ca_endpoint = ca_node(authority, keys["ca"], port=port)
        up = trio.current_time()
        async with running(ca_endpoint):
            await wait_until(lambda: manager.phase == "ca-issued", seconds=5)
            took = trio.current_time() - up
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "CA unreachable" in warnings[0].getMessage()  # said once
    progress = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("certificate attempt 2 failed" in m for m in progress)
    assert any("CA certificate" in m and "obtained" in m for m in progress)
    print(f"\nCA up -> ca-issued: {took * 1000:.1f} ms after {manager.attempts} attempts")


async def ask(endpoint, ca_key, ca_address, request):
    return decode(await endpoint.request(ca_key.fingerprint, ca_address, encode(request)))


async def test_bad_requests_are_refused_with_a_reason(keys, authority):
    now = utc_now()
    good = authority.tokens.issue(seeded_rng(9), now)
    expired = authority.tokens.issue(seeded_rng(10), now - dt.timedelta(hours=2), dt.timedelta(hours=1))
    service, ca_endpoint = ca_node(authority, keys["ca"])
    async with running(ca_endpoint) as (ca_address,):
        a, manager = new_node(keys["a"], authority, keys["ca"], ca_address, token=good)
        async with running(a):
            # a CSR naming another origin
            other = CertificateRequest(csr_pem(make_csr(keys["a"], "beta.example")), good)
            answer = await ask(a, keys["ca"], ca_address, other)
            assert answer == CertificateDenied("wrong-origin", answer.reason)
            assert "beta.example" in answer.reason
            # a CSR for another key than the requester's TLS key
            answer = await ask(
                a, keys["ca"], ca_address, CertificateRequest(csr_pem(make_csr(keys["c"], ORIGIN)), good)
            )
            assert answer.code == "key-mismatch" and keys["c"].fingerprint in answer.reason
            # no token, not a member
            answer = await ask(a, keys["ca"], ca_address, CertificateRequest(csr_pem(make_csr(keys["a"], ORIGIN))))
            assert answer.code == "not-authorised"
            # wrong, expired, then good, then reused token (through the manager: typed errors)
            manager._token = "ntk_" + "x" * 32
            with pytest.raises(WrongToken, match="not known"):
                await manager.request_certificate()
            manager._token = expired
            with pytest.raises(TokenExpired, match="expired"):
                await manager.request_certificate()
            manager._token = good
            cert, ca = await manager.request_certificate()
            assert cert.serial_number in authority.issued
            with pytest.raises(TokenReused, match="already used"):
                await manager.request_certificate()
            # non-trust traffic from a self-signed peer is refused
            with pytest.raises(Exception, match="bootstrap traffic only"):
                await a.request(keys["ca"].fingerprint, ca_address, b"gossip")
    assert [d.code for d in service.refusals] == [
        "wrong-origin",
        "key-mismatch",
        "not-authorised",
        "wrong-token",
        "token-expired",
        "token-reused",
    ]


async def test_self_signed_node_talks_only_to_pinned_peers_and_only_bootstrap_traffic(keys, authority):
    from node.transport import PinnedKeys, RemoteError, TlsIdentity

    from .conftest import FAST, echo

    def self_signed_peer(key):
        return Endpoint(
            bind=("127.0.0.1", 0),
            identity=TlsIdentity.self_signed(key, ORIGIN, utc_now()),
            authenticator=PinnedKeys(frozenset({keys["a"].fingerprint}), ORIGIN),
            handler=echo,
            limits=FAST,
        )

    a, manager = new_node(
        keys["a"], authority, keys["ca"], ("127.0.0.1", 9), bootstrap_peers=frozenset({keys["b"].fingerprint})
    )
    b, stranger = self_signed_peer(keys["b"]), self_signed_peer(keys["c"])
    async with running(a, b, stranger) as (a_address, _, _):
        with pytest.raises(PeerRefused, match="not in the pinned set"):
            await stranger.request(keys["a"].fingerprint, a_address, b"hello")
        with pytest.raises(RemoteError, match="bootstrap traffic only"):
            await b.request(keys["a"].fingerprint, a_address, b"gossip")
        with pytest.raises(RemoteError, match="not a CA"):  # bootstrap traffic passes the gate; a holds no CA
            await b.request(keys["a"].fingerprint, a_address, encode(CertificateRequest(b"x")))

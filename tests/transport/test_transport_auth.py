"""Mutual TLS policy: who gets refused, with which reason, before any application message."""

import datetime as dt

import pytest
import trio
from aioquic import tls
from aioquic.quic import events

from node.crypto import PrivateKey
from node.transport import AnyOf, IssuedByCA, PeerRefused, PeerUnreachable
from node.trust import OriginCA, RevocationSet

from .conftest import NOW, ORIGIN, endpoint, issued, pinned, raw_client, running, self_signed


class Recorder:
    def __init__(self):
        self.calls = []

    async def __call__(self, peer, request):
        self.calls.append(peer.node_id)
        return b"ok"


async def expect_refused(client, node_id, address, *words):
    with pytest.raises(PeerRefused) as info:
        await client.request(node_id, address, b"hello")
    for word in words:
        assert word in info.value.reason, info.value.reason
    return info.value.reason


async def test_client_without_certificate_is_refused(keys):
    handler = Recorder()
    server = endpoint(self_signed(keys[1]), pinned(keys[0]), handler=handler)
    async with running(server) as (address,):
        client = raw_client(address)
        event = await client.connect()
        if isinstance(event, events.HandshakeCompleted):  # the client finishes first; the server's verdict follows
            event = await client.until(lambda e: isinstance(e, events.ConnectionTerminated))
        assert event.error_code == 0x100 + tls.AlertDescription.certificate_required
        client.close()
    assert handler.calls == []


async def test_certificate_from_another_ca_is_refused(keys, ca):
    other = OriginCA.generate(ORIGIN, NOW - dt.timedelta(days=1))
    handler = Recorder()
    server = endpoint(issued(ca, keys[1]), IssuedByCA(ca.certificate, ORIGIN), handler=handler)
    client = endpoint(issued(other, keys[0]), IssuedByCA(ca.certificate, ORIGIN))
    async with running(server, client) as (address, _):
        await expect_refused(client, keys[1].fingerprint, address, "unknown_ca", "not issued by the CA")
    # and a client trusting another CA refuses the server itself
    client = endpoint(issued(ca, keys[0]), IssuedByCA(other.certificate, ORIGIN))
    server = endpoint(issued(ca, keys[1]), IssuedByCA(ca.certificate, ORIGIN), handler=handler)
    async with running(server, client) as (address, _):
        await expect_refused(client, keys[1].fingerprint, address, "we refused the peer", "not issued by the CA")
    assert handler.calls == []


async def test_key_outside_the_pinned_set_is_refused(keys):
    handler = Recorder()
    server = endpoint(self_signed(keys[1]), pinned(keys[0]), handler=handler)
    stranger = endpoint(self_signed(keys[2]), pinned(keys[1]))
    async with running(server, stranger) as (address, _):
        await expect_refused(stranger, keys[1].fingerprint, address, "access_denied", "not in the pinned set")
    assert handler.calls == []


async def test_dialling_the_wrong_node_is_refused(keys):
    server = endpoint(self_signed(keys[1]), pinned(keys[0]))
    client = endpoint(self_signed(keys[0]), pinned(keys[1], keys[2]))
    async with running(server, client) as (address, _):
        await expect_refused(client, keys[2].fingerprint, address, "dialled node")


async def test_expired_certificate_is_refused(keys, ca):
    handler = Recorder()
    old = issued(ca, keys[0], now=NOW - dt.timedelta(hours=30))
    server = endpoint(issued(ca, keys[1]), IssuedByCA(ca.certificate, ORIGIN), handler=handler)
    client = endpoint(old, IssuedByCA(ca.certificate, ORIGIN))
    async with running(server, client) as (address, _):
        await expect_refused(client, keys[1].fingerprint, address, "certificate_expired", "expired")
    assert handler.calls == []


async def test_revoked_certificate_is_refused(keys, ca):
    handler = Recorder()
    identity = issued(ca, keys[0])
    revoked = RevocationSet().revoke_serial(identity.certificate.serial_number)
    server = endpoint(issued(ca, keys[1]), IssuedByCA(ca.certificate, ORIGIN, revoked=revoked), handler=handler)
    client = endpoint(identity, IssuedByCA(ca.certificate, ORIGIN))
    async with running(server, client) as (address, _):
        await expect_refused(client, keys[1].fingerprint, address, "certificate_revoked")
    assert handler.calls == []


async def test_membership_and_set_authenticator(keys, ca):
    handler = Recorder()
    auth = IssuedByCA(ca.certificate, ORIGIN, members=frozenset({keys[2].fingerprint}))
    server = endpoint(issued(ca, keys[1]), auth, handler=handler)
    client = endpoint(issued(ca, keys[0]), IssuedByCA(ca.certificate, ORIGIN))
    async with running(server, client) as (address, _):
        await expect_refused(client, keys[1].fingerprint, address, "access_denied", "not a member")
        server.set_authenticator(IssuedByCA(ca.certificate, ORIGIN, members=frozenset({keys[0].fingerprint})))
        with trio.fail_after(5):  # the refused dial put the client in backoff: retry until it passes
            while True:
                try:
                    assert await client.request(keys[1].fingerprint, address, b"hi") == b"ok"
                    break
                except (PeerRefused, PeerUnreachable):
                    await trio.sleep(0.05)
    assert handler.calls == [keys[0].fingerprint]


async def test_pinned_or_ca_during_rollout(keys, ca):
    auth = AnyOf((pinned(keys[0]), IssuedByCA(ca.certificate, ORIGIN)))
    server = endpoint(issued(ca, keys[1]), auth)
    pinned_client = endpoint(self_signed(keys[0]), IssuedByCA(ca.certificate, ORIGIN))
    ca_client = endpoint(issued(ca, keys[2]), IssuedByCA(ca.certificate, ORIGIN))
    stranger = endpoint(self_signed(PrivateKey.from_seed(b"stranger")), IssuedByCA(ca.certificate, ORIGIN))
    async with running(server, pinned_client, ca_client, stranger) as (address, *_):
        assert await pinned_client.request(keys[1].fingerprint, address, b"a")
        assert await ca_client.request(keys[1].fingerprint, address, b"b")
        await expect_refused(stranger, keys[1].fingerprint, address, "not in the pinned set", "not issued by the CA")


async def test_a_broken_policy_refuses_instead_of_admitting(keys):
    class Broken:
        def authenticate(self, certificate, chain, now):
            raise RuntimeError("bug in a policy")

    handler = Recorder()
    server = endpoint(self_signed(keys[1]), Broken(), handler=handler)
    client = endpoint(self_signed(keys[0]), pinned(keys[1]))
    async with running(server, client) as (address, _):
        await expect_refused(client, keys[1].fingerprint, address, "internal_error")
        server.set_authenticator(pinned(keys[0]))
        with trio.fail_after(5):  # the server still works once its policy is fixed
            while True:
                try:
                    assert await client.request(keys[1].fingerprint, address, b"hi") == b"ok"
                    break
                except (PeerRefused, PeerUnreachable):
                    await trio.sleep(0.05)
    assert handler.calls == [keys[0].fingerprint]

"""Request/response over real QUIC on 127.0.0.1 between endpoints with real certificates."""

import dataclasses

import pytest
import trio
import trio.testing

from node.errors import InvalidInput
from node.transport import MAX_FRAME, FrameTooLarge, PeerRefused, PeerUnreachable, RemoteError

from .conftest import FAST, endpoint, pinned, running, self_signed, wait_until


async def test_request_response_both_directions(keys):
    a = endpoint(self_signed(keys[0]), pinned(keys[0], keys[1]))
    b = endpoint(self_signed(keys[1]), pinned(keys[0], keys[1]))
    async with running(a, b) as (addr_a, addr_b):
        assert (
            await a.request(keys[1].fingerprint, addr_b, b"ping") == b"echo:" + keys[0].fingerprint.encode() + b":ping"
        )
        assert (
            await b.request(keys[0].fingerprint, addr_a, b"pong") == b"echo:" + keys[1].fingerprint.encode() + b":pong"
        )
        assert [p.node_id for p in a.peers()] == [keys[1].fingerprint]
        assert a.peers()[0].origin == "alpha.example" and not a.peers()[0].ca_issued


async def test_many_concurrent_requests_share_one_connection(keys):
    a = endpoint(self_signed(keys[0]), pinned(keys[1]))
    b = endpoint(self_signed(keys[1]), pinned(keys[0]))
    results = {}
    async with running(a, b) as (_, addr_b):

        async def worker(w):
            for i in range(10):
                payload = f"{w}-{i}".encode() * (1 + (w * i) % 50)
                results[(w, i)] = (payload, await a.request(keys[1].fingerprint, addr_b, payload))

        async with trio.open_nursery() as nursery:
            for w in range(40):
                nursery.start_soon(worker, w)
        assert len(results) == 400
        prefix = b"echo:" + keys[0].fingerprint.encode() + b":"
        assert all(reply == prefix + payload for payload, reply in results.values())
        assert len(a.peers()) == 1 and sum(len(c) for c in a._by_node.values()) == 1


async def test_large_frames_wait_for_acknowledgement_and_the_limit_holds(keys):
    limits = dataclasses.replace(FAST, max_unacked_bytes=MAX_FRAME)  # one big frame in flight at a time
    a = endpoint(self_signed(keys[0]), pinned(keys[1]), limits=limits)
    b = endpoint(self_signed(keys[1]), pinned(keys[0]), handler=lambda peer, req: _len(req))
    async with running(a, b) as (_, addr_b):
        await a.request(keys[1].fingerprint, addr_b, b"connect")
        connection = a._by_node[keys[1].fingerprint][0]
        big = bytes(range(256)) * ((MAX_FRAME - 64) // 256)
        results, peaks = [], []

        async def send():
            results.append(await a.request(keys[1].fingerprint, addr_b, big))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(send)
            while len(results) < 3:
                peaks.append((len(connection._pending), connection._unacked))
                await trio.sleep(0.002)
        assert results == [str(len(big)).encode()] * 3
        assert max(p[0] for p in peaks) == 1 and max(p[1] for p in peaks) <= MAX_FRAME
        with pytest.raises(FrameTooLarge):
            await a.request(keys[1].fingerprint, addr_b, bytes(MAX_FRAME))


async def _len(request):
    return str(len(request)).encode()


async def test_handler_errors_come_back_as_remote_errors(keys):
    async def handler(peer, request):
        if request == b"bad":
            raise InvalidInput("no such thing")
        raise RuntimeError("secret internals")

    a = endpoint(self_signed(keys[0]), pinned(keys[1]))
    b = endpoint(self_signed(keys[1]), pinned(keys[0]), handler=handler)
    async with running(a, b) as (_, addr_b):
        for payload, expected in ((b"bad", "no such thing"), (b"boom", "handler failed")):
            try:
                await a.request(keys[1].fingerprint, addr_b, payload)
            except RemoteError as exc:
                assert exc.reason == expected
            else:
                raise AssertionError("handler failure was not reported")


async def test_reconnect_after_peer_restarts(keys):
    a = endpoint(self_signed(keys[0]), pinned(keys[1]))
    async with running(a) as (_,):
        b = endpoint(self_signed(keys[1]), pinned(keys[0]))
        async with running(b) as (addr_b,):
            assert await a.request(keys[1].fingerprint, addr_b, b"1")
        # b is gone; a's connection is now dead. Restart b on the same port.
        b2 = endpoint(self_signed(keys[1]), pinned(keys[0]), port=addr_b[1])
        async with running(b2):
            with trio.fail_after(20):
                while True:
                    try:
                        with trio.move_on_after(1.0):
                            assert await a.request(keys[1].fingerprint, addr_b, b"2") == (
                                b"echo:" + keys[0].fingerprint.encode() + b":2"
                            )
                            break
                    except PeerUnreachable:
                        await trio.sleep(0.05)


async def test_unreachable_peer_and_backoff(keys):
    a = endpoint(self_signed(keys[0]), pinned(keys[1]), limits=dataclasses.replace(FAST, handshake_timeout=0.3))
    silent = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await silent.bind(("127.0.0.1", 0))
    async with running(a):
        with pytest.raises(PeerUnreachable, match="handshake"):
            await a.request(keys[1].fingerprint, silent.getsockname(), b"x")
        with pytest.raises(PeerUnreachable, match="not redialling"):
            await a.request(keys[1].fingerprint, silent.getsockname(), b"x")
    silent.close()


async def test_penalise_and_disconnect(keys):
    a = endpoint(self_signed(keys[0]), pinned(keys[1]))
    b = endpoint(self_signed(keys[1]), pinned(keys[0]))
    async with running(a, b) as (addr_a, addr_b):
        assert await a.request(keys[1].fingerprint, addr_b, b"x")
        a.disconnect(keys[1].fingerprint)
        assert a.peers() == []
        assert await a.request(keys[1].fingerprint, addr_b, b"again")  # redials
        a.penalise(keys[1].fingerprint, 60, "testing")
        try:
            await a.request(keys[1].fingerprint, addr_b, b"x")
        except PeerRefused as exc:
            assert "testing" in exc.reason
        else:
            raise AssertionError("a penalised peer was contacted")
        try:  # and the penalised peer cannot dial in either
            await b.request(keys[0].fingerprint, addr_a, b"x")
        except PeerRefused as exc:
            assert "penalised" in exc.reason
        else:
            raise AssertionError("a penalised peer was accepted")


async def test_hot_swap_identity(keys, ca):
    import datetime as dt

    from node.transport import IssuedByCA

    from .conftest import NOW, issued

    auth = IssuedByCA(ca.certificate, ca.origin)
    first = issued(ca, keys[1], lifetime=dt.timedelta(hours=10))
    second = issued(ca, keys[1], NOW + dt.timedelta(minutes=1), lifetime=dt.timedelta(hours=20))
    a = endpoint(issued(ca, keys[0]), auth)
    b = endpoint(first, auth)
    c = endpoint(issued(ca, keys[2]), auth)
    async with running(a, b, c) as (_, addr_b, _c):
        assert await a.request(keys[1].fingerprint, addr_b, b"x")
        b.set_identity(second)
        assert await a.request(keys[1].fingerprint, addr_b, b"y")  # the open connection keeps working
        assert a.peers()[0].not_after == first.certificate.not_valid_after_utc
        assert await c.request(keys[1].fingerprint, addr_b, b"z")
        assert c.peers()[0].not_after == second.certificate.not_valid_after_utc
        assert b.identity is second


async def test_bind_failure_is_typed_and_an_endpoint_can_run_again(keys):
    from node.transport import BindFailed, EndpointNotRunning

    a = endpoint(self_signed(keys[0]), pinned(keys[1]))
    b = endpoint(self_signed(keys[1]), pinned(keys[0]))
    with pytest.raises(EndpointNotRunning):
        await a.request(keys[1].fingerprint, ("127.0.0.1", 9), b"x")
    async with running(b) as (addr_b,):
        clash = endpoint(self_signed(keys[2]), pinned(keys[0]), port=addr_b[1])
        with pytest.RaisesGroup(pytest.RaisesExc(BindFailed, match="cannot bind"), flatten_subgroups=True):
            async with running(clash):
                pass
        for _ in range(2):  # the same endpoint object stopped and started again
            async with running(a):
                assert await a.request(keys[1].fingerprint, addr_b, b"x")


async def test_keepalive_holds_an_open_connection_and_idle_ones_close(keys):
    limits = dataclasses.replace(FAST, keepalive_interval=0.1, quic_idle_timeout=0.6, idle_close=2.0)
    a = endpoint(self_signed(keys[0]), pinned(keys[1]), limits=limits)
    b = endpoint(self_signed(keys[1]), pinned(keys[0]), limits=limits)
    async with running(a, b) as (_, addr_b):
        assert await a.request(keys[1].fingerprint, addr_b, b"x")
        connection = a._by_node[keys[1].fingerprint][0]
        await trio.sleep(1.2)  # twice QUIC's idle timeout: only the pings keep the connection up
        assert connection.established and a.peers()
        await wait_until(lambda: not a.peers(), seconds=10)  # then unused for idle_close: closed
        assert connection.closing
        assert await a.request(keys[1].fingerprint, addr_b, b"y")  # and redialled on demand
        assert a._by_node[keys[1].fingerprint][0] is not connection


def _has_ipv6_loopback():
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_loopback(keys):
    from node.transport import Endpoint

    a, b = (
        Endpoint(
            bind=("::1", 0), identity=self_signed(k), authenticator=pinned(*keys[:2]), handler=_peer_len, limits=FAST
        )
        for k in keys[:2]
    )
    async with running(a, b) as (_, addr_b):
        assert addr_b[0] == "::1"
        assert await a.request(keys[1].fingerprint, addr_b, b"six!!!") == b"6"


async def _peer_len(peer, request):
    return str(len(request)).encode()


async def test_a_failing_dial_fails_that_request_only(keys):
    a = endpoint(self_signed(keys[0]), pinned(keys[1]))
    b = endpoint(self_signed(keys[1]), pinned(keys[0]))
    async with running(a, b) as (_, addr_b):
        with pytest.raises(PeerUnreachable, match="cannot dial"):
            await a.request(keys[2].fingerprint, ("not an address", 1), b"x")
        assert await a.request(keys[1].fingerprint, addr_b, b"x")

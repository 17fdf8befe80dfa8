"""A misbehaving peer loses its connection and is penalised; the endpoint keeps serving others."""

import datetime as dt
import random
import struct

import pytest
import trio
from aioquic.quic import events

from node import codec
from node.transport import PeerRefused, PinnedKeys
from node.transport.connection import CloseCode
from node.transport.framing import MAX_FRAME, Kind, encode_frame

from .conftest import endpoint, pinned, raw_client, running, self_signed, wait_until

BAD_STREAMS = {
    "oversized": struct.pack(">I", MAX_FRAME + 1) + b"x" * 100,
    "not msgpack": struct.pack(">I", 3) + b"\xc1\xc1\xc1",
    "wrong shape": struct.pack(">I", 4) + codec.pack([0, 1]),
    "unknown kind": encode_frame(Kind.REQUEST, b"x").replace(b"\x92\x00", b"\x92\x07", 1),
    "truncated": struct.pack(">I", 50) + b"abc",
    "trailing bytes": encode_frame(Kind.REQUEST, b"x") + b"more",
    "response as request": encode_frame(Kind.RESPONSE, b"x"),
}


def checker(keys):
    allowed = PinnedKeys(frozenset({keys[1].fingerprint}))
    return lambda cert, chain: allowed.authenticate(cert, chain, dt.datetime.now(dt.UTC))


@pytest.mark.parametrize("case", sorted(BAD_STREAMS))
async def test_bad_frames_close_the_connection_and_honest_peers_carry_on(keys, case):
    served = []

    async def handler(peer, request):
        served.append(request)
        return b"ok"

    server = endpoint(self_signed(keys[1]), pinned(keys[0], keys[2]), handler=handler)
    honest = endpoint(self_signed(keys[2]), pinned(keys[1]))
    async with running(server, honest) as (address, _):
        bad = raw_client(address, self_signed(keys[0]), checker(keys))
        assert isinstance(await bad.connect(), events.HandshakeCompleted)
        await bad.send(0, BAD_STREAMS[case])
        closed = await bad.until(lambda e: isinstance(e, events.ConnectionTerminated))
        assert closed.error_code == CloseCode.PROTOCOL_VIOLATION, closed
        bad.close()
        assert served == []
        assert await honest.request(keys[1].fingerprint, address, b"still there") == b"ok"
        # the misbehaving node is penalised: it cannot come back for a while
        again = raw_client(address, self_signed(keys[0]), checker(keys))
        event = await again.connect()
        if isinstance(event, events.HandshakeCompleted):
            event = await again.until(lambda e: isinstance(e, events.ConnectionTerminated))
        assert "penalised" in event.reason_phrase
        again.close()


async def test_unidirectional_stream_is_a_violation(keys):
    server = endpoint(self_signed(keys[1]), pinned(keys[0]))
    async with running(server) as (address,):
        bad = raw_client(address, self_signed(keys[0]), checker(keys))
        await bad.connect()
        await bad.send(bad.quic.get_next_available_stream_id(is_unidirectional=True), b"hello")
        closed = await bad.until(lambda e: isinstance(e, events.ConnectionTerminated))
        assert closed.error_code == CloseCode.PROTOCOL_VIOLATION
        bad.close()


async def test_too_much_unfinished_request_data_is_a_violation(keys):
    from node.transport import Limits

    server = endpoint(self_signed(keys[1]), pinned(keys[0]), limits=Limits(max_inbound_buffer=2 * MAX_FRAME))
    async with running(server) as (address,):
        bad = raw_client(address, self_signed(keys[0]), checker(keys))
        await bad.connect()
        chunk = struct.pack(">I", MAX_FRAME - 10) + b"x" * (MAX_FRAME - 100)
        for _ in range(3):  # 3 streams of ~1 MiB, none finished: above max_inbound_buffer
            await bad.send(bad.quic.get_next_available_stream_id(), chunk, end_stream=False)
        closed = await bad.until(lambda e: isinstance(e, events.ConnectionTerminated), seconds=20)
        assert closed.error_code == CloseCode.PROTOCOL_VIOLATION
        assert "unread" in closed.reason_phrase
        bad.close()


async def test_random_datagrams_do_not_break_the_endpoint(keys):
    server = endpoint(self_signed(keys[1]), pinned(keys[0]))
    client = endpoint(self_signed(keys[0]), pinned(keys[1]))
    rng = random.Random(1234)
    async with running(server, client) as (address, _):
        assert await client.request(keys[1].fingerprint, address, b"before")
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        for i in range(600):
            size = rng.choice([1, 5, 40, 1200, 1300, 1500])
            data = bytearray(rng.randbytes(size))
            if i % 3 == 0:  # look like a long-header Initial packet of QUIC v1
                data[0] = 0xC0 | (data[0] & 0x0F)
                if size > 5:
                    data[1:5] = b"\x00\x00\x00\x01"
            elif i % 3 == 1 and size > 9:  # a short header aimed at a live connection id
                data[0] = 0x40 | (data[0] & 0x3F)
                data[1:9] = rng.choice(list(server._by_cid))
            await sock.sendto(bytes(data), address)
        sock.close()
        assert (
            await client.request(keys[1].fingerprint, address, b"after")
            == b"echo:" + keys[0].fingerprint.encode() + b":after"
        )
        other = endpoint(self_signed(keys[0]), pinned(keys[1]))
        async with running(other):
            assert await other.request(keys[1].fingerprint, address, b"new")


async def test_requests_to_a_penalised_peer_are_refused_locally(keys):
    a = endpoint(self_signed(keys[0]), pinned(keys[1]))
    async with running(a):
        a.penalise(keys[1].fingerprint, 30, "spam")
        with pytest.raises(PeerRefused, match="spam"):
            await a.request(keys[1].fingerprint, ("127.0.0.1", 9), b"x")


def forged_initial(rng):
    data = bytearray(rng.randbytes(1300))
    data[0] = 0xC3
    data[1:5] = b"\x00\x00\x00\x01"
    data[5] = 8  # destination connection id length
    data[14] = 8  # source connection id length
    data[23] = 0  # no token
    data[24:26] = b"\x44\x00"  # payload length 1024
    return bytes(data)


async def test_forged_initials_hold_no_connection_slot(keys):
    from node.transport import Limits

    server = endpoint(self_signed(keys[1]), pinned(keys[0]), limits=Limits(max_inbound_connections=1))
    client = endpoint(self_signed(keys[0]), pinned(keys[1]))
    rng = random.Random(99)
    async with running(server, client) as (address, _):
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        for _ in range(50):
            await sock.sendto(forged_initial(rng), address)
        sock.close()
        assert await client.request(keys[1].fingerprint, address, b"hi")
        assert server._inbound == 1


async def test_half_open_handshake_times_out(keys):
    from node.transport import Limits

    server = endpoint(self_signed(keys[1]), pinned(keys[0]), limits=Limits(handshake_timeout=0.3))
    async with running(server) as (address,):
        silent = raw_client(address)
        await silent.sock.bind(("127.0.0.1", 0))
        silent.quic.connect(address, trio.current_time())
        await silent.flush()  # one Initial, then silence
        await wait_until(lambda: server._inbound == 1)
        await wait_until(lambda: server._inbound == 0)  # the server gave up on the handshake
        assert server._by_cid == {}
        silent.close()


async def test_peer_stopping_or_resetting_streams_does_not_break_serving(keys):
    called, release = trio.Event(), trio.Event()

    async def handler(peer, request):
        called.set()
        await release.wait()
        return b"late answer"

    server = endpoint(self_signed(keys[1]), pinned(keys[0], keys[2]), handler=handler)
    honest = endpoint(self_signed(keys[2]), pinned(keys[1]))
    async with running(server, honest) as (address, _):
        rude = raw_client(address, self_signed(keys[0]), checker(keys))
        await rude.connect()
        rude.quic.send_stream_data(0, encode_frame(Kind.REQUEST, b"q"), end_stream=True)
        rude.quic.stop_stream(0, 0)  # "don't answer": the server's sender is reset
        await rude.flush()
        await called.wait()
        connection = next(iter(server._by_node[keys[0].fingerprint]))
        streams = connection.quic._streams
        await wait_until(lambda: 0 in streams and streams[0].sender._reset_error_code is not None)
        held = connection._inbound_bytes  # the request being served
        # a partial request that the peer then resets frees what it held
        rude.quic.send_stream_data(4, encode_frame(Kind.REQUEST, b"x" * 5000)[:3000])
        await rude.flush()
        await wait_until(lambda: connection._inbound_bytes >= held + 3000)
        rude.quic.reset_stream(4, 0)
        await rude.flush()
        await wait_until(lambda: connection._inbound_bytes == held)
        release.set()
        honest_reply = await honest.request(keys[1].fingerprint, address, b"hi")
        assert honest_reply == b"late answer"
        await wait_until(lambda: connection._inbound_bytes == 0 and connection._serving == 0)
        assert not connection.closing  # stopping and resetting streams is allowed, not misbehaviour
        rude.close()

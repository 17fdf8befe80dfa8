"""Fixtures for transport tests: keys, certificates, running endpoints and a raw QUIC client."""

import datetime as dt
import ssl
from contextlib import asynccontextmanager

import pytest
import trio
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from node.crypto import PrivateKey
from node.transport import Endpoint, Limits, PinnedKeys, TlsIdentity
from node.transport.mtls import ALPN, MutualTlsConnection, make_configuration
from node.trust import OriginCA, make_csr

ORIGIN = "alpha.example"
NOW = dt.datetime.now(dt.UTC)
FAST = Limits(request_timeout=5.0, handshake_timeout=3.0, redial_backoff_min=0.05, redial_backoff_max=0.2)


async def echo(peer, request: bytes) -> bytes:
    return b"echo:" + peer.node_id.encode() + b":" + request


@pytest.fixture(scope="session")
def keys():
    return [PrivateKey.from_seed(f"transport-node-{i}".encode()) for i in range(4)]


@pytest.fixture(scope="session")
def ca():
    return OriginCA.generate(ORIGIN, NOW - dt.timedelta(days=1))


def issued(ca, key, now=NOW, lifetime=dt.timedelta(hours=24)):
    return TlsIdentity(ca.issue(make_csr(key, ca.origin), now, lifetime), key.to_cryptography(), (ca.certificate,))


def self_signed(key):
    return TlsIdentity.self_signed(key, ORIGIN, NOW)


def pinned(*keys):
    return PinnedKeys(frozenset(k.fingerprint for k in keys))


@asynccontextmanager
async def running(*endpoints):
    """Run endpoints in a nursery; yield their bound addresses; stop them afterwards."""
    async with trio.open_nursery() as nursery:
        addresses = [await nursery.start(e.run) for e in endpoints]
        yield addresses
        nursery.cancel_scope.cancel()


def endpoint(identity, authenticator, handler=echo, limits=FAST, port=0):
    return Endpoint(
        bind=("127.0.0.1", port), identity=identity, authenticator=authenticator, handler=handler, limits=limits
    )


class RawClient:
    """A hand-driven aioquic client, for peers that misbehave on purpose."""

    def __init__(self, quic: QuicConnection, address):
        self.quic = quic
        self.address = address
        self.sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        self.events: list[events.QuicEvent] = []

    async def flush(self):
        for data, addr in self.quic.datagrams_to_send(trio.current_time()):
            await self.sock.sendto(data, addr)

    async def until(self, predicate, seconds=5.0):
        """Exchange datagrams until `predicate(event)` holds for some event; return that event."""
        with trio.fail_after(seconds):
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                await self.flush()
                timer = self.quic.get_timer()
                with trio.move_on_at(timer if timer is not None else trio.current_time() + 1):
                    data, addr = await self.sock.recvfrom(65536)
                    self.quic.receive_datagram(data, addr, trio.current_time())
                if timer is not None and trio.current_time() >= timer:
                    self.quic.handle_timer(trio.current_time())
                while (event := self.quic.next_event()) is not None:
                    self.events.append(event)

    async def connect(self):
        await self.sock.bind(("127.0.0.1", 0))
        self.quic.connect(self.address, trio.current_time())
        return await self.until(lambda e: isinstance(e, events.HandshakeCompleted | events.ConnectionTerminated))

    async def send(self, stream_id, data, end_stream=True):
        self.quic.send_stream_data(stream_id, data, end_stream=end_stream)
        await self.flush()

    def close(self):
        self.sock.close()


def raw_client(address, identity=None, check=None):
    """A client with our mutual TLS (when `check` is given) or plain aioquic (no client certificate)."""
    if check is not None:
        return RawClient(
            MutualTlsConnection(configuration=make_configuration(identity, is_client=True), check=check), address
        )
    configuration = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE)
    return RawClient(QuicConnection(configuration=configuration), address)


async def wait_until(predicate, seconds=10.0, step=0.02):
    """Poll `predicate` until it holds, failing after `seconds`."""
    with trio.fail_after(seconds):
        while True:
            if predicate():
                return
            await trio.sleep(step)

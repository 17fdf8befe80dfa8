"""Fixtures for trust tests: a CA node, a third node accepting only CA certificates, new nodes."""

import datetime as dt
import random
import socket
from contextlib import asynccontextmanager

import pytest
import trio

from node.crypto import PrivateKey
from node.transport import Endpoint, IssuedByCA, Limits, TlsIdentity
from node.trust import OriginCA, make_csr
from node.trust.authority import CertificateAuthority
from node.trust.bootstrap import bootstrap_gate, refuse_trust
from node.trust.manager import TrustManager
from node.trust.schedule import Backoff
from node.trust.service import CaService
from node.trust.transparency import certificate_fingerprint

ORIGIN = "alpha.example"
FAST = Limits(request_timeout=3.0, handshake_timeout=1.0, redial_backoff_min=0.05, redial_backoff_max=0.2)


def utc_now():
    return dt.datetime.now(dt.UTC)


async def echo(peer, request: bytes) -> bytes:
    return b"echo:" + request


def seeded_rng(seed: int):
    return random.Random(seed).randbytes


@pytest.fixture
def keys():
    return {name: PrivateKey.from_seed(f"trust-{name}".encode()) for name in ("ca", "a", "b", "c")}


@pytest.fixture
def authority():
    ca = OriginCA.generate(ORIGIN, utc_now() - dt.timedelta(hours=1))
    return CertificateAuthority(ca, rng=seeded_rng(1))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ca_node(authority, key, port=0, lifetime=None):
    """The CA-holding node: its own CA certificate, CA-issued peers and self-signed bootstrap traffic."""
    service = CaService(authority)
    endpoint = Endpoint(
        bind=("127.0.0.1", port),
        identity=service.own_identity(key, lifetime),
        authenticator=service.policy(),
        handler=bootstrap_gate(echo, service.handler),
        limits=FAST,
    )
    service.attach(endpoint)
    return service, endpoint


def issued_identity(authority, key, lifetime=None):
    cert = authority.sign(make_csr(key, ORIGIN), utc_now(), lifetime)
    return TlsIdentity(cert, key.to_cryptography(), (authority.ca.certificate,))


def third_node(authority, key, revoked=None):
    """A node that accepts only certificates of the origin CA."""
    policy = IssuedByCA(authority.ca.certificate, ORIGIN)
    return Endpoint(
        bind=("127.0.0.1", 0),
        identity=issued_identity(authority, key),
        authenticator=policy,
        handler=bootstrap_gate(echo, refuse_trust),
        limits=FAST,
    )


def new_node(key, authority, ca_key, ca_address, **options):
    """A node starting self-signed, with its TrustManager (not started)."""
    endpoint = Endpoint(
        bind=("127.0.0.1", 0),
        identity=TlsIdentity.self_signed(key, ORIGIN, utc_now()),
        authenticator=IssuedByCA(authority.ca.certificate, ORIGIN),  # replaced below
        handler=bootstrap_gate(echo, refuse_trust),
        limits=FAST,
    )
    options.setdefault("backoff", Backoff(initial=0.05, maximum=0.4))
    manager = TrustManager(
        endpoint=endpoint,
        key=key,
        origin=ORIGIN,
        ca_node_id=ca_key.fingerprint,
        ca_address=ca_address,
        ca_fingerprint=certificate_fingerprint(authority.ca.certificate),
        request_timeout=2.0,
        **options,
    )
    # the self-signed phase the daemon starts in: bootstrap identity and policy
    endpoint.set_identity(manager.bootstrap_identity())
    endpoint.set_authenticator(manager.bootstrap_policy())
    return endpoint, manager


@asynccontextmanager
async def running(*services):
    """Start services (endpoints, managers) in order; yield what each reported; stop them afterwards."""
    async with trio.open_nursery() as nursery:
        started = [await nursery.start(getattr(s, "run", s)) for s in services]
        yield started
        nursery.cancel_scope.cancel()


async def wait_until(predicate, seconds=10.0, step=0.02):
    with trio.fail_after(seconds):
        while True:
            if predicate():
                return
            await trio.sleep(step)


async def request_until_ok(endpoint, node_id, address, payload=b"hi", seconds=10.0):
    """Retry a request (the endpoint may be backing off after an earlier refusal) until it succeeds."""
    last = None
    with trio.fail_after(seconds):
        while True:
            try:
                return await endpoint.request(node_id, address, payload)
            except Exception as exc:  # noqa: BLE001 - kept to report the last failure
                last = exc
            await trio.sleep(0.05)
    raise AssertionError(last)

"""Fixtures for federation tests: origin records, a running DNS responder, CAs."""

import datetime as dt

import pytest
import trio

from node.crypto import PrivateKey
from node.federation.records import NodeEndpoint, OriginRecords, ca_pin
from node.federation.responder import DnsResponder
from node.trust import OriginCA

ORIGIN = "alpha.example"


def utc_now():
    return dt.datetime.now(dt.UTC)


class FakeClock:
    """An injected clock for the resolver's TTL cache (seconds)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def ca_alpha():
    return OriginCA.generate(ORIGIN, utc_now())


def node_ids(count: int) -> list[str]:
    return [PrivateKey.from_seed(f"fed-node-{i}".encode()).fingerprint for i in range(count)]


def make_records(ca: OriginCA, *, ttl: int = 60, count: int = 3, port: int = 7000) -> OriginRecords:
    endpoints = tuple(NodeEndpoint(nid, "127.0.0.1", port + i) for i, nid in enumerate(node_ids(count)))
    return OriginRecords(ca.origin, endpoints, (ca_pin(ca.certificate),), ttl=ttl)


class Zone:
    """A mutable zone source: tests change `records` while the responder runs."""

    def __init__(self, records: OriginRecords) -> None:
        self.records = records
        self.fail = False

    def __call__(self) -> OriginRecords:
        if self.fail:
            raise RuntimeError("zone source broken on purpose")
        return self.records


@pytest.fixture
async def responder(nursery, ca_alpha):
    zone = Zone(make_records(ca_alpha))
    service = DnsResponder(("127.0.0.1", 0), zone)
    address = await nursery.start(service.run)
    return service, zone, address


@pytest.fixture
def clock():
    return FakeClock()


__all__ = ["ORIGIN", "FakeClock", "Zone", "make_records", "node_ids", "trio", "utc_now"]

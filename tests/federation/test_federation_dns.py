"""The resolver against the real Trio responder over UDP on loopback."""

import dataclasses
import socket

import dns.asyncquery
import dns.asyncresolver
import dns.message
import dns.nameserver
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
import trio

from node.federation.errors import IncompatibleOrigin, OriginNotFound, ResolverUnavailable, UntrustedPin
from node.federation.records import NodeEndpoint, OriginRecords, ca_pin
from node.federation.resolver import OriginResolver
from node.federation.responder import DnsResponder
from node.trust import OriginCA

from .conftest import ORIGIN, make_records, node_ids, utc_now


def unused_udp_port() -> int:
    """A loopback UDP port with nobody listening (queries to it time out or are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_resolves_srv_tlsa_txt(responder, clock, ca_alpha):
    service, zone, address = responder
    resolver = OriginResolver([address], clock=clock, trust_dns_pins=True)
    found = await resolver.resolve(ORIGIN)
    assert found.source == "dns"
    assert found.versions == (1,)
    assert found.ca_pins == frozenset({ca_pin(ca_alpha.certificate)})
    assert sorted(found.endpoints, key=lambda e: e.port) == sorted(zone.records.endpoints, key=lambda e: e.port)
    assert found.expires_at == clock.now + 60
    assert service.stats.answered >= 3


async def test_cached_for_the_ttl_by_the_injected_clock(responder, clock, ca_alpha):
    _, zone, address = responder
    zone.records = make_records(ca_alpha, ttl=30)
    resolver = OriginResolver([address], clock=clock, pins={ORIGIN: [ca_pin(ca_alpha.certificate)]})
    first = await resolver.resolve(ORIGIN)
    sent = resolver.queries
    zone.records = make_records(ca_alpha, ttl=30, count=1, port=9000)  # the origin changes in DNS
    clock.now += 29
    assert await resolver.resolve(ORIGIN) is first
    assert resolver.queries == sent  # answered from the cache
    clock.now += 1  # the TTL ran out
    fresh = await resolver.resolve(ORIGIN)
    assert resolver.queries > sent
    assert [e.port for e in fresh.endpoints] == [9000]


async def test_glue_missing_falls_back_to_address_queries(responder, clock, ca_alpha):
    _, zone, address = responder
    resolver = OriginResolver([address], clock=clock, trust_dns_pins=True)
    # Ask the target's A record directly: the responder serves it as well as glue.
    target = f"{zone.records.endpoints[0].node_id}.{ORIGIN}."
    query = dns.message.make_query(target, "A")
    answer = await dns.asyncquery.udp(query, address[0], port=address[1], timeout=2)
    assert answer.rcode() == dns.rcode.NOERROR
    assert [r.address for r in answer.answer[0]] == ["127.0.0.1"]
    assert (await resolver.resolve(ORIGIN)).endpoints


async def test_ipv6_endpoints_resolve(responder, clock, ca_alpha):
    _, zone, address = responder
    ids = node_ids(2)
    zone.records = OriginRecords(
        ORIGIN,
        (NodeEndpoint(ids[0], "::1", 7100), NodeEndpoint(ids[1], "127.0.0.1", 7101)),
        (ca_pin(ca_alpha.certificate),),
    )
    found = await OriginResolver([address], clock=clock, trust_dns_pins=True).resolve(ORIGIN)
    assert {(e.host, e.port) for e in found.endpoints} == {("::1", 7100), ("127.0.0.1", 7101)}


async def test_unknown_origin_is_not_found(responder, clock):
    _, _, address = responder
    resolver = OriginResolver([address], clock=clock, trust_dns_pins=True, retry_delay=0)
    # Another zone: the responder refuses it, which dnspython reports as no usable nameserver.
    with pytest.raises(ResolverUnavailable) as refused:
        await resolver.resolve("beta.example")
    assert refused.value.origin == "beta.example"
    assert "static: no entry" in str(refused.value)
    # A name inside our zone that does not exist: NXDOMAIN, definitive, not retried.
    with pytest.raises(OriginNotFound) as missing:
        await resolver.resolve(f"nope.{ORIGIN}")
    assert "does not exist" in str(missing.value)
    assert len(missing.value.reasons) == 2  # one DNS reason (no retry), one static reason


async def test_static_map_when_dns_fails(clock, ca_alpha):
    static = make_records(ca_alpha, ttl=10, count=2, port=8000)
    resolver = OriginResolver(
        [("127.0.0.1", unused_udp_port())], clock=clock, static={ORIGIN: static}, attempts=2, timeout=0.3,
        retry_delay=0,
    )
    found = await resolver.resolve(ORIGIN)
    assert found.source == "static"
    assert found.endpoints == static.endpoints
    assert found.ca_pins == frozenset(static.ca_pins)
    assert resolver.queries == 2  # the SRV query was retried once before falling back
    assert found.expires_at == clock.now + 10


async def test_clear_error_when_nothing_resolves(clock):
    resolver = OriginResolver([("127.0.0.1", unused_udp_port())], clock=clock, attempts=3, timeout=0.2, retry_delay=0)
    with pytest.raises(ResolverUnavailable) as failed:
        await resolver.resolve(ORIGIN)
    message = str(failed.value)
    assert message.startswith(f"cannot resolve origin {ORIGIN!r}")
    assert "dns attempt 3" in message and "static: no entry" in message
    assert resolver.queries == 3


async def test_without_nameservers_only_static(clock, ca_alpha):
    resolver = OriginResolver([], clock=clock, static={ORIGIN: make_records(ca_alpha)})
    assert (await resolver.resolve(ORIGIN)).source == "static"
    with pytest.raises(ResolverUnavailable, match="no nameserver configured"):
        await resolver.resolve("beta.example")


async def test_dns_pin_trusted_only_when_configured(responder, clock, ca_alpha):
    _, zone, address = responder
    other = OriginCA.generate(ORIGIN, utc_now())
    # Not configured and not trusted explicitly: DNS alone is not enough (no DNSSEC validation).
    with pytest.raises(UntrustedPin, match="not validated"):
        await OriginResolver([address], clock=clock).resolve(ORIGIN)
    # Configured to another CA: DNS contradicts the configuration, refused.
    with pytest.raises(UntrustedPin, match="matches no fingerprint"):
        await OriginResolver([address], clock=clock, pins={ORIGIN: [ca_pin(other.certificate)]}).resolve(ORIGIN)
    # Configured (rollover: two pins) and DNS publishes one of them: that one is trusted.
    pins = [ca_pin(other.certificate), ca_pin(ca_alpha.certificate)]
    found = await OriginResolver([address], clock=clock, pins={ORIGIN: pins}).resolve(ORIGIN)
    assert found.ca_pins == frozenset({ca_pin(ca_alpha.certificate)})
    # DNS publishes no TLSA: the configured pins are the answer.
    zone.records = dataclasses.replace(zone.records, ca_pins=())
    found = await OriginResolver([address], clock=clock, pins={ORIGIN: pins}).resolve(ORIGIN)
    assert found.ca_pins == frozenset(pins)


async def test_untrusted_dns_pin_uses_the_static_entry(responder, clock, ca_alpha):
    _, _, address = responder
    other = OriginCA.generate(ORIGIN, utc_now())
    static = dataclasses.replace(make_records(ca_alpha), ca_pins=(ca_pin(other.certificate),))
    found = await OriginResolver([address], clock=clock, static={ORIGIN: static}).resolve(ORIGIN)
    assert found.source == "static"
    assert found.ca_pins == frozenset({ca_pin(other.certificate)})


async def test_zone_changes_are_served_and_failures_are_servfail(responder):
    service, zone, address = responder
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(address[0], address[1])]
    resolver.cache = None
    answer = await resolver.resolve(f"_node._udp.{ORIGIN}", "TXT")
    assert [b"".join(r.strings) for r in answer] == [b"node-protocol=1"]
    zone.records = dataclasses.replace(zone.records, versions=(1, 2))
    answer = await resolver.resolve(f"_node._udp.{ORIGIN}", "TXT")
    assert sorted(b"".join(r.strings) for r in answer) == [b"node-protocol=1", b"node-protocol=2"]
    zone.fail = True
    query = dns.message.make_query(f"_node._udp.{ORIGIN}", "SRV")
    reply = await dns.asyncquery.udp(query, address[0], port=address[1], timeout=2)
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert service.stats.source_failures == 1


async def test_port_zero_reports_the_bound_port(ca_alpha):
    async with trio.open_nursery() as nursery:
        address = await nursery.start(DnsResponder(("127.0.0.1", 0), lambda: make_records(ca_alpha)).run)
        assert address[0] == "127.0.0.1" and address[1] > 0
        nursery.cancel_scope.cancel()



async def test_incompatible_protocol_version(responder, clock, ca_alpha):
    _, zone, address = responder
    zone.records = dataclasses.replace(zone.records, versions=(7,))
    with pytest.raises(IncompatibleOrigin, match=r"speaks protocol versions \[7\]"):
        await OriginResolver([address], clock=clock, trust_dns_pins=True).resolve(ORIGIN)
    zone.records = dataclasses.replace(zone.records, versions=(1, 7))  # also speaks ours: fine
    assert (await OriginResolver([address], clock=clock, trust_dns_pins=True).resolve(ORIGIN)).versions == (1, 7)

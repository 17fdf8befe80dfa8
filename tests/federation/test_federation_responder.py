"""The authoritative responder: answers for its origin only, bounded, robust to garbage."""

import random

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from node.federation.records import NodeEndpoint, OriginRecords
from node.federation.resolver import OriginResolver
from node.federation.zone import MAX_QUERY_BYTES, ZoneAnswerer

from .conftest import ORIGIN, make_records

SERVICE = f"_node._udp.{ORIGIN}."


def ask(answerer, records, name, kind="SRV", **kwargs):
    query = dns.message.make_query(name, kind, **kwargs)
    wire = answerer.answer(query.to_wire(), records)
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert reply.id == query.id
    return reply


def test_answers_and_refusals(ca_alpha):
    records, answerer = make_records(ca_alpha), ZoneAnswerer()
    srv = ask(answerer, records, SERVICE)
    assert srv.rcode() == dns.rcode.NOERROR and srv.flags & dns.flags.AA
    assert len(srv.answer[0]) == 3
    assert {r.rdtype for r in srv.additional} == {dns.rdatatype.A}  # glue for the targets
    tlsa = ask(answerer, records, SERVICE, "TLSA")
    assert [(r.usage, r.selector, r.mtype, r.cert) for r in tlsa.answer[0]] == [(2, 1, 1, records.ca_pins[0])]
    # Another zone: refused, nothing answered, not authoritative.
    other = ask(answerer, records, "_node._udp.beta.example.")
    assert other.rcode() == dns.rcode.REFUSED and not other.answer and not other.flags & dns.flags.AA
    # A name of ours that does not exist: NXDOMAIN with the SOA (negative caching).
    missing = ask(answerer, records, f"nope.{ORIGIN}.")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert missing.authority[0].rdtype == dns.rdatatype.SOA
    # A name that exists without the asked type, and an empty non-terminal: NOERROR, no answer.
    for name, kind in ((SERVICE, "MX"), (f"_udp.{ORIGIN}.", "SRV")):
        empty = ask(answerer, records, name, kind)
        assert empty.rcode() == dns.rcode.NOERROR and not empty.answer and empty.authority
    # Case does not matter in DNS names.
    assert ask(answerer, records, SERVICE.upper()).answer


def test_protocol_oddities(ca_alpha):
    records, answerer = make_records(ca_alpha), ZoneAnswerer()
    query = dns.message.make_query(SERVICE, "SRV")
    query.set_opcode(dns.opcode.NOTIFY)
    reply = dns.message.from_wire(answerer.answer(query.to_wire(), records))
    assert reply.rcode() == dns.rcode.NOTIMP
    # A response (QR set) is never answered: two responders must not ping-pong.
    response = dns.message.make_response(dns.message.make_query(SERVICE, "SRV"))
    assert answerer.answer(response.to_wire(), records) is None
    # Oversized datagrams are not parsed at all.
    assert answerer.answer(b"\0" * (MAX_QUERY_BYTES + 1), records) is None
    # Zone source failure: SERVFAIL.
    reply = dns.message.from_wire(answerer.answer(dns.message.make_query(SERVICE, "SRV").to_wire(), None))
    assert reply.rcode() == dns.rcode.SERVFAIL


def test_glue_is_dropped_before_the_answer_is_truncated(ca_alpha):
    records, answerer = make_records(ca_alpha, count=20), ZoneAnswerer()
    query = dns.message.make_query(SERVICE, "SRV", use_edns=0, payload=1232)
    reply = dns.message.from_wire(answerer.answer(query.to_wire(), records))
    assert not reply.flags & dns.flags.TC
    assert len(reply.answer[0]) == 20 and not reply.additional


async def test_resolver_asks_for_addresses_without_glue(responder, clock, ca_alpha):
    _, zone, address = responder
    zone.records = make_records(ca_alpha, count=20)
    resolver = OriginResolver([address], clock=clock, trust_dns_pins=True)
    found = await resolver.resolve(ORIGIN)
    assert len(found.endpoints) == 20
    assert resolver.queries == 3 + 20 * 2  # SRV, TXT, TLSA, then A and AAAA per target


def test_large_answers_are_truncated_to_the_client_size(ca_alpha):
    records, answerer = make_records(ca_alpha, count=40), ZoneAnswerer()
    plain = dns.message.make_query(SERVICE, "SRV", use_edns=False)
    wire = answerer.answer(plain.to_wire(), records)
    assert len(wire) <= 512
    assert dns.message.from_wire(wire, continue_on_error=True).flags & dns.flags.TC
    edns = dns.message.make_query(SERVICE, "SRV", use_edns=0, payload=4096)
    wire = answerer.answer(edns.to_wire(), records)
    assert len(wire) <= 1232  # capped, whatever the client offers


def test_random_datagrams_never_break_the_answerer(ca_alpha):
    records, answerer = make_records(ca_alpha), ZoneAnswerer()
    rng = random.Random(7)
    valid = dns.message.make_query(SERVICE, "SRV").to_wire()
    for _ in range(1500):
        if rng.random() < 0.5:
            data = rng.randbytes(rng.randrange(0, 600))
        else:  # a valid query with a few bytes flipped: reaches deeper into the parser
            data = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        out = answerer.answer(data, records)
        assert out is None or len(out) <= 1232
    # Still answers correctly afterwards.
    assert ask(answerer, records, SERVICE).answer


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_hypothesis_garbage(data):
    records = OriginRecords(ORIGIN, (NodeEndpoint("0" * 20, "127.0.0.1", 1),), (b"\1" * 32,))
    out = ZoneAnswerer().answer(data, records)
    assert out is None or len(out) <= 1232


async def test_service_survives_garbage_and_answers(responder):
    service, _, address = responder
    rng = random.Random(11)
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    with sock:
        for _ in range(60):  # few enough to fit the socket's receive buffer even if the responder lags
            await sock.sendto(rng.randbytes(rng.randrange(1, 700)), address)
        await sock.sendto(b"", address)  # an empty datagram too
        # The valid query comes after the garbage on the same socket, so it is answered after it.
        reply = await dns.asyncquery.udp(dns.message.make_query(SERVICE, "SRV"), address[0], port=address[1], timeout=5)
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    assert service.stats.received >= 62
    assert service.stats.dropped >= 40  # most random bytes are not a query


async def test_other_zone_refused_over_udp(responder):
    _, _, address = responder
    reply = await dns.asyncquery.udp(
        dns.message.make_query("example.com.", "A"), address[0], port=address[1], timeout=5
    )
    assert reply.rcode() == dns.rcode.REFUSED


def test_cached_answers_carry_the_new_query_id(ca_alpha):
    records, answerer = make_records(ca_alpha), ZoneAnswerer()
    first = dns.message.make_query(SERVICE, "SRV")
    second = dns.message.make_query(SERVICE, "SRV")
    second.id = (first.id + 1) % 65536
    one = answerer.answer(first.to_wire(), records)
    two = answerer.answer(second.to_wire(), records)
    assert one[2:] == two[2:] and one[:2] != two[:2]
    assert dns.message.from_wire(two).id == second.id
    # A change of the records drops the cache: the next answer shows the new endpoints.
    fewer = make_records(ca_alpha, count=1)
    three = dns.message.from_wire(answerer.answer(second.to_wire(), fewer))
    assert len(three.answer[0]) == 1

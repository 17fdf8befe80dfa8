"""Answering DNS queries for one origin from its `OriginRecords` (sans-IO: bytes in, bytes out).

`ZoneAnswerer.answer(query_wire, records)` returns the response bytes, or None for a datagram that
deserves no answer (garbage, or a response: answering those would let two servers loop). It is
authoritative only for its own origin: other names get REFUSED, unknown names in the origin
NXDOMAIN, known names without the asked type an empty NOERROR (both with the SOA, so resolvers can
cache the negative answer). Answers fit the client's UDP size (512 bytes without EDNS, at most
1232 with it): the glue addresses of SRV targets are left out first, and only an answer section
that still does not fit comes back truncated (TC) for a retry over TCP, which we do not serve.
With EDNS that leaves room for about 20 node endpoints per origin (SRV targets are not compressed).
"""

from __future__ import annotations

import zlib

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from node.federation.records import (
    TLSA_MATCHING_SHA256,
    TLSA_SELECTOR_SPKI,
    TLSA_USAGE_TRUST_ANCHOR,
    TXT_PREFIX,
    OriginRecords,
    node_host,
    service_name,
)

MAX_QUERY_BYTES = 512  # a query is one question (+ EDNS); anything longer is not worth parsing
MAX_UDP_ANSWER = 1232  # the DNS flag day 2020 size: no IP fragmentation on common paths
MIN_UDP_ANSWER = 512

Table = dict[tuple[dns.name.Name, dns.rdatatype.RdataType], dns.rrset.RRset]


def build_table(records: OriginRecords) -> Table:
    """Every rrset the origin serves, by (owner name, type)."""
    ttl = records.ttl
    apex = f"{records.origin}."
    service = service_name(records.origin)
    texts: list[tuple[str, str, list[str]]] = [
        (apex, "SOA", [f"ns.{apex} hostmaster.{apex} {_serial(records)} 3600 600 86400 {ttl}"]),
        (apex, "NS", [f"ns.{apex}"]),
        (service, "TXT", [f'"{TXT_PREFIX}{v}"' for v in records.versions]),
        (
            service,
            "TLSA",
            [
                f"{TLSA_USAGE_TRUST_ANCHOR} {TLSA_SELECTOR_SPKI} {TLSA_MATCHING_SHA256} {pin.hex()}"
                for pin in records.ca_pins
            ],
        ),
        (service, "SRV", [f"10 10 {e.port} {node_host(records.origin, e.node_id)}" for e in records.endpoints]),
    ]
    for endpoint in records.endpoints:
        kind = "AAAA" if ":" in endpoint.host else "A"
        texts.append((node_host(records.origin, endpoint.node_id), kind, [endpoint.host]))
    grouped: dict[tuple[str, str], list[str]] = {}
    for owner, kind, rdatas in texts:
        grouped.setdefault((owner, kind), []).extend(rdatas)  # two endpoints of one node: one host, two addresses
    table: Table = {}
    for (owner, kind), rdatas in grouped.items():
        if rdatas:
            table[(dns.name.from_text(owner), dns.rdatatype.from_text(kind))] = dns.rrset.from_text_list(
                owner, ttl, "IN", kind, sorted(set(rdatas))
            )
    return table


def _serial(records: OriginRecords) -> int:
    # The SOA serial changes whenever the content does; a checksum is enough for that.
    return zlib.crc32(repr(records).encode()) or 1


class ZoneAnswerer:
    """Answers queries; rebuilds its table only when the records change.

    dnspython spends most of an answer rendering names, so rendered answers are cached: an answer
    is a pure function of the records and the query's bytes after its 2-byte id, so a cached one
    is reused with the new query's id in front. The cache is bounded and dropped on any change.
    """

    def __init__(self, cache_size: int = 1024) -> None:
        self._records: OriginRecords | None = None
        self._table: Table = {}
        self._names: set[dns.name.Name] = set()
        self._rendered: dict[bytes, bytes] = {}
        self._cache_size = cache_size

    def _table_for(self, records: OriginRecords) -> Table:
        if records != self._records:
            self._table = build_table(records)
            self._names = {name for name, _ in self._table}
            self._records = records
            self._rendered.clear()
        return self._table

    def answer(self, data: bytes, records: OriginRecords | None) -> bytes | None:
        """The response to one query datagram, or None to stay silent. `records` None means SERVFAIL."""
        if len(data) > MAX_QUERY_BYTES or len(data) < 12:
            return None
        if records is not None:
            self._table_for(records)
            cached = self._rendered.get(data[2:])
            if cached is not None:
                return data[:2] + cached
        response = self._render(data, records)
        if response is not None and records is not None:
            if len(self._rendered) >= self._cache_size:
                self._rendered.clear()  # crude but bounded: a flood of distinct queries costs renders, not memory
            self._rendered[data[2:]] = response[2:]
        return response

    def _render(self, data: bytes, records: OriginRecords | None) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # dnspython raises many types on garbage; none of them deserve an answer
            return None
        if query.flags & dns.flags.QR:
            return None
        response = dns.message.make_response(query)
        limit = MIN_UDP_ANSWER
        if query.edns >= 0:
            limit = max(MIN_UDP_ANSWER, min(query.payload, MAX_UDP_ANSWER))
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
        elif len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
        elif records is None:
            response.set_rcode(dns.rcode.SERVFAIL)
        else:
            self._fill(response, query.question[0], records)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            # Glue is optional (the resolver asks for addresses it lacks): drop it before truncating.
            response.additional.clear()
        except dns.exception.DNSException:
            return None
        try:
            return response.to_wire(max_size=limit, prefer_truncation=True)
        except dns.exception.DNSException:
            return None

    def _fill(self, response: dns.message.Message, question: dns.rrset.RRset, records: OriginRecords) -> None:
        apex = dns.name.from_text(f"{records.origin}.")
        qname, qtype = question.name, question.rdtype
        if question.rdclass != dns.rdataclass.IN or not qname.is_subdomain(apex):
            response.set_rcode(dns.rcode.REFUSED)
            return
        table = self._table_for(records)
        response.flags |= dns.flags.AA
        if qtype == dns.rdatatype.ANY:
            found = [rrset for (name, _), rrset in table.items() if name == qname]
        else:
            hit = table.get((qname, qtype))
            found = [hit] if hit is not None else []
        if found:
            response.answer.extend(found)
            for rrset in found:
                if rrset.rdtype == dns.rdatatype.SRV:
                    for rdata in rrset:
                        for kind in (dns.rdatatype.A, dns.rdatatype.AAAA):
                            glue = table.get((rdata.target, kind))
                            if glue is not None and glue not in response.additional:
                                response.additional.append(glue)
            return
        exists = any(name.is_subdomain(qname) for name in self._names)  # a name, or an empty non-terminal
        if not exists:
            response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(table[(apex, dns.rdatatype.SOA)])


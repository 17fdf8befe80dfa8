"""Locating another origin: its node endpoints, its CA pin and its protocol version.

`OriginResolver.resolve(origin)` asks DNS (dnspython's async resolver, which runs on Trio, with
the nameservers and ports given) for the records described in `node.federation.records`, and falls
back to a static map (from the truth/config) when DNS cannot answer. Results are cached for the
smallest TTL of the records used, by an injected clock. Transient DNS failures (timeouts, no usable
nameserver, SERVFAIL) are retried; NXDOMAIN or an origin without SRV records is definitive. Every
failure reaches the caller as one `ResolutionError` subclass naming the origin and each source's reason.

DNSSEC: dnspython does not validate it, so a TLSA answer is only a claim. A pin from DNS is trusted
only when it equals a fingerprint configured for that origin (the `pins` map or the static map's
`ca_pins`); with `trust_dns_pins=True` (tests, or behind a validating resolver) DNS pins are taken
as they are. DNS pins that contradict the configured ones are refused (`UntrustedPin`) rather
than silently replaced, since that is what a spoofed answer looks like.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import trio

from node.federation.errors import (
    FederationUsageError,
    IncompatibleOrigin,
    OriginNotFound,
    ResolutionError,
    ResolverUnavailable,
    UntrustedPin,
)
from node.federation.records import (
    PIN_BYTES,
    PROTOCOL_VERSION,
    TLSA_MATCHING_SHA256,
    TLSA_SELECTOR_SPKI,
    TLSA_USAGE_TRUST_ANCHOR,
    TXT_PREFIX,
    NodeEndpoint,
    OriginRecords,
    is_node_id,
    service_name,
)
from node.trust.certs import check_origin

Clock = Callable[[], float]
MAX_ENDPOINTS = 64  # an origin is one consensus group; more SRV records than this are not believed


@dataclass(frozen=True)
class ResolvedOrigin:
    """An origin located: where its nodes listen and which CA keys (pins) to trust for it."""

    origin: str
    endpoints: tuple[NodeEndpoint, ...]
    ca_pins: frozenset[bytes]  # trusted pins only
    versions: tuple[int, ...]
    source: Literal["dns", "static"]
    expires_at: float  # by the resolver's clock


class _Definitive(Exception):
    """DNS said the origin does not exist (not worth retrying)."""


class _Transient(Exception):
    """DNS did not answer usefully this time."""


class OriginResolver:
    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]],
        *,
        clock: Clock,
        static: Mapping[str, OriginRecords] | None = None,
        pins: Mapping[str, Iterable[bytes]] | None = None,
        trust_dns_pins: bool = False,
        attempts: int = 3,
        timeout: float = 2.0,
        retry_delay: float = 0.2,
    ) -> None:
        if attempts < 1:
            raise FederationUsageError("attempts must be at least 1")
        self.clock = clock
        self.static = dict(static or {})
        self.pins = {origin: frozenset(p) for origin, p in (pins or {}).items()}
        self.trust_dns_pins = trust_dns_pins
        self.attempts = attempts
        self.retry_delay = retry_delay
        self._cache: dict[str, ResolvedOrigin] = {}
        self._resolver: dns.asyncresolver.Resolver | None = None
        if nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in nameservers]
            # `timeout` is per nameserver: a dead one (a stopped node's responder) must leave time
            # to ask the next, so the lifetime of one query covers every nameserver once.
            resolver.timeout = timeout
            resolver.lifetime = timeout * len(nameservers) + 0.1
            resolver.rotate = True  # spread queries over the origin's responders
            resolver.cache = None  # we cache ourselves, by the injected clock
            resolver.use_edns(0, 0, 1232)  # dnspython asks without EDNS by default: 512-byte answers
            self._resolver = resolver
        self.queries = 0  # DNS queries sent (tests check caching with it)

    def configured_pins(self, origin: str) -> frozenset[bytes]:
        pins = self.pins.get(origin, frozenset())
        static = self.static.get(origin)
        return pins | frozenset(static.ca_pins) if static is not None else pins

    def forget(self, origin: str) -> None:
        """Drop a cached answer (e.g. after every endpoint of it failed)."""
        self._cache.pop(origin, None)

    async def resolve(self, origin: str) -> ResolvedOrigin:
        check_origin(origin)
        now = self.clock()
        cached = self._cache.get(origin)
        if cached is not None and cached.expires_at > now:
            return cached
        reasons: list[str] = []
        definitive = False
        if self._resolver is not None:
            try:
                found = await self._from_dns(origin, reasons)
            except _Definitive as exc:
                definitive = True
                reasons.append(f"dns: {exc}")
            except UntrustedPin as exc:
                reasons.extend(exc.reasons)
                if origin not in self.static:
                    raise UntrustedPin(origin, reasons) from None
            else:
                if found is not None and PROTOCOL_VERSION not in found.versions:
                    reasons.append(f"dns: the origin speaks protocol versions {list(found.versions)}, we speak "
                                   f"{PROTOCOL_VERSION}")
                    if origin not in self.static:
                        raise IncompatibleOrigin(origin, reasons)
                elif found is not None:
                    self._cache[origin] = found
                    return found
        else:
            reasons.append("dns: no nameserver configured")
        static = self.static.get(origin)
        if static is not None:
            found = ResolvedOrigin(
                origin, static.endpoints, frozenset(static.ca_pins), static.versions, "static", now + static.ttl
            )
            self._cache[origin] = found
            return found
        reasons.append("static: no entry")
        error = OriginNotFound if definitive else ResolverUnavailable
        raise error(origin, reasons)

    async def _from_dns(self, origin: str, reasons: list[str]) -> ResolvedOrigin | None:
        """The DNS answer, or None after `attempts` transient failures (each one noted in `reasons`)."""
        for attempt in range(self.attempts):
            if attempt:
                await trio.sleep(self.retry_delay * 2 ** (attempt - 1))
            try:
                return await self._query_origin(origin)
            except _Transient as exc:
                reasons.append(f"dns attempt {attempt + 1}: {exc}")
        return None

    async def _lookup(self, name: str, kind: str, *, required: bool) -> dns.resolver.Answer | None:
        assert self._resolver is not None
        self.queries += 1
        try:
            return await self._resolver.resolve(name, kind, raise_on_no_answer=True)
        except dns.resolver.NXDOMAIN as exc:
            raise _Definitive(f"{name} does not exist") from exc
        except dns.resolver.NoAnswer as exc:
            if required:
                raise _Definitive(f"{name} has no {kind} records") from exc
            return None
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise _Transient(f"{kind} {name}: {type(exc).__name__}") from exc
        except dns.exception.DNSException as exc:  # YXDOMAIN, malformed answers and the like
            raise _Transient(f"{kind} {name}: {type(exc).__name__}: {exc}") from exc

    async def _query_origin(self, origin: str) -> ResolvedOrigin:
        owner = service_name(origin)
        srv = await self._lookup(owner, "SRV", required=True)
        txt = await self._lookup(owner, "TXT", required=False)
        tlsa = await self._lookup(owner, "TLSA", required=False)
        assert srv is not None and srv.rrset is not None
        ttls = [srv.rrset.ttl]
        endpoints: list[NodeEndpoint] = []
        apex = dns.name.from_text(f"{origin}.")
        for rdata in list(srv.rrset)[:MAX_ENDPOINTS]:
            target: dns.name.Name = rdata.target
            node_id = target.labels[0].decode("ascii", "replace") if target.labels else ""
            if target.parent() != apex or not is_node_id(node_id):
                continue  # not a node of this origin: its certificate could not match anyway
            for host, ttl in await self._addresses(target, srv.response):
                ttls.append(ttl)
                endpoints.append(NodeEndpoint(node_id, host, int(rdata.port)))
        if not endpoints:
            raise _Definitive(f"{owner} names no usable node endpoint")
        versions: list[int] = []
        if txt is not None and txt.rrset is not None:
            ttls.append(txt.rrset.ttl)
            for rdata in txt.rrset:
                text = b"".join(rdata.strings).decode("ascii", "replace")
                if text.startswith(TXT_PREFIX) and text[len(TXT_PREFIX) :].isdigit():
                    versions.append(int(text[len(TXT_PREFIX) :]))
        if not versions:
            raise _Definitive(f"{owner} publishes no protocol version (TXT {TXT_PREFIX}<n>)")
        dns_pins: set[bytes] = set()
        if tlsa is not None and tlsa.rrset is not None:
            ttls.append(tlsa.rrset.ttl)
            for rdata in tlsa.rrset:
                if (rdata.usage, rdata.selector, rdata.mtype) == (
                    TLSA_USAGE_TRUST_ANCHOR,
                    TLSA_SELECTOR_SPKI,
                    TLSA_MATCHING_SHA256,
                ) and len(rdata.cert) == PIN_BYTES:
                    dns_pins.add(bytes(rdata.cert))
        trusted = self._trusted_pins(origin, frozenset(dns_pins))
        return ResolvedOrigin(
            origin, tuple(endpoints), trusted, tuple(sorted(set(versions))), "dns", self.clock() + min(ttls)
        )

    async def _addresses(self, target: dns.name.Name, response: dns.message.Message) -> list[tuple[str, int]]:
        """A and AAAA of an SRV target: from the answer's additional section, else by asking."""
        found = [
            (rdata.address, rrset.ttl)
            for rrset in response.additional
            if rrset.name == target and rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
            for rdata in rrset
        ]
        if found:
            return found
        for kind in ("A", "AAAA"):
            try:
                answer = await self._lookup(target.to_text(), kind, required=False)
            except _Definitive:
                return []
            if answer is not None and answer.rrset is not None:
                found.extend((rdata.address, answer.rrset.ttl) for rdata in answer.rrset)
        return found

    def _trusted_pins(self, origin: str, dns_pins: frozenset[bytes]) -> frozenset[bytes]:
        configured = self.configured_pins(origin)
        if configured:
            if not dns_pins:
                return configured
            trusted = dns_pins & configured
            if not trusted:
                raise UntrustedPin(origin, ["dns: the TLSA pin matches no fingerprint configured for the origin"])
            return trusted
        if self.trust_dns_pins and dns_pins:
            return dns_pins
        raise UntrustedPin(origin, ["dns: no CA pin configured for the origin and DNS answers are not validated"])


__all__ = ["OriginResolver", "ResolutionError", "ResolvedOrigin"]

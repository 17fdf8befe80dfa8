"""What an origin publishes in DNS, and the names it publishes it under.

One origin `O` publishes, all at the owner name `_node._udp.O`:

- SRV `_node._udp.O` -> `<node_id>.O:<port>`, one per node endpoint; the target's first label is the
  node id (the fingerprint the transport dials by), and the target has A/AAAA records (IP literals);
- TLSA `2 1 1 <sha256(CA SubjectPublicKeyInfo)>`: the origin CA's key pin (DANE trust-anchor style);
- TXT `"node-protocol=<n>"`: the federation protocol version(s) the origin speaks.

Why the TLSA record sits at the SRV owner and not at `_<port>._udp.<host>`: every node of an origin
presents a certificate of the same origin CA, so the pin is a property of the origin, not of a host
or port; one name gives it, and one query less per node. With usage 2 the peer must send the CA
certificate in its TLS chain (see `node.federation.pinning`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from node.crypto import sha256
from node.federation.errors import FederationUsageError
from node.trust.certs import check_origin

SERVICE_LABEL = "_node._udp"
PROTOCOL_VERSION = 1
TXT_PREFIX = "node-protocol="
TLSA_USAGE_TRUST_ANCHOR = 2  # DANE-TA
TLSA_SELECTOR_SPKI = 1
TLSA_MATCHING_SHA256 = 1
DEFAULT_TTL = 60
NODE_ID_CHARS = 20  # node.crypto.fingerprint: 10 bytes in hex
PIN_BYTES = 32


def ca_pin(ca_certificate: x509.Certificate) -> bytes:
    """SHA-256 of the CA's SubjectPublicKeyInfo (DER): what a TLSA `2 1 1` record carries."""
    spki = ca_certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return sha256(spki)


def service_name(origin: str) -> str:
    """The owner name of an origin's SRV, TLSA and TXT records (absolute, with the trailing dot)."""
    return f"{SERVICE_LABEL}.{check_origin(origin)}."


def node_host(origin: str, node_id: str) -> str:
    """The SRV target naming one node: `<node_id>.<origin>.`."""
    return f"{node_id}.{check_origin(origin)}."


def is_node_id(label: str) -> bool:
    return len(label) == NODE_ID_CHARS and all(c in "0123456789abcdef" for c in label)


@dataclass(frozen=True, order=True)
class NodeEndpoint:
    """One node of an origin: its id (certificate key fingerprint) and its QUIC address (an IP literal)."""

    node_id: str
    host: str
    port: int

    def __post_init__(self) -> None:
        if not is_node_id(self.node_id):
            raise FederationUsageError(f"{self.node_id!r} is not a node id ({NODE_ID_CHARS} lower-case hex chars)")
        try:
            ipaddress.ip_address(self.host)
        except ValueError as exc:
            raise FederationUsageError(f"{self.host!r} is not an IP address") from exc
        if not 0 < self.port < 65536:
            raise FederationUsageError(f"port {self.port} is out of range")

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


@dataclass(frozen=True)
class OriginRecords:
    """Everything an origin publishes about itself; the engine derives it from its chain's state.

    `ca_pins` may hold more than one pin while the CA rolls over; `ttl` is the TTL of every record.
    """

    origin: str
    endpoints: tuple[NodeEndpoint, ...]
    ca_pins: tuple[bytes, ...]
    versions: tuple[int, ...] = (PROTOCOL_VERSION,)
    ttl: int = DEFAULT_TTL

    def __post_init__(self) -> None:
        check_origin(self.origin)
        for pin in self.ca_pins:
            if len(pin) != PIN_BYTES:
                raise FederationUsageError(f"a CA pin is {PIN_BYTES} bytes (SHA-256), not {len(pin)}")
        if not 0 <= self.ttl <= 86400:
            raise FederationUsageError(f"ttl {self.ttl} is outside 0..86400 seconds")


def origin_records(
    origin: str,
    nodes: Iterable[tuple[str, str, int]],
    ca_certificates: Iterable[x509.Certificate],
    *,
    versions: tuple[int, ...] = (PROTOCOL_VERSION,),
    ttl: int = DEFAULT_TTL,
) -> OriginRecords:
    """What the engine publishes: `(node_id, ip, port)` of each member and the CA certificate(s) in use."""
    endpoints = tuple(sorted(NodeEndpoint(node_id, host, port) for node_id, host, port in nodes))
    pins = tuple(sorted({ca_pin(cert) for cert in ca_certificates}))
    return OriginRecords(origin, endpoints, pins, versions, ttl)

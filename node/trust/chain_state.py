"""The certificate transparency log as chain state: its key layout, how to read it, and how the
arguments of the record actions are built (and, for revocations, signed by the origin CA).

Key layout (values canonical msgpack, written by `node.trust.chain_actions` only):

    certs/ca                  {"pem": str, "fingerprint": hex}: the origin CA the log is anchored to
    certs/count               int: number of log entries
    certs/log/<seq:010d>      one entry (see `LogEntry`), JSON-like
    certs/serial/<hex>        {"node_id", "issued_at", "not_after", "seq"}: a recorded certificate
    certs/node/<node_id>      hex serial of the node's latest recorded certificate
    certs/revoked             {"serials": [hex...], "node_ids": [...]} sorted

Serials are lower-case hex strings (they are up to 159 bits: the codec's integers are 64-bit).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from node import codec
from node.crypto import tagged
from node.trust.certs import certificate_pem
from node.trust.verify import RevocationSet

RECORD_PATH = "/certificates/record"
REVOKE_PATH = "/certificates/revoke"
REVOKE_DOMAIN = b"node/trust/revocation/v1"

CA_KEY = b"certs/ca"
COUNT_KEY = b"certs/count"
REVOKED_KEY = b"certs/revoked"
SERIAL_RE = re.compile(r"^[0-9a-f]{1,40}$")
NODE_ID_RE = re.compile(r"^[0-9a-f]{20}$")


class Reader(Protocol):
    def get(self, key: bytes, /) -> bytes | None: ...


def log_key(seq: int) -> bytes:
    return b"certs/log/" + f"{seq:010d}".encode()


def serial_key(serial_hex: str) -> bytes:
    return b"certs/serial/" + serial_hex.encode()


def node_key(node_id: str) -> bytes:
    return b"certs/node/" + node_id.encode()


def serial_hex(serial: int) -> str:
    return f"{serial:x}"


@dataclass(frozen=True)
class ChainTrustView:
    """What a node needs from the log to judge its peers: recorded serials and revocations."""

    recorded: frozenset[int]
    revoked: RevocationSet
    ca_fingerprint: str | None


def _get_obj(reader: Reader, key: bytes) -> Any:
    """A value the record actions wrote (canonical msgpack, bounded by the envelope limit), or None."""
    raw = reader.get(key)
    return None if raw is None else msgpack.unpackb(raw, raw=False, strict_map_key=False)


def log_count(reader: Reader) -> int:
    return int(_get_obj(reader, COUNT_KEY) or 0)


def log_entries(reader: Reader, start: int = 0) -> Iterator[dict[str, Any]]:
    """The log entries from `start` on, oldest first."""
    count = log_count(reader)
    for seq in range(start, count):
        entry = _get_obj(reader, log_key(seq))
        if isinstance(entry, dict):
            yield entry


def revocations(reader: Reader) -> RevocationSet:
    raw = _get_obj(reader, REVOKED_KEY) or {}
    return RevocationSet(
        frozenset(int(s, 16) for s in raw.get("serials", [])), frozenset(raw.get("node_ids", []))
    )


def anchor_of(reader: Reader) -> str | None:
    """The fingerprint of the CA the log is anchored to (None before the first record)."""
    anchor = _get_obj(reader, CA_KEY)
    return str(anchor["fingerprint"]) if isinstance(anchor, dict) else None


def chain_view(reader: Reader) -> ChainTrustView:
    """Everything recorded so far (one pass over the log)."""
    recorded = {int(e["serial"], 16) for e in log_entries(reader) if e.get("action") in ("issued", "renewed")}
    return ChainTrustView(frozenset(recorded), revocations(reader), anchor_of(reader))


def is_recorded(reader: Reader, serial: int) -> bool:
    return reader.get(serial_key(serial_hex(serial))) is not None


# -- building the actions' arguments -----------------------------------------------------------------


def record_args(cert: x509.Certificate, ca: x509.Certificate) -> dict[str, Any]:
    """Arguments of RECORD_PATH: the certificate and the CA certificate that issued it (PEM)."""
    return {"cert": certificate_pem(cert).decode(), "ca": certificate_pem(ca).decode()}


def revocation_message(origin: str, serial: str, node_id: str, revoked_at: int) -> bytes:
    return tagged(REVOKE_DOMAIN, codec.pack([origin, serial, node_id, revoked_at]))


def revoke_args(
    *,
    origin: str,
    node_id: str,
    serial: int | None,
    revoked_at: dt.datetime,
    reason: str,
    ca_key: ec.EllipticCurvePrivateKey | None,
) -> dict[str, Any]:
    """Arguments of REVOKE_PATH; `ca_key` signs them (only a node revoking itself may leave it out)."""
    serial_text = "" if serial is None else serial_hex(serial)
    at = int(revoked_at.timestamp())
    args: dict[str, Any] = {"node_id": node_id, "serial": serial_text, "revoked_at": at, "reason": reason[:200]}
    if ca_key is not None:
        message = revocation_message(origin, serial_text, node_id, at)
        args["proof"] = ca_key.sign(message, ec.ECDSA(hashes.SHA256())).hex()
    return args


def proof_valid(ca: x509.Certificate, message: bytes, proof: bytes) -> bool:
    key = ca.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(proof, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True

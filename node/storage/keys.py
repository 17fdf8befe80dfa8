"""Keyspaces of the store and the byte layout of composite keys.

Every key on disk is one keyspace byte followed by the key inside that space.  No keyspace
byte is a prefix of another, so a prefix scan never leaks into a neighbour.  Integers are
fixed-width big-endian so that byte order is numeric order (range scans, "last" lookups).
Variable-length parts of composite keys carry a 2-byte length so that one creator's keys
never interleave with another's whose id happens to share a prefix.
"""

from __future__ import annotations

import enum

from node.storage.errors import StorageUsageError


class Space(enum.Enum):
    """One keyspace per kind of record; the value is its on-disk prefix byte."""

    META = b"M"  # magic, schema version, last-applied marker
    EVENTS = b"E"  # event hash -> event bytes
    EVENT_INDEX = b"I"  # lp(creator) + u64(index) -> event hash
    ROUNDS = b"R"  # u64(round) -> round record
    BLOCKS = b"B"  # u64(index) -> block bytes
    STATE_HASHES = b"H"  # u64(index) -> state hash after applying that block
    BLOCK_SIGNATURES = b"S"  # u64(index) + lp(signer) -> signature
    FORK_EVIDENCE = b"F"  # lp(creator) + evidence id -> evidence bytes
    PEER_SETS = b"P"  # u64(first round) -> peer set bytes
    ELECTIONS = b"L"  # u64(round) -> election record
    STATE = b"T"  # application key -> value
    STATE_INDEX = b"X"  # secondary indexes over the state, owned by the actions layer
    NONCES = b"N"  # actor/nonce key -> value (replay protection across restarts)
    RECEIPTS = b"C"  # receipt key (e.g. action id) -> receipt bytes


U64_MAX = (1 << 64) - 1


def u64(n: int) -> bytes:
    """A non-negative integer as 8 big-endian bytes (byte order = numeric order)."""
    if not 0 <= n <= U64_MAX:
        raise StorageUsageError(f"integer {n} does not fit a u64 key")
    return n.to_bytes(8, "big")


def from_u64(data: bytes) -> int:
    if len(data) != 8:
        raise StorageUsageError(f"expected an 8-byte integer key, got {len(data)} bytes")
    return int.from_bytes(data, "big")


def lp(part: bytes) -> bytes:
    """A variable-length key part with a 2-byte length in front."""
    if len(part) > 0xFFFF:
        raise StorageUsageError(f"key part of {len(part)} bytes is too long")
    return len(part).to_bytes(2, "big") + part


def split_lp(data: bytes) -> tuple[bytes, bytes]:
    """Undo `lp`: return (part, rest)."""
    if len(data) < 2:
        raise StorageUsageError("truncated length-prefixed key")
    n = int.from_bytes(data[:2], "big")
    if len(data) < 2 + n:
        raise StorageUsageError("truncated length-prefixed key")
    return data[2 : 2 + n], data[2 + n :]


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])

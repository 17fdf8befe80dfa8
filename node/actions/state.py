"""The state the actions read and write, and its key layout.

Execution reads through a `StateReader` (the storage layer provides one over LevelDB; tests use a
dict) and writes only into `Overlay`s, so a failing action, or a whole block, changes nothing
until the caller applies `BlockResult.writes` in one atomic batch.

Key layout (all keys are ASCII; values are canonical msgpack unless said otherwise):

    meta/state_hash                 32 raw bytes: the state hash after the last executed block
    meta/block_index                int: index of the last executed block
    user/<actor_id>                 {"key": bytes, "key_type": str, "name": str, "since": int}
    keyidx/<fingerprint(key)>       str actor_id (which actor a public key currently belongs to)
    nonce/<actor_id>                int: the highest nonce the actor has used successfully
    point/<name>                    {"owner": actor_id, "open": bool, "since": int}
    member/<name>/<actor_id>        str role: "owner" | "admin" | "member"
    signalseq/<name>                int: number of signals posted to the point
    signal/<name>/<seq:020d>        {"from": actor_id, "body": JSON-like, "action": bytes, "block": int}
    exec/req/<request_id hex>       executor request: tracker state, path, status, result
    exec/pending                    [[deadline_ns, request_id hex], ...] sorted: requests awaiting responses

An actor id is the fingerprint of the actor's first key; it stays the same across key rotations.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgpack

from node import codec

STATE_HASH_KEY = b"meta/state_hash"
BLOCK_INDEX_KEY = b"meta/block_index"
EXEC_PENDING_KEY = b"exec/pending"
GENESIS_STATE_HASH = bytes(32)


class StateReader(Protocol):
    def get(self, key: bytes, /) -> bytes | None: ...


def user_key(actor_id: str) -> bytes:
    return b"user/" + actor_id.encode()


def key_index_key(key_fingerprint: str) -> bytes:
    return b"keyidx/" + key_fingerprint.encode()


def nonce_key(actor_id: str) -> bytes:
    return b"nonce/" + actor_id.encode()


def point_key(point: str) -> bytes:
    return b"point/" + point.encode()


def member_key(point: str, actor_id: str) -> bytes:
    return b"member/" + point.encode() + b"/" + actor_id.encode()


def signal_seq_key(point: str) -> bytes:
    return b"signalseq/" + point.encode()


def signal_key(point: str, seq: int) -> bytes:
    return b"signal/" + point.encode() + b"/" + f"{seq:020d}".encode()


def exec_request_key(request_id: bytes) -> bytes:
    return b"exec/req/" + request_id.hex().encode()


class Overlay:
    """Writes buffered over a reader; `None` marks a deletion.  Nest one per action over the block's."""

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes, /) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self._base.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = None

    def get_obj(self, key: bytes) -> Any:
        """The decoded value at `key`, or None.

        State holds only what execution wrote through `put_obj` (canonical and bounded by the
        envelope limit), so it is decoded without the checks `codec.unpack` applies to peer input.
        """
        raw = self.get(key)
        return None if raw is None else msgpack.unpackb(raw, raw=False, strict_map_key=False)

    def put_obj(self, key: bytes, value: Any) -> None:
        self.put(key, codec.pack(value))

    def merge_into(self, parent: Overlay) -> None:
        parent.writes.update(self.writes)

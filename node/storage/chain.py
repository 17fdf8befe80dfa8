"""The chain store: what the node persists about the hashgraph, the chain and the state.

Values are opaque bytes: the consensus and actions layers own their encodings.  The one rule
this module enforces is about applying blocks: `commit_block` writes the block, its state
changes, receipts, nonces, index changes, its state hash and the last-applied marker in ONE
LevelDB batch, so a crash leaves all of a block or none of it; and it refuses an index that was
already applied (never double-apply) or one that skips ahead (never leave a gap).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple, Protocol

from node.codec import DecodeError, pack, unpack
from node.storage.errors import AlreadyApplied, CorruptStore, OutOfOrder, StorageUsageError
from node.storage.keys import Space, from_u64, lp, split_lp, u64
from node.storage.kv import KVStore, Reader, Snapshot

_APPLIED_KEY = b"applied"


class Applied(NamedTuple):
    """The last block whose effects are in the state, and the state hash after it."""

    block_index: int
    state_hash: bytes


class StateReader(Protocol):
    """Read access to the application state (key -> value bytes)."""

    def get(self, key: bytes) -> bytes | None: ...

    def iterate(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]: ...


class StateView:
    """A `StateReader` over one keyspace of the live store or of a snapshot."""

    def __init__(self, reader: Reader, space: Space = Space.STATE) -> None:
        self._reader = reader
        self._space = space

    def get(self, key: bytes) -> bytes | None:
        return self._reader.get(self._space, key)

    def iterate(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        return self._reader.iterate(self._space, prefix=prefix)


def _read_applied(reader: Reader) -> Applied | None:
    raw = reader.get(Space.META, _APPLIED_KEY)
    if raw is None:
        return None
    try:
        index, state_hash = unpack(raw)
    except (DecodeError, ValueError, TypeError) as exc:
        raise CorruptStore(f"store {reader.path} has an unreadable last-applied marker") from exc
    if not isinstance(index, int) or not isinstance(state_hash, bytes):
        raise CorruptStore(f"store {reader.path} has an invalid last-applied marker")
    return Applied(index, state_hash)


class ChainSnapshot:
    """A consistent view of blocks, state and marker at one instant (a LevelDB snapshot)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self.state = StateView(snapshot)

    def last_applied(self) -> Applied | None:
        return _read_applied(self._snapshot)

    def get_block(self, index: int) -> bytes | None:
        return self._snapshot.get(Space.BLOCKS, u64(index))

    def get_receipt(self, key: bytes) -> bytes | None:
        return self._snapshot.get(Space.RECEIPTS, key)

    def close(self) -> None:
        self._snapshot.close()

    def __enter__(self) -> ChainSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChainStore:
    """Events, rounds, blocks, signatures, fork evidence, peer sets, elections and state."""

    def __init__(self, kv: KVStore) -> None:
        self.kv = kv
        self.state = StateView(kv)
        self._commit_lock = threading.Lock()  # check-then-write of commit_block is one step
        self._applied: Applied | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, sync: bool = True) -> ChainStore:
        return cls(KVStore(path, sync=sync))

    def close(self) -> None:
        self.kv.close()

    def __enter__(self) -> ChainStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self) -> ChainSnapshot:
        return ChainSnapshot(self.kv.snapshot())

    # -- events ----------------------------------------------------------------------------------

    def put_event(self, event_hash: bytes, creator: bytes, index: int, event: bytes) -> None:
        self.put_events([(event_hash, creator, index, event)])

    def put_events(self, events: Iterable[tuple[bytes, bytes, int, bytes]], *, sync: bool | None = None) -> None:
        """Store (hash, creator, creator's index, event bytes) items in one batch.

        `sync=False` skips the fsync: the batch still survives a killed process (it is in the OS),
        and a later synced write flushes the log up to and including it."""
        with self.kv.batch(sync=sync) as b:
            for event_hash, creator, index, event in events:
                b.put(Space.EVENTS, event_hash, event)
                b.put(Space.EVENT_INDEX, lp(creator) + u64(index), event_hash)

    def get_event(self, event_hash: bytes) -> bytes | None:
        return self.kv.get(Space.EVENTS, event_hash)

    def event_hash_at(self, creator: bytes, index: int) -> bytes | None:
        return self.kv.get(Space.EVENT_INDEX, lp(creator) + u64(index))

    def get_event_at(self, creator: bytes, index: int) -> bytes | None:
        event_hash = self.event_hash_at(creator, index)
        return None if event_hash is None else self.get_event(event_hash)

    def creator_events(self, creator: bytes, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """(index, event hash) of one creator's events from `start`, in index order."""
        for key, event_hash in self.kv.iterate(Space.EVENT_INDEX, prefix=lp(creator), start=u64(start)):
            yield from_u64(key[-8:]), event_hash

    def last_event_index(self, creator: bytes) -> int | None:
        item = self.kv.last(Space.EVENT_INDEX, prefix=lp(creator))
        return None if item is None else from_u64(item[0][-8:])

    def all_events(self) -> Iterator[tuple[bytes, bytes]]:
        """(hash, event bytes) of every stored event, in hash order (for replay at start)."""
        return self.kv.iterate(Space.EVENTS)

    # -- rounds, peer sets, elections -----------------------------------------------------------

    def put_round(self, round_: int, record: bytes) -> None:
        self.kv.put(Space.ROUNDS, u64(round_), record)

    def get_round(self, round_: int) -> bytes | None:
        return self.kv.get(Space.ROUNDS, u64(round_))

    def last_round(self) -> int | None:
        item = self.kv.last(Space.ROUNDS)
        return None if item is None else from_u64(item[0])

    def put_peer_set(self, first_round: int, peers: bytes) -> None:
        """The peer set in force from `first_round` until the next stored one."""
        self.kv.put(Space.PEER_SETS, u64(first_round), peers)

    def get_peer_set(self, first_round: int) -> bytes | None:
        return self.kv.get(Space.PEER_SETS, u64(first_round))

    def peer_set_for(self, round_: int) -> tuple[int, bytes] | None:
        """(first round, peers) of the peer set in force at `round_`."""
        for key, peers in self.kv.iterate(Space.PEER_SETS, stop=u64(round_ + 1), reverse=True):
            return from_u64(key), peers
        return None

    def peer_sets(self) -> Iterator[tuple[int, bytes]]:
        for key, peers in self.kv.iterate(Space.PEER_SETS):
            yield from_u64(key), peers

    def put_election(self, round_: int, record: bytes) -> None:
        self.kv.put(Space.ELECTIONS, u64(round_), record)

    def get_election(self, round_: int) -> bytes | None:
        return self.kv.get(Space.ELECTIONS, u64(round_))

    def elections(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        for key, record in self.kv.iterate(Space.ELECTIONS, start=u64(start)):
            yield from_u64(key), record

    # -- fork evidence and block signatures -----------------------------------------------------

    def put_fork_evidence(self, creator: bytes, evidence_id: bytes, evidence: bytes) -> None:
        self.kv.put(Space.FORK_EVIDENCE, lp(creator) + evidence_id, evidence)

    def fork_evidence(self, creator: bytes | None = None) -> list[tuple[bytes, bytes, bytes]]:
        """(creator, evidence id, evidence) for one creator or for all."""
        prefix = b"" if creator is None else lp(creator)
        out = []
        for key, evidence in self.kv.iterate(Space.FORK_EVIDENCE, prefix=prefix):
            who, evidence_id = split_lp(key)
            out.append((who, evidence_id, evidence))
        return out

    def put_block_signature(self, index: int, signer: bytes, signature: bytes) -> None:
        self.kv.put(Space.BLOCK_SIGNATURES, u64(index) + lp(signer), signature)

    def block_signatures(self, index: int) -> dict[bytes, bytes]:
        out = {}
        for key, signature in self.kv.iterate(Space.BLOCK_SIGNATURES, prefix=u64(index)):
            signer, _ = split_lp(key[8:])
            out[signer] = signature
        return out

    # -- blocks and state -----------------------------------------------------------------------

    def commit_block(
        self,
        index: int,
        block: bytes,
        state_writes: Mapping[bytes, bytes | None],
        receipts: Mapping[bytes, bytes],
        state_hash: bytes,
        *,
        nonces: Mapping[bytes, bytes] | None = None,
        index_writes: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        """Persist one applied block and all its effects atomically.

        `state_writes` maps a state key to its new value, or None to delete it; `index_writes`
        does the same for the state indexes.  Raises `AlreadyApplied` for an index at or below
        the last applied one and `OutOfOrder` for a gap; the first block may have any index.
        """
        if not isinstance(block, bytes) or not isinstance(state_hash, bytes):
            raise StorageUsageError("block and state_hash are bytes")
        with self._commit_lock:
            last = self._last_applied_locked()
            if last is not None and index <= last.block_index:
                raise AlreadyApplied(f"block {index} is already applied (last applied: {last.block_index})")
            if last is not None and index != last.block_index + 1:
                raise OutOfOrder(f"block {index} would skip blocks (last applied: {last.block_index})")
            with self.kv.batch() as b:
                b.put(Space.BLOCKS, u64(index), block)
                b.put(Space.STATE_HASHES, u64(index), state_hash)
                b.write_many(Space.STATE, state_writes.items())
                if index_writes:
                    b.write_many(Space.STATE_INDEX, index_writes.items())
                b.write_many(Space.RECEIPTS, receipts.items())
                if nonces:
                    b.write_many(Space.NONCES, nonces.items())
                b.put(Space.META, _APPLIED_KEY, pack([index, state_hash]))
            self._applied = Applied(index, state_hash)  # only after the batch is on disk

    def last_applied(self) -> Applied | None:
        with self._commit_lock:
            return self._last_applied_locked()

    def _last_applied_locked(self) -> Applied | None:
        # Cached: this process holds the directory lock, so only commit_block moves the marker.
        if self._applied is None:
            self._applied = _read_applied(self.kv)
        return self._applied

    def get_block(self, index: int) -> bytes | None:
        return self.kv.get(Space.BLOCKS, u64(index))

    def last_block_index(self) -> int | None:
        item = self.kv.last(Space.BLOCKS)
        return None if item is None else from_u64(item[0])

    def blocks(self, start: int, count: int) -> list[tuple[int, bytes]]:
        """Up to `count` (index, block) pairs from `start`."""
        out: list[tuple[int, bytes]] = []
        for key, block in self.kv.iterate(Space.BLOCKS, start=u64(start)):
            if len(out) >= count:
                break
            out.append((from_u64(key), block))
        return out

    def state_hash_at(self, index: int) -> bytes | None:
        return self.kv.get(Space.STATE_HASHES, u64(index))

    def get_state(self, key: bytes) -> bytes | None:
        return self.kv.get(Space.STATE, key)

    def get_receipt(self, key: bytes) -> bytes | None:
        return self.kv.get(Space.RECEIPTS, key)

    def get_nonce(self, key: bytes) -> bytes | None:
        return self.kv.get(Space.NONCES, key)

    def state_index(self) -> StateView:
        """The state indexes (written through `commit_block(index_writes=...)`)."""
        return StateView(self.kv, Space.STATE_INDEX)

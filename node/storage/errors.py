"""Errors of the storage layer.

Two kinds: the files on disk are not usable as they are (`StoreUnusable` and its children: in
use, corrupt, foreign, newer schema, out of space), or a caller asked for something the store
refuses by rule (`StorageUsageError`, e.g. applying a block twice).
"""

from __future__ import annotations

from node.errors import NodeError, UsageError


class StorageError(NodeError):
    """Root of storage errors."""


class StoreUnusable(StorageError):
    """The data directory cannot be opened or written as it is; an operator must act."""


class StoreInUse(StoreUnusable):
    """Another process (or another open in this one) holds the data directory."""

    def __init__(self, path: str, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"data directory {path} is in use by another node ({who})")
        self.path = path
        self.pid = pid


class CorruptStore(StoreUnusable):
    """LevelDB reported damaged files (checksums, a broken manifest, missing CURRENT)."""


class ForeignStore(StoreUnusable):
    """The directory holds something that is not a node store (no or another magic)."""


class NewerSchema(StoreUnusable):
    """The store was written by a newer node; we must not touch it."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        super().__init__(f"store {path} was written by a newer node: schema {found} > {supported}; upgrade this node")
        self.found = found
        self.supported = supported


class StoreFull(StoreUnusable):
    """A write failed for lack of space; the failed batch was not applied."""


class StoreIOError(StoreUnusable):
    """Another I/O failure from LevelDB (permissions, a vanished directory, ...)."""


class StoreClosed(StorageError, UsageError):
    """The store was used after `close()` (or after a failed write poisoned it)."""


class StorageUsageError(StorageError, UsageError):
    """A caller broke a storage rule (we misused the API)."""


class AlreadyApplied(StorageUsageError):
    """`commit_block` for an index at or below the last applied one: never double-apply."""


class OutOfOrder(StorageUsageError):
    """`commit_block` skipping indexes: blocks are applied one after another."""

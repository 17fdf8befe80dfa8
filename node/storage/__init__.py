"""Persistence: a LevelDB (plyvel) chain store with atomic block commits, and DuckDB time series.

Both are synchronous and blocking; Trio code calls them through `trio.to_thread.run_sync`.
"""

from node.storage.chain import Applied, ChainSnapshot, ChainStore, StateReader, StateView
from node.storage.errors import (
    AlreadyApplied,
    CorruptStore,
    ForeignStore,
    NewerSchema,
    OutOfOrder,
    StorageError,
    StorageUsageError,
    StoreClosed,
    StoreFull,
    StoreInUse,
    StoreIOError,
    StoreUnusable,
)
from node.storage.keys import Space
from node.storage.kv import SCHEMA_VERSION, Batch, KVStore, Snapshot

__all__ = [
    "SCHEMA_VERSION",
    "AlreadyApplied",
    "Applied",
    "Batch",
    "ChainSnapshot",
    "ChainStore",
    "CorruptStore",
    "ForeignStore",
    "KVStore",
    "NewerSchema",
    "OutOfOrder",
    "Snapshot",
    "Space",
    "StateReader",
    "StateView",
    "StorageError",
    "StorageUsageError",
    "StoreClosed",
    "StoreFull",
    "StoreIOError",
    "StoreInUse",
    "StoreUnusable",
]

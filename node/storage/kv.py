"""A LevelDB (plyvel) key-value store with keyspaces, atomic batches, snapshots and a schema.

One `KVStore` owns one data directory.  Opening it:

1. takes an exclusive `flock` on `node.lock` inside the directory (and writes our pid there,
   so a second daemon is told who holds it); LevelDB's own LOCK is the second line;
2. refuses directories that are not ours (foreign), damaged (corrupt) or written by a newer
   node (newer schema), each with its own error;
3. initialises a fresh store at the current schema, or runs the missing migration steps, one
   atomic batch per step that also bumps the version (a crash mid-migration resumes cleanly).

All writes go through one LevelDB WriteBatch: all of it lands or none of it.  A failed write
(e.g. no space left) poisons the store: LevelDB refuses further writes after a log error, so we
say so clearly instead of letting callers continue on a half-dead handle.

The class is synchronous and blocking; Trio code calls it through `trio.to_thread.run_sync`.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, cast

import plyvel

from node.codec import DecodeError, pack, unpack
from node.storage.errors import (
    CorruptStore,
    ForeignStore,
    NewerSchema,
    StorageError,
    StorageUsageError,
    StoreClosed,
    StoreFull,
    StoreInUse,
    StoreIOError,
    StoreUnusable,
)
from node.storage.keys import Space, prefix_end

MAGIC = b"node-store/leveldb"
SCHEMA_VERSION = 1
LOCK_FILE = "node.lock"

_MAGIC_KEY = b"magic"
_SCHEMA_KEY = b"schema"
# Files LevelDB leaves in its directory; seeing them without CURRENT means damage, not "fresh".
_LEVELDB_NAMES = ("LOCK", "LOG", "LOG.old", "CURRENT")
_LEVELDB_SUFFIXES = (".ldb", ".sst", ".log", ".dbtmp")

Migration = Callable[["KVStore", "Batch"], None]
# Step to version v (from v-1). Empty while SCHEMA_VERSION is 1; add one function per bump.
MIGRATIONS: dict[int, Migration] = {}


def _message(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


def _is_space_error(exc: BaseException, text: str) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return True
    return any(s in text for s in ("No space left", "File too large", "Disk quota exceeded"))


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise StorageUsageError(f"values are bytes, got {type(value).__name__}")


class Batch:
    """Puts and deletes collected for one atomic write; filled inside `with store.batch() as b:`."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._open = True
        self.count = 0

    def put(self, space: Space, key: bytes, value: bytes) -> None:
        self._check()
        self._raw.put(space.value + key, _as_bytes(value))
        self.count += 1

    def write_many(self, space: Space, items: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Put each (key, value) of `space`; a None value deletes the key (the hot path of blocks)."""
        self._check()
        prefix, put, delete, n = space.value, self._raw.put, self._raw.delete, 0
        for key, value in items:
            if value is None:
                delete(prefix + key)
            else:
                put(prefix + key, value if type(value) is bytes else _as_bytes(value))
            n += 1
        self.count += n

    def delete(self, space: Space, key: bytes) -> None:
        self._check()
        self._raw.delete(space.value + key)
        self.count += 1

    def _check(self) -> None:
        if not self._open:
            raise StorageUsageError("batch used after its `with` block ended")


class Reader:
    """Reads shared by the live store and its snapshots; `_source` is a plyvel DB or Snapshot."""

    _source: Any
    path: str

    def get(self, space: Space, key: bytes) -> bytes | None:
        try:
            value = self._source.get(space.value + key, verify_checksums=True)
        except (plyvel.Error, RuntimeError) as exc:
            raise _translate(exc, self.path) from exc
        return cast(bytes | None, value)

    def iterate(
        self,
        space: Space,
        *,
        prefix: bytes = b"",
        start: bytes | None = None,
        stop: bytes | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs of `space` whose key starts with `prefix`, key in [start, stop).

        `start` and `stop` are relative to the prefix; returned keys are without the space byte.
        """
        base = space.value + prefix
        lo = base + (start or b"")
        hi = base + stop if stop is not None else prefix_end(base)
        return self._scan(lo, hi, len(space.value), reverse)

    def last(self, space: Space, *, prefix: bytes = b"") -> tuple[bytes, bytes] | None:
        """The greatest (key, value) of `space` under `prefix`, or None."""
        for item in self.iterate(space, prefix=prefix, reverse=True):
            return item
        return None

    def _scan(self, lo: bytes, hi: bytes | None, strip: int, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        try:
            it = self._source.iterator(start=lo, stop=hi, reverse=reverse, verify_checksums=True)
        except (plyvel.Error, RuntimeError) as exc:
            raise _translate(exc, self.path) from exc
        try:
            while True:
                try:
                    key, value = next(it)
                except StopIteration:
                    return
                except (plyvel.Error, RuntimeError) as exc:
                    raise _translate(exc, self.path) from exc
                yield key[strip:], value
        finally:
            it.close()


class Snapshot(Reader):
    """A consistent point-in-time view; use as a context manager (or call `close`)."""

    def __init__(self, raw: Any, path: str) -> None:
        self._source = raw
        self.path = path

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class KVStore(Reader):
    """The node's LevelDB store.  See the module docstring for what opening checks."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sync: bool = True,
        schema_version: int = SCHEMA_VERSION,
        migrations: Mapping[int, Migration] | None = None,
        cache_bytes: int = 8 << 20,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.sync = sync  # default durability of batches: fsync the log on each write
        self._failure: StorageError | None = None
        self._lock_file: IO[str] | None = None
        self._db: Any = None
        self._lock_dir()
        try:
            self._db = self._open_leveldb(cache_bytes)
            self._source = self._db
            self._check_schema(schema_version, MIGRATIONS if migrations is None else migrations)
        except BaseException:
            self.close()
            raise

    # -- opening -------------------------------------------------------------------------------

    def _lock_dir(self) -> None:
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ForeignStore(f"{self.path} is a file, not a node data directory")
        try:
            os.makedirs(self.path, exist_ok=True)
            handle = open(os.path.join(self.path, LOCK_FILE), "a+")  # noqa: SIM115 - held until close()
        except OSError as exc:
            raise StoreIOError(f"cannot use data directory {self.path}: {exc}") from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = _parse_pid(handle.read())
            handle.close()
            raise StoreInUse(self.path, pid) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def _open_leveldb(self, cache_bytes: int) -> Any:
        names = [n for n in os.listdir(self.path) if n != LOCK_FILE]
        fresh = not names
        if names and "CURRENT" not in names:
            if any(n in _LEVELDB_NAMES or n.startswith("MANIFEST-") or n.endswith(_LEVELDB_SUFFIXES) for n in names):
                raise CorruptStore(f"store {self.path} is damaged: LevelDB files without CURRENT")
            raise ForeignStore(f"{self.path} is not a node store: it holds other files ({sorted(names)[:3]})")
        try:
            return plyvel.DB(self.path, create_if_missing=fresh, paranoid_checks=True, lru_cache_size=cache_bytes)
        except (plyvel.Error, RuntimeError) as exc:
            raise _translate(exc, self.path) from exc

    def _check_schema(self, target: int, migrations: Mapping[int, Migration]) -> None:
        magic = self.get(Space.META, _MAGIC_KEY)
        if magic is None:
            if self._has_any_key():
                raise ForeignStore(f"{self.path} is a LevelDB store but not a node store (no magic)")
            with self.batch(sync=True) as b:  # a brand-new store starts at the current schema
                b.put(Space.META, _MAGIC_KEY, MAGIC)
                b.put(Space.META, _SCHEMA_KEY, pack(target))
            return
        if magic != MAGIC:
            raise ForeignStore(f"{self.path} is not a node store (magic {magic[:32]!r})")
        found = self.schema_version
        if found > target:
            raise NewerSchema(self.path, found, target)
        missing = [v for v in range(found + 1, target + 1) if v not in migrations]
        if missing:
            raise StorageUsageError(f"no migration to schema {missing[0]} (store is at {found})")
        for version in range(found + 1, target + 1):
            with self.batch(sync=True) as b:  # the step and its version bump land together
                migrations[version](self, b)
                b.put(Space.META, _SCHEMA_KEY, pack(version))

    def _has_any_key(self) -> bool:
        for _ in self._scan(b"", None, 0, False):
            return True
        return False

    @property
    def schema_version(self) -> int:
        raw = self.get(Space.META, _SCHEMA_KEY)
        try:
            version = unpack(raw) if raw is not None else None
        except DecodeError as exc:
            raise CorruptStore(f"store {self.path} has an unreadable schema version") from exc
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise CorruptStore(f"store {self.path} has no valid schema version ({version!r})")
        return version

    # -- writing -------------------------------------------------------------------------------

    @contextmanager
    def batch(self, *, sync: bool | None = None) -> Iterator[Batch]:
        """Collect writes; they land atomically when the block exits without an exception."""
        db = self._writable()
        raw = db.write_batch(sync=self.sync if sync is None else sync)
        b = Batch(raw)
        try:
            yield b
        finally:
            b._open = False
        if b.count:
            self._write(raw)

    def put(self, space: Space, key: bytes, value: bytes, *, sync: bool | None = None) -> None:
        with self.batch(sync=sync) as b:
            b.put(space, key, value)

    def delete(self, space: Space, key: bytes, *, sync: bool | None = None) -> None:
        with self.batch(sync=sync) as b:
            b.delete(space, key)

    def _write(self, raw: Any) -> None:
        try:
            raw.write()
        except (plyvel.Error, RuntimeError) as exc:
            error = _translate(exc, self.path)
            self._failure = error  # LevelDB keeps failing after a log error; reopen to recover
            raise error from exc

    def _writable(self) -> Any:
        if self._db is None:
            raise StoreClosed(f"store {self.path} is closed")
        if self._failure is not None:
            raise StoreClosed(f"store {self.path} refused writes after an earlier failure: {self._failure}")
        return self._db

    # -- reading and life cycle ------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        if self._db is None:
            raise StoreClosed(f"store {self.path} is closed")
        return Snapshot(self._db.snapshot(), self.path)

    @property
    def closed(self) -> bool:
        return self._db is None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> KVStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse_pid(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _translate(exc: BaseException, path: str) -> StoreUnusable | StoreClosed:
    """Map a plyvel error to a typed storage error naming the directory."""
    text = _message(exc)
    if isinstance(exc, RuntimeError) and "closed" in text.lower():
        return StoreClosed(f"store {path} is closed")
    if isinstance(exc, plyvel.CorruptionError):
        return CorruptStore(f"store {path} is damaged: {text}")
    if _is_space_error(exc, text):
        return StoreFull(f"no space left to write store {path}; the last batch was not applied ({text})")
    if "lock" in text.lower() and ("held" in text or "unavailable" in text.lower()):
        pid = None
        try:
            with open(os.path.join(path, LOCK_FILE)) as handle:
                pid = _parse_pid(handle.read())
        except OSError:
            pass
        return StoreInUse(path, pid)
    if "Corruption" in text:
        return CorruptStore(f"store {path} is damaged: {text}")
    return StoreIOError(f"store {path}: {text}")

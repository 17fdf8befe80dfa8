"""KVStore against real LevelDB in temp dirs: batches, snapshots, scans, schema, lock, damage."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import plyvel
import pytest

from node.codec import pack
from node.storage.errors import (
    CorruptStore,
    ForeignStore,
    NewerSchema,
    StorageUsageError,
    StoreClosed,
    StoreInUse,
)
from node.storage.keys import Space, prefix_end, u64
from node.storage.kv import KVStore


@pytest.fixture
def store(tmp_path):
    with KVStore(tmp_path / "db", sync=False) as s:
        yield s


def test_put_get_delete_and_keyspaces_are_separate(store):
    store.put(Space.STATE, b"a", b"1")
    store.put(Space.RECEIPTS, b"a", b"2")
    assert store.get(Space.STATE, b"a") == b"1"
    assert store.get(Space.RECEIPTS, b"a") == b"2"
    store.delete(Space.STATE, b"a")
    assert store.get(Space.STATE, b"a") is None
    assert store.get(Space.RECEIPTS, b"a") == b"2"


def test_batch_is_all_or_nothing_on_exception(store):
    with pytest.raises(RuntimeError):
        with store.batch() as b:
            b.put(Space.STATE, b"x", b"1")
            b.put(Space.BLOCKS, b"y", b"2")
            raise RuntimeError("caller failed half way")
    assert store.get(Space.STATE, b"x") is None
    assert store.get(Space.BLOCKS, b"y") is None
    with store.batch() as b:
        b.put(Space.STATE, b"x", b"1")
        b.put(Space.BLOCKS, b"y", b"2")
    assert store.get(Space.STATE, b"x") == b"1"
    assert store.get(Space.BLOCKS, b"y") == b"2"
    with pytest.raises(StorageUsageError):
        b.put(Space.STATE, b"late", b"1")  # the batch is spent


def test_values_must_be_bytes(store):
    with pytest.raises(StorageUsageError):
        store.put(Space.STATE, b"k", "text")  # type: ignore[arg-type]


def test_iterate_prefix_range_and_reverse(store):
    with store.batch() as b:
        for i in range(10):
            b.put(Space.STATE, b"acct/" + u64(i), b"%d" % i)
        b.put(Space.STATE, b"acct0", b"neighbour")  # '0' sorts right after '/'
        b.put(Space.STATE_INDEX, b"acct/" + u64(3), b"other space")
    keys = [k for k, _ in store.iterate(Space.STATE, prefix=b"acct/")]
    assert keys == [b"acct/" + u64(i) for i in range(10)]
    middle = [v for _, v in store.iterate(Space.STATE, prefix=b"acct/", start=u64(3), stop=u64(6))]
    assert middle == [b"3", b"4", b"5"]
    assert [v for _, v in store.iterate(Space.STATE, prefix=b"acct/", reverse=True)][:2] == [b"9", b"8"]
    assert store.last(Space.STATE, prefix=b"acct/") == (b"acct/" + u64(9), b"9")
    assert store.last(Space.ROUNDS) is None


def test_prefix_end():
    assert prefix_end(b"ab") == b"ac"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") is None


def test_snapshot_is_stable_while_writing(store):
    with store.batch() as b:
        for i in range(100):
            b.put(Space.STATE, u64(i), b"old")
    with store.snapshot() as snap:
        with store.batch() as b:
            for i in range(100):
                b.put(Space.STATE, u64(i), b"new")
            b.put(Space.STATE, u64(1000), b"new")
        seen = list(snap.iterate(Space.STATE))
        assert len(seen) == 100 and {v for _, v in seen} == {b"old"}
        assert snap.get(Space.STATE, u64(1000)) is None
    assert store.get(Space.STATE, u64(5)) == b"new"


def test_fresh_store_has_magic_and_schema(tmp_path):
    with KVStore(tmp_path / "db") as s:
        assert s.schema_version == 1
    with KVStore(tmp_path / "db") as s:  # reopening keeps it
        assert s.schema_version == 1


def test_use_after_close_is_a_clear_error(tmp_path):
    s = KVStore(tmp_path / "db")
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreClosed):
        s.put(Space.STATE, b"k", b"v")


def test_second_open_in_same_process_is_refused(tmp_path):
    with KVStore(tmp_path / "db"):
        with pytest.raises(StoreInUse) as info:
            KVStore(tmp_path / "db")
        assert info.value.pid == os.getpid()
        assert f"data directory {tmp_path / 'db'} is in use by another node (pid {os.getpid()})" in str(info.value)
    KVStore(tmp_path / "db").close()  # released on close


def test_second_daemon_is_refused_with_its_pid(tmp_path):
    path = tmp_path / "db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys
            from node.storage.kv import KVStore
            s = KVStore({str(path)!r})
            print("open", flush=True)
            sys.stdin.readline()
            s.close()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreInUse) as info:
            KVStore(path)
        assert info.value.pid == holder.pid
        assert f"(pid {holder.pid})" in str(info.value)
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    KVStore(path).close()


def test_foreign_leveldb_is_refused(tmp_path):
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    db.put(b"someone", b"else")
    db.close()
    with pytest.raises(ForeignStore, match="not a node store"):
        KVStore(tmp_path / "db")


def test_other_magic_is_refused(tmp_path):
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    db.put(Space.META.value + b"magic", b"another-program")
    db.close()
    with pytest.raises(ForeignStore, match="another-program"):
        KVStore(tmp_path / "db")


def test_directory_of_other_files_is_refused(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    with pytest.raises(ForeignStore):
        KVStore(tmp_path / "home")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ForeignStore):
        KVStore(tmp_path / "file")


def test_newer_schema_is_refused(tmp_path):
    with KVStore(tmp_path / "db") as s:
        s.put(Space.META, b"schema", pack(7))
    with pytest.raises(NewerSchema, match=r"written by a newer node: schema 7 > 1") as info:
        KVStore(tmp_path / "db")
    assert (info.value.found, info.value.supported) == (7, 1)


def test_migrations_run_once_each_in_order(tmp_path):
    calls: list[int] = []

    def to_v2(store, b):
        calls.append(2)
        for key, value in store.iterate(Space.STATE):
            b.put(Space.STATE, key, value.upper())

    def to_v3(store, b):
        calls.append(3)
        b.put(Space.STATE, b"added-in-v3", b"yes")

    with KVStore(tmp_path / "db") as s:
        s.put(Space.STATE, b"k", b"lower")
    steps = {2: to_v2, 3: to_v3}
    with KVStore(tmp_path / "db", schema_version=3, migrations=steps) as s:
        assert s.schema_version == 3
        assert s.get(Space.STATE, b"k") == b"LOWER"
        assert s.get(Space.STATE, b"added-in-v3") == b"yes"
    with KVStore(tmp_path / "db", schema_version=3, migrations=steps) as s:
        assert s.schema_version == 3
    assert calls == [2, 3]
    with pytest.raises(NewerSchema):  # an old node must not open it afterwards
        KVStore(tmp_path / "db")


def test_failed_migration_leaves_the_previous_version(tmp_path):
    def broken(store, b):
        b.put(Space.STATE, b"half", b"done")
        raise RuntimeError("migration bug")

    KVStore(tmp_path / "db").close()
    with pytest.raises(RuntimeError):
        KVStore(tmp_path / "db", schema_version=2, migrations={2: broken})
    with KVStore(tmp_path / "db") as s:
        assert s.schema_version == 1
        assert s.get(Space.STATE, b"half") is None


def test_missing_migration_step_is_a_usage_error(tmp_path):
    KVStore(tmp_path / "db").close()
    with pytest.raises(StorageUsageError, match="no migration to schema 2"):
        KVStore(tmp_path / "db", schema_version=3, migrations={3: lambda s, b: None})


def _fill(path, n=3000):
    with KVStore(path, sync=False) as s:
        for start in range(0, n, 500):
            with s.batch() as b:
                for i in range(start, start + 500):
                    b.put(Space.STATE, u64(i), os.urandom(64))


def _damage(file, at=None, length=64):
    data = bytearray(file.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at : at + length] = bytes(length)
    file.write_bytes(bytes(data))


def test_damaged_log_is_reported_as_corrupt(tmp_path):
    _fill(tmp_path / "db")
    (log,) = [p for p in (tmp_path / "db").iterdir() if p.suffix == ".log"]
    _damage(log)
    with pytest.raises(CorruptStore, match="damaged"):
        KVStore(tmp_path / "db")


def test_damaged_manifest_is_reported_as_corrupt(tmp_path):
    _fill(tmp_path / "db")
    (manifest,) = [p for p in (tmp_path / "db").iterdir() if p.name.startswith("MANIFEST-")]
    _damage(manifest, at=0, length=manifest.stat().st_size)
    with pytest.raises(CorruptStore):
        KVStore(tmp_path / "db")


def test_damaged_table_is_reported_on_read(tmp_path):
    _fill(tmp_path / "db")
    with KVStore(tmp_path / "db") as s:  # reopening flushes the log into a table file
        s.put(Space.STATE, b"force", b"table")
    tables = [p for p in (tmp_path / "db").iterdir() if p.suffix == ".ldb"]
    assert tables
    for table in tables:
        _damage(table, at=100, length=4096)
    with pytest.raises(CorruptStore):
        with KVStore(tmp_path / "db") as s:
            list(s.iterate(Space.STATE))


def test_missing_current_is_reported_as_corrupt(tmp_path):
    _fill(tmp_path / "db")
    (tmp_path / "db" / "CURRENT").unlink()
    with pytest.raises(CorruptStore, match="without CURRENT"):
        KVStore(tmp_path / "db")


FULL_DISK_CHILD = """
import os, resource, signal, sys
from node.storage.errors import StoreClosed, StoreFull
from node.storage.keys import Space, u64
from node.storage.kv import KVStore

store = KVStore(sys.argv[1])
# A file-size limit makes LevelDB's log append fail the way a full disk does, mid-record.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
done = 0
try:
    while True:
        with store.batch() as b:
            for j in range(50):
                b.put(Space.STATE, u64(done) + u64(j), bytes([done % 251]) * 1000)
        done += 1
except StoreFull as exc:
    print(done, exc, sep="\\n", flush=True)
try:
    store.put(Space.STATE, b"after", b"x")
    print("wrote after failure")
except StoreClosed:
    print("refused after failure")
"""


def test_full_disk_is_reported_and_nothing_is_half_written(tmp_path):
    path = tmp_path / "db"
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(path)], capture_output=True, text=True, timeout=120, check=True
    ).stdout.splitlines()
    done, message, after = int(out[0]), out[1], out[2]
    assert done > 0
    assert "no space left to write store" in message and "the last batch was not applied" in message
    assert after == "refused after failure"
    with KVStore(path) as s:
        per_batch: dict[int, int] = {}
        for key, value in s.iterate(Space.STATE):
            n = int.from_bytes(key[:8], "big")
            assert value == bytes([n % 251]) * 1000
            per_batch[n] = per_batch.get(n, 0) + 1
        assert per_batch == dict.fromkeys(range(done), 50)  # the failed batch left nothing
        s.put(Space.STATE, b"after", b"x")  # usable again once space is back


def test_leveldb_lock_held_by_another_program_is_in_use(tmp_path):
    KVStore(tmp_path / "db").close()
    raw = plyvel.DB(str(tmp_path / "db"))  # holds LevelDB's LOCK but not our node.lock
    try:
        with pytest.raises(StoreInUse, match="is in use by another node"):
            KVStore(tmp_path / "db")
    finally:
        raw.close()
    with KVStore(tmp_path / "db") as s:  # our flock was released on the failed open
        assert s.schema_version == 1

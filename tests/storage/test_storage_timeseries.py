"""TimeSeriesStore and TimeSeriesWriter on a real DuckDB file."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest
import trio
import trio.testing

from node.storage.errors import StorageUsageError
from node.storage.timeseries import (
    AlertRow,
    BlockRow,
    HeartbeatRow,
    LatencyRow,
    SignalRow,
    TimeSeriesStore,
    TimeSeriesWriter,
)

T0 = 1_800_000_000.0


@pytest.fixture
def ts_store(tmp_path):
    store = TimeSeriesStore(tmp_path / "ts.duckdb")
    yield store
    store.close()


def _linear_percentile(values, q):
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def test_rows_round_trip_through_a_reopen(tmp_path):
    path = tmp_path / "ts.duckdb"
    store = TimeSeriesStore(path)
    rows = [
        LatencyRow(T0, "n1", "/users/create", 0.25),
        BlockRow(T0, "n1", 7, 3, 40, 12, 9000, 0.002),
        HeartbeatRow(T0, "n1", "gossip", "ok"),
        AlertRow(T0 + 1, "n1", "healer", "warn", "peer n3 silent"),
        AlertRow(T0 + 2, "n1", "healer", "error", "redis down"),
        SignalRow(T0, "n1", "block", '{"index": 7}'),
    ]
    assert store.insert(rows) == 6
    store.close()
    store = TimeSeriesStore(path)
    try:
        assert store.count(LatencyRow) == 1 and store.count(BlockRow) == 1 and store.count(SignalRow) == 1
        assert store.recent_alerts() == [rows[4], rows[3]]
        assert store._query("SELECT * FROM block_stats") == [(T0, "n1", 7, 3, 40, 12, 9000, 0.002)]
    finally:
        store.close()


def test_large_batches_are_split_into_statements(ts_store):
    written = ts_store.insert([HeartbeatRow(T0 + i, "n1", "svc", "ok") for i in range(1234)])
    assert written == 1234 and ts_store.count(HeartbeatRow) == 1234


def test_insert_rejects_foreign_rows_and_writes_nothing(ts_store):
    with pytest.raises(StorageUsageError):
        ts_store.insert([HeartbeatRow(T0, "n1", "svc", "ok"), ("not", "a", "row")])
    assert ts_store.count(HeartbeatRow) == 0


def test_latency_percentiles_match_linear_interpolation(ts_store):
    inside = [float(i) for i in range(1, 101)]
    rows = [LatencyRow(T0 + i * 0.1, "n1", "/users/create", v) for i, v in enumerate(inside)]
    rows += [LatencyRow(T0 - 5, "n1", "/users/create", 1000.0), LatencyRow(T0 + 60, "n1", "/users/create", 1000.0)]
    rows += [LatencyRow(T0 + 1, "n1", "/points/join", 500.0)]
    ts_store.insert(rows)
    got = ts_store.latency_percentiles(T0, T0 + 30, (0.5, 0.9, 0.99), action="/users/create")
    assert got.keys() == {0.5, 0.9, 0.99}
    for q, value in got.items():
        assert value == pytest.approx(_linear_percentile(inside, q))
    assert got[0.5] == pytest.approx(50.5) and got[0.99] == pytest.approx(99.01)
    everything = ts_store.latency_percentiles(T0, T0 + 30, (1.0,))
    assert everything[1.0] == 500.0  # without the action filter the other path counts
    assert ts_store.latency_percentiles(T0 + 100, T0 + 200) == {}
    with pytest.raises(StorageUsageError):
        ts_store.latency_percentiles(T0, T0 + 1, (1.5,))


def test_blocks_per_second_buckets_include_empty_ones(ts_store):
    stamps = [0.1, 0.2, 0.3, 0.9, 1.5, 3.99, 4.0]  # 4.0 is outside [0, 4)
    ts_store.insert([BlockRow(T0 + s, "n1", i, i, 1, 1, 10, 0.0) for i, s in enumerate(stamps)])
    assert ts_store.blocks_per_second(T0, T0 + 4) == [(T0, 4.0), (T0 + 1, 1.0), (T0 + 2, 0.0), (T0 + 3, 1.0)]
    assert ts_store.blocks_per_second(T0, T0 + 4, bucket_s=2.0) == [(T0, 2.5), (T0 + 2, 0.5)]


async def _wait_until(predicate):
    for _ in range(3000):  # poll with a 30 s deadline: the flush runs in a worker thread
        if predicate():
            return
        await trio.sleep(0.01)
    raise AssertionError("condition not reached within 30 s")


async def test_writer_flushes_on_size_and_on_shutdown(ts_store):
    writer = TimeSeriesWriter(ts_store, flush_rows=10, interval_s=3600.0)  # the interval never fires here
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for i in range(10):
            writer.add(HeartbeatRow(T0 + i, "n1", "svc", "ok"))
        await _wait_until(lambda: writer.rows_written == 10)
        assert ts_store.count(HeartbeatRow) == 10
        for i in range(3):
            writer.add(LatencyRow(T0 + i, "n1", "/a", 0.1))
        await trio.testing.wait_all_tasks_blocked()
        assert writer.pending == 3  # below the threshold: still buffered
        nursery.cancel_scope.cancel()
    assert writer.pending == 0 and ts_store.count(LatencyRow) == 3  # shutdown kept the tail


async def test_writer_flushes_a_short_buffer_on_the_interval(ts_store):
    writer = TimeSeriesWriter(ts_store, flush_rows=1000, interval_s=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        writer.add(HeartbeatRow(T0, "n1", "svc", "ok"))
        await _wait_until(lambda: writer.rows_written == 1)
        assert ts_store.count(HeartbeatRow) == 1
        nursery.cancel_scope.cancel()


def test_writer_buffer_is_bounded(ts_store):
    writer = TimeSeriesWriter(ts_store, flush_rows=5, max_buffer=10)
    for i in range(25):
        writer.add(HeartbeatRow(T0 + i, "n1", "svc", "ok"))
    assert writer.pending == 10 and writer.rows_dropped == 15
    assert writer.flush_sync() == 10
    assert [r[0] for r in ts_store._query("SELECT ts FROM heartbeats ORDER BY ts")] == [T0 + i for i in range(15, 25)]


async def test_failed_flush_keeps_the_rows_for_a_retry(tmp_path):
    store = TimeSeriesStore(tmp_path / "ts.duckdb")
    writer = TimeSeriesWriter(store, flush_rows=10)
    writer.add(HeartbeatRow(T0, "n1", "svc", "ok"))
    store._con.close()  # the database goes away under the writer
    assert await writer.flush() == 0
    assert writer.failures == 1 and writer.pending == 1
    store._con = duckdb.connect(str(tmp_path / "ts.duckdb"))  # and comes back
    assert await writer.flush() == 1
    assert store.count(HeartbeatRow) == 1
    store.close()


def test_second_process_on_the_same_file_gets_a_typed_error(tmp_path):
    path = tmp_path / "ts.duckdb"
    store = TimeSeriesStore(path)
    try:
        child = subprocess.run(
            [sys.executable, "-c", CHILD_OPEN, str(path)], capture_output=True, text=True, timeout=120
        )
        assert child.stdout.strip() == "TimeSeriesError", child.stderr
    finally:
        store.close()


CHILD_OPEN = """
import sys
from node.storage.timeseries import TimeSeriesError, TimeSeriesStore
try:
    TimeSeriesStore(sys.argv[1])
    print("opened")
except TimeSeriesError:
    print("TimeSeriesError")
"""

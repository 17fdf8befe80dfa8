"""Time series in DuckDB: action latency, block stats, heartbeats, alerts and signals.

Nothing here is on the consensus path.  Producers call `TimeSeriesWriter.add(row)`, which only
appends to a list; the writer's Trio service flushes the buffer in a worker thread when it holds
`flush_rows` rows or every `interval_s`, as multi-row INSERTs inside one transaction.  If the
database stalls, the buffer is bounded and the oldest rows are dropped (and counted).

Timestamps are float Unix seconds supplied by the caller (no clock is read here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import duckdb
import structlog
import trio

from node.storage.errors import StorageError, StorageUsageError

log = structlog.get_logger(__name__)

_ROWS_PER_STATEMENT = 500  # bounds the size of one INSERT's parameter list
_SQL_TYPES = {"float": "DOUBLE", "int": "BIGINT", "str": "VARCHAR"}


class TimeSeriesError(StorageError):
    """DuckDB refused an operation on the time-series database."""


@dataclass(frozen=True)
class LatencyRow:
    """One action from submission to finality (seconds)."""

    TABLE: ClassVar[str] = "action_latency"
    ts: float  # when it became final
    node: str
    action: str  # the action path, e.g. /users/create
    latency_s: float
    outcome: str = "ok"


@dataclass(frozen=True)
class BlockRow:
    TABLE: ClassVar[str] = "block_stats"
    ts: float
    node: str
    block_index: int
    round: int
    events: int
    actions: int
    size_bytes: int
    apply_s: float


@dataclass(frozen=True)
class HeartbeatRow:
    TABLE: ClassVar[str] = "heartbeats"
    ts: float
    node: str
    service: str
    status: str


@dataclass(frozen=True)
class AlertRow:
    TABLE: ClassVar[str] = "alerts"
    ts: float
    node: str
    service: str
    level: str
    message: str


@dataclass(frozen=True)
class SignalRow:
    TABLE: ClassVar[str] = "signals"
    ts: float
    node: str
    kind: str
    payload: str  # JSON text, as sent on the /signals WebSocket


Row = LatencyRow | BlockRow | HeartbeatRow | AlertRow | SignalRow
ROW_TYPES: tuple[type[Row], ...] = (LatencyRow, BlockRow, HeartbeatRow, AlertRow, SignalRow)


def _columns(row_type: type[Row]) -> list[tuple[str, str]]:
    return [(f.name, _SQL_TYPES[str(f.type)]) for f in dataclasses.fields(row_type)]


class TimeSeriesStore:
    """A DuckDB file (or ":memory:") with one table per row type.  Sync and thread-safe."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()  # one DuckDB connection is not safe for concurrent use
        try:
            self._con: Any = duckdb.connect(self.path)
            for row_type in ROW_TYPES:
                cols = ", ".join(f"{name} {sql}" for name, sql in _columns(row_type))
                self._con.execute(f"CREATE TABLE IF NOT EXISTS {row_type.TABLE} ({cols})")
        except duckdb.Error as exc:
            raise TimeSeriesError(f"cannot open time series {self.path}: {exc}") from exc

    def insert(self, rows: Iterable[Row]) -> int:
        """Insert rows of any types in one transaction; returns how many were written."""
        by_type: dict[type[Row], list[tuple[Any, ...]]] = {}
        for row in rows:
            if not isinstance(row, ROW_TYPES):
                raise StorageUsageError(f"not a time-series row: {type(row).__name__}")
            by_type.setdefault(type(row), []).append(dataclasses.astuple(row))
        total = sum(len(v) for v in by_type.values())
        if not total:
            return 0
        with self._lock:
            try:
                self._con.execute("BEGIN TRANSACTION")
                for row_type, values in by_type.items():
                    self._insert_table(row_type, values)
                self._con.execute("COMMIT")
            except duckdb.Error as exc:
                with contextlib.suppress(duckdb.Error):  # the connection may be gone altogether
                    self._con.execute("ROLLBACK")
                raise TimeSeriesError(f"insert into {self.path} failed: {exc}") from exc
        return total

    def _insert_table(self, row_type: type[Row], values: list[tuple[Any, ...]]) -> None:
        width = len(values[0])
        one = "(" + ", ".join("?" * width) + ")"
        for start in range(0, len(values), _ROWS_PER_STATEMENT):
            chunk = values[start : start + _ROWS_PER_STATEMENT]
            params = [v for row in chunk for v in row]
            self._con.execute(f"INSERT INTO {row_type.TABLE} VALUES " + ", ".join([one] * len(chunk)), params)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                result: list[tuple[Any, ...]] = self._con.execute(sql, list(params)).fetchall()
            except duckdb.Error as exc:
                raise TimeSeriesError(f"query on {self.path} failed: {exc}") from exc
        return result

    # -- queries used by the API and reports -----------------------------------------------------

    def count(self, row_type: type[Row]) -> int:
        return int(self._query(f"SELECT count(*) FROM {row_type.TABLE}")[0][0])

    def latency_percentiles(
        self,
        since: float,
        until: float,
        percentiles: Sequence[float] = (0.5, 0.9, 0.99),
        action: str | None = None,
    ) -> dict[float, float]:
        """Percentiles (linear interpolation) of latency_s for rows with since <= ts < until.

        Empty when no action finished in the window.
        """
        if not percentiles or any(not 0 <= p <= 1 for p in percentiles):
            raise StorageUsageError(f"percentiles must be in [0, 1]: {percentiles}")
        sql = "SELECT quantile_cont(latency_s, ?) FROM action_latency WHERE ts >= ? AND ts < ?"
        params: list[Any] = [list(percentiles), since, until]
        if action is not None:
            sql += " AND action = ?"
            params.append(action)
        (values,) = self._query(sql, params)[0]
        return {} if values is None else dict(zip(percentiles, values, strict=True))

    def blocks_per_second(self, since: float, until: float, bucket_s: float = 1.0) -> list[tuple[float, float]]:
        """(bucket start, blocks per second in it) for every bucket of [since, until), zeros included."""
        if bucket_s <= 0 or until < since:
            raise StorageUsageError("need bucket_s > 0 and since <= until")
        rows = self._query(
            "SELECT floor((ts - ?) / ?)::BIGINT AS b, count(*) FROM block_stats WHERE ts >= ? AND ts < ? GROUP BY b",
            [since, bucket_s, since, until],
        )
        counts = {int(b): int(n) for b, n in rows}
        buckets = int(-(-(until - since) // bucket_s))  # ceil
        return [(since + i * bucket_s, counts.get(i, 0) / bucket_s) for i in range(buckets)]

    def recent_alerts(self, limit: int = 100) -> list[AlertRow]:
        rows = self._query("SELECT * FROM alerts ORDER BY ts DESC LIMIT ?", [limit])
        return [AlertRow(*r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._con.close()


class TimeSeriesWriter:
    """A cheap in-memory buffer in front of a `TimeSeriesStore`, flushed by `run()`.

    `add` must be called from the Trio thread that runs `run` (it may wake the flusher).
    """

    def __init__(
        self, store: TimeSeriesStore, *, flush_rows: int = 1000, interval_s: float = 1.0, max_buffer: int = 100_000
    ) -> None:
        if flush_rows < 1 or interval_s <= 0 or max_buffer < flush_rows:
            raise StorageUsageError("need flush_rows >= 1, interval_s > 0, max_buffer >= flush_rows")
        self.store = store
        self.flush_rows = flush_rows
        self.interval_s = interval_s
        self.max_buffer = max_buffer
        self.rows_written = 0
        self.rows_dropped = 0
        self.failures = 0
        self._buffer: list[Row] = []
        self._wake: trio.Event | None = None

    def add(self, row: Row) -> None:
        self._buffer.append(row)
        if len(self._buffer) > self.max_buffer:  # the database is stuck: keep the newest rows
            excess = len(self._buffer) - self.max_buffer
            del self._buffer[:excess]
            self.rows_dropped += excess
        if len(self._buffer) >= self.flush_rows and self._wake is not None:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def flush_sync(self) -> int:
        """Write the buffer now, blocking (for code outside Trio and for shutdown)."""
        rows, self._buffer = self._buffer, []
        written = self.store.insert(rows)
        self.rows_written += written
        return written

    async def flush(self) -> int:
        """Write the buffer from a worker thread; failed rows go back to the buffer."""
        rows, self._buffer = self._buffer, []
        if not rows:
            return 0
        try:
            written = await trio.to_thread.run_sync(self.store.insert, rows)
        except TimeSeriesError as exc:
            self.failures += 1
            log.warning("timeseries flush failed", error=str(exc), rows=len(rows))
            # back in front of newer rows, without waking the flusher: retry after the interval
            merged = rows + self._buffer
            excess = max(0, len(merged) - self.max_buffer)
            self._buffer = merged[excess:]
            self.rows_dropped += excess
            return 0
        self.rows_written += written
        return written

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._wake = trio.Event()
        task_status.started()
        try:
            while True:
                with trio.move_on_after(self.interval_s):
                    await self._wake.wait()
                self._wake = trio.Event()
                await self.flush()
        finally:
            with trio.CancelScope(shield=True):  # shutting down: keep what was buffered
                await self.flush()

"""PostgreSQL backend of the node store: pooled psycopg connections, COPY ingest, monthly partitions.

The store's logic and SQL are the SQLite store's (`sql.SqlStore`); what differs is here. Writes
take a transaction-level advisory lock, so they are serialised across every node process on the
database exactly as SQLite's one writer serialises them: the running totals and the decision
log's chain are read, changed and written back by one writer at a time. Reads take a
REPEATABLE READ snapshot and never wait for writers.
"""

from __future__ import annotations

import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import numpy as np
import psycopg
from psycopg import IsolationLevel
from psycopg import errors as pg_errors
from psycopg import sql as pgsql
from psycopg_pool import ConnectionPool

from coopfed.node.storage.base import InvalidData, StorageUnavailable
from coopfed.node.storage.connection import Connection
from coopfed.node.storage.group import GroupCommit
from coopfed.node.storage.postgres_conn import PgConnection, adapt, storage_error, translated
from coopfed.node.storage.schema import Migration, bundled_migrations, migrate_postgresql
from coopfed.node.storage.sql import Put, SqlStore, count, extend
from coopfed.node.storage.sqlite_totals import Deltas

WRITE_LOCK = 0x636F_6F70_7772_6974  # pg_advisory_xact_lock key of the store's writes ("coopwrit")
_PARTITION_LOCK = 0x636F_6F70_7061_7274  # "cooppart"
# Months the store makes a partition for; readings outside them live in readings_default.
_FIRST_MONTH, _END_MONTH = np.datetime64("1990-01", "M"), np.datetime64("2200-01", "M")
_BAD_VALUES = {  # the readings table's constraints, in the caller's terms
    "kwh_finite_non_negative": "kwh must be finite and >= 0",
    "period_on_half_hour": "periods must be >= 0 and on the half hour",
}
_COPY_ROW = np.dtype([("fields", ">i2"), ("n1", ">i4"), ("period", ">i8"), ("n2", ">i4"), ("kwh", ">f8")])
_COPY_HEADER, _COPY_TRAILER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0), struct.pack(">h", -1)
_STAGE = """CREATE TEMP TABLE IF NOT EXISTS staged_readings
    (period_start BIGINT NOT NULL, kwh DOUBLE PRECISION NOT NULL) ON COMMIT DELETE ROWS"""
_COPY = "COPY staged_readings (period_start, kwh) FROM STDIN (FORMAT BINARY)"
_MERGE = """INSERT INTO readings (member_key, dataset_id, period_start, kwh)
SELECT %s, %s, period_start, kwh FROM staged_readings
ON CONFLICT (member_key, dataset_id, period_start) DO UPDATE SET kwh = excluded.kwh"""
# A group of uploads (sql.SqlStore._put_many): every member's rows in one COPY and one upsert,
# and the readings they replace found in one statement.
_STAGE_GROUP = """CREATE TEMP TABLE IF NOT EXISTS staged_group (member_key BIGINT NOT NULL,
    dataset_id BIGINT NOT NULL, period_start BIGINT NOT NULL, kwh DOUBLE PRECISION NOT NULL)
    ON COMMIT DELETE ROWS"""
_COPY_GROUP = "COPY staged_group FROM STDIN (FORMAT BINARY)"
_COPY_READINGS = "COPY readings (member_key, dataset_id, period_start, kwh) FROM STDIN (FORMAT BINARY)"
_MERGE_GROUP = """INSERT INTO readings (member_key, dataset_id, period_start, kwh)
SELECT member_key, dataset_id, period_start, kwh FROM staged_group
ON CONFLICT (member_key, dataset_id, period_start) DO UPDATE SET kwh = excluded.kwh"""
_HELD_GROUP = """SELECT b.i, r.period_start, r.kwh
FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) WITH ORDINALITY AS b (m, d, lo, hi, i)
CROSS JOIN LATERAL (SELECT period_start, kwh FROM readings
    WHERE member_key = b.m AND dataset_id = b.d AND period_start BETWEEN b.lo AND b.hi) AS r"""
_GROUP_ROW = np.dtype([
    ("fields", ">i2"), ("n1", ">i4"), ("member", ">i8"), ("n2", ">i4"), ("dataset", ">i8"),
    ("n3", ">i4"), ("period", ">i8"), ("n4", ">i4"), ("kwh", ">f8"),
])  # fmt: skip
_HELD = np.dtype([("i", "i8"), ("period_start", "i8"), ("kwh", "f8")])
_FIRST_COLUMN = "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum = 1"
_REWRITE = pgsql.SQL("UPDATE {t} SET {c} = {c}")  # every row anew, unchanged, in this transaction
_CLUSTER = pgsql.SQL("CLUSTER {} USING {}")
_PARTITIONS = """SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
WHERE i.inhparent = 'readings'::regclass"""


class PostgresStore(SqlStore):
    """The node's store in a PostgreSQL database, named by a libpq URL or connection string.

    Opening it applies pending migrations (one transaction, under an advisory lock). `pool_size`
    bounds the connections of each of the two pools (writers, readers); a call that waits longer
    than `timeout_s` for one, or finds the server gone, raises StorageUnavailable.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 8,
        timeout_s: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        migrations: list[Migration] | None = None,
    ) -> None:
        self.url = url
        self._clock = clock
        self._timeout_s = timeout_s
        self._partitions: set[str] = set()
        self._partitions_lock = threading.Lock()
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(timeout_s))) as conn:
                self.schema_version = migrate_postgresql(conn, migrations or bundled_migrations("postgresql"))
                self._datasets = dict(conn.execute("SELECT name, dataset_id FROM datasets").fetchall())
                self._partitions.update(name for (name,) in conn.execute(_PARTITIONS).fetchall())
        except psycopg.Error as exc:
            raise storage_error(exc) from exc
        self._dataset_names = {v: k for k, v in self._datasets.items()}
        self._writers = self._pool(pool_size, self._configure_writer, "writers")
        self._readers = self._pool(pool_size, self._configure_reader, "readers")
        self._uploads = GroupCommit(self._put_group)

    def _pool(self, size: int, configure: Callable[[psycopg.Connection], None], name: str) -> ConnectionPool:
        pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=size,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(self._timeout_s))},
            configure=configure,
            check=_check_unless_fresh,  # after a server restart, no call gets a dead one
            reset=_returned_now,
            timeout=self._timeout_s,
            name=f"coopfed-{name}",
            open=False,
        )
        pool.open(wait=False)
        return pool

    @staticmethod
    def _configure_writer(conn: psycopg.Connection) -> None:
        adapt(conn)
        conn.execute(_STAGE)
        conn.execute(_STAGE_GROUP)

    @staticmethod
    def _configure_reader(conn: psycopg.Connection) -> None:
        adapt(conn)
        conn.isolation_level = IsolationLevel.REPEATABLE_READ  # one snapshot per read
        conn.read_only = True

    @contextmanager
    def _write(self) -> Iterator[PgConnection]:
        """One write transaction under the store's advisory lock; all of it commits or none of it does."""
        with self._connection(self._writers) as raw, translated(), raw.transaction():
            raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield PgConnection(raw)

    @contextmanager
    def _read(self) -> Iterator[PgConnection]:
        with self._connection(self._readers) as raw, translated(), raw.transaction():
            yield PgConnection(raw)

    @contextmanager
    def _connection(self, pool: ConnectionPool) -> Iterator[psycopg.Connection]:
        try:
            with pool.connection() as raw:
                yield raw
        except psycopg.OperationalError as exc:  # no connection within the timeout, or it broke
            raise storage_error(exc) from exc
        except psycopg.Error as exc:
            raise storage_error(exc) from exc

    def forget_write_order(self, *tables: str) -> None:
        """Rewrite `tables` so that their rows keep neither the order they arrived in (a heap
        row's ctid) nor the transaction that wrote each (xmin): an unchanged UPDATE of every row
        in one transaction gives them all its xmin, then CLUSTER writes the live rows into a
        new file in primary-key order and drops the old one. Best effort: a snapshot older than
        the UPDATE keeps CLUSTER copying the old row versions too (see docs/ballots.md)."""
        with self._write() as conn:
            for table in tables:
                (column,) = conn.raw.execute(_FIRST_COLUMN, (table,)).fetchone() or ("",)
                conn.raw.execute(_REWRITE.format(t=pgsql.Identifier(table), c=pgsql.Identifier(column)))
        with self._connection(self._writers) as raw:
            for table in tables:
                raw.execute(_CLUSTER.format(pgsql.Identifier(table), pgsql.Identifier(f"{table}_pkey")))

    def refresh_statistics(self) -> None:
        with self._connection(self._writers) as raw:  # autovacuum would, but only a minute or more later
            raw.execute("ANALYZE members, reading_extents")

    def close(self) -> None:
        self._writers.close()
        self._readers.close()

    # readings: COPY into a staging table, then one upsert, into monthly partitions

    def _make_room(self, batches: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
        """Create the partitions of months the batches reach that have none yet, each committed on
        its own: an empty partition is harmless, and the upload's transaction then needs no DDL."""
        months = {m for _, periods, _ in batches for m in _months(periods)}
        missing = sorted(m for m in months if _partition(m) not in self._partitions)
        if not missing:
            return
        with self._partitions_lock, self._connection(self._writers) as raw, translated():
            for month in missing:
                with raw.transaction():
                    raw.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
                    start, end = (int((month + i).astype("datetime64[s]").astype(np.int64)) for i in (0, 1))
                    name = _partition(month)
                    raw.execute(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF readings "  # type: ignore[arg-type]
                        f"FOR VALUES FROM ({start}) TO ({end})"
                    )
                self._partitions.add(name)

    def _put_many(self, conn: Connection, items: list[Put], sums: Deltas) -> list[int]:
        if len(items) < 2 or len({(i.member_key, i.dataset_id) for i in items}) < len(items):
            return super()._put_many(conn, items, sums)  # one, or one upsert would hit a row twice
        assert isinstance(conn, PgConnection)  # the connection _write gave
        bounds = [[int(i.member_key) for i in items], [int(i.dataset_id) for i in items]]
        bounds += [[int(i.periods[0]) for i in items], [int(i.periods[-1]) for i in items]]
        try:
            with conn.raw.cursor() as cursor:
                held = np.array(cursor.execute(_HELD_GROUP, bounds).fetchall(), dtype=_HELD)
                # none held in the items' ranges (under the write lock): nothing to replace, so
                # the rows go straight into readings
                with cursor.copy(_COPY_READINGS if held.size == 0 else _COPY_GROUP) as copy:
                    copy.write(group_copy_data(items))
                if held.size:
                    cursor.execute(_MERGE_GROUP)
        except pg_errors.CheckViolation as exc:
            words = _BAD_VALUES.get(exc.diag.constraint_name or "", str(exc))
            raise InvalidData(words) from exc
        except psycopg.Error as exc:
            raise storage_error(exc) from exc
        extend(conn, items)
        return [count(item, held[held["i"] == n], sums) for n, item in enumerate(items, 1)]

    def _store_rows(
        self, conn: Connection, member_key: int, dataset_id: int, periods: np.ndarray, kwh: np.ndarray
    ) -> None:
        assert isinstance(conn, PgConnection)  # the connection _write gave
        raw = conn.raw
        try:
            with raw.cursor() as cursor:
                if conn.staged:  # an earlier dataset of this upload (commit empties it)
                    cursor.execute("DELETE FROM staged_readings")
                with cursor.copy(_COPY) as copy:
                    copy.write(copy_data(periods, kwh))
                conn.staged = True
                cursor.execute(_MERGE, (member_key, dataset_id))
        except pg_errors.CheckViolation as exc:
            name = self._dataset_names[dataset_id]
            words = _BAD_VALUES.get(exc.diag.constraint_name or "", str(exc))
            raise InvalidData(f"{name}: {words}") from exc
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(f"the node's database cannot be used just now ({exc})") from exc
        except psycopg.Error as exc:
            raise storage_error(exc) from exc


_FRESH_S = 0.5  # a connection back in its pool this recently was working: checking it costs a round trip
_returned: weakref.WeakKeyDictionary[psycopg.Connection, float] = weakref.WeakKeyDictionary()


def group_copy_data(items: Sequence[Put]) -> bytes:
    """Every item's (member, dataset, period, kwh) rows in COPY's binary format."""
    rows = np.empty(sum(item.periods.size for item in items), _GROUP_ROW)
    rows["fields"], rows["n1"], rows["n2"], rows["n3"], rows["n4"] = 4, 8, 8, 8, 8
    rows["member"] = np.repeat([i.member_key for i in items], [i.periods.size for i in items])
    rows["dataset"] = np.repeat([i.dataset_id for i in items], [i.periods.size for i in items])
    rows["period"] = np.concatenate([i.periods for i in items])
    rows["kwh"] = np.concatenate([i.kwh for i in items])
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def _returned_now(conn: psycopg.Connection) -> None:
    _returned[conn] = time.monotonic()


def _check_unless_fresh(conn: psycopg.Connection) -> None:
    if time.monotonic() - _returned.get(conn, 0.0) > _FRESH_S:
        ConnectionPool.check_connection(conn)


def copy_data(periods: np.ndarray, kwh: np.ndarray) -> bytes:
    """(period_start, kwh) rows in COPY's binary format, built by numpy rather than row by row."""
    rows = np.empty(periods.size, _COPY_ROW)
    rows["fields"], rows["n1"], rows["n2"] = 2, 8, 8  # two fields of eight bytes each
    rows["period"], rows["kwh"] = periods, kwh
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def _months(periods: np.ndarray) -> list[np.datetime64]:
    """The months (within the partitioned span) that periods fall in."""
    if periods.size == 0:
        return []
    months = np.unique(periods.astype("datetime64[s]").astype("datetime64[M]"))
    return list(months[(months >= _FIRST_MONTH) & (months < _END_MONTH)])


def _partition(month: np.datetime64) -> str:
    return "readings_" + str(month).replace("-", "_")

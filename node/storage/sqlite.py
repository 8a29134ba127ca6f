"""SQLite backend of the node store: WAL, one writer connection under a lock, pooled readers."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from coopfed.node.storage import sqlite_sql as q
from coopfed.node.storage.base import InvalidData, StorageError
from coopfed.node.storage.group import GroupCommit
from coopfed.node.storage.schema import Migration, bundled_migrations, migrate
from coopfed.node.storage.sql import SqlStore, move_totals
from coopfed.node.storage.sqlite_conn import ReaderPool, connect, storage_error, translated

Synchronous = Literal["NORMAL", "FULL", "EXTRA"]

_BAD_VALUES = {  # the readings table's constraint messages, in the caller's terms
    "NOT NULL constraint failed: readings.kwh": "kwh is NaN",
    "CHECK constraint failed: kwh_finite_non_negative": "kwh must be finite and >= 0",
    "CHECK constraint failed: period_on_half_hour": "periods must be >= 0 and on the half hour",
}


class SqliteStore(SqlStore):
    """The node's store in one SQLite file.

    `synchronous` FULL (default) syncs the WAL on every commit, so an acknowledged write also
    survives power loss; NORMAL is faster and still loses nothing when only the process dies.
    With `create` False a missing file is an error: a node never starts on an empty database
    in place of a lost one.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout_s: float = 5.0,
        cache_mib: int = 64,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        migrations: list[Migration] | None = None,
        create: bool = True,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = Path(path)
        self._synchronous = synchronous
        self._busy_timeout_s = busy_timeout_s
        self._clock = clock
        self._create = create
        self._lock = threading.Lock()
        # members' data: owner only. SQLite gives the -wal and -shm files the database's mode.
        with suppress(FileExistsError):
            self.path.touch(mode=0o600, exist_ok=False)
        self._writer: sqlite3.Connection | None = self._connect()
        try:
            self._writer.execute(f"PRAGMA cache_size = {-1024 * cache_mib}")
            mode = self._writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StorageError(f"{self.path} cannot use write-ahead logging (mode {mode})")
            self.schema_version = migrate(self._writer, migrations or bundled_migrations())
            with translated(self._writer):
                self._writer.execute("BEGIN IMMEDIATE")
                _rebuild_totals(self._writer)
                self._writer.execute("COMMIT")
            self._datasets = dict(self._writer.execute("SELECT name, dataset_id FROM datasets"))
        except BaseException as exc:
            self._writer.close()
            if isinstance(exc, sqlite3.Error):
                raise storage_error(exc) from exc
            raise
        self._dataset_names = {v: k for k, v in self._datasets.items()}
        self._readers = ReaderPool(lambda: self._connect(query_only=True))
        self._uploads = GroupCommit(self._put_group)

    def _connect(self, *, query_only: bool = False) -> sqlite3.Connection:
        return connect(
            self.path, self._synchronous, self._busy_timeout_s, query_only=query_only, create=self._create
        )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; all of it commits or none of it does."""
        with self._lock:
            if self._writer is None:
                raise StorageError("store is closed")
            conn = self._writer
            with translated(conn):
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._readers.connection() as conn, translated(conn):
            yield conn

    def forget_write_order(self, *tables: str) -> None:
        """Copy the write-ahead log into the database file and truncate it, so the log's frames
        (each transaction's pages, in commit order) no longer sit in it; the tables themselves
        (WITHOUT ROWID) keep their rows in key order only. Best effort: a reader in the middle
        of a snapshot can hold part of the log back."""
        with self._lock:
            if self._writer is not None:
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def refresh_statistics(self) -> None:
        """Nothing: SQLite plans by its indexes alone unless ANALYZE has run, and it never does here."""

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self._readers.close()

    def _store_rows(
        self, conn: sqlite3.Connection, member_key: int, dataset_id: int, periods: np.ndarray, kwh: np.ndarray
    ) -> None:
        flat: list = [None] * (2 * periods.size)
        flat[0::2], flat[1::2] = periods.tolist(), kwh.tolist()
        pos = 0
        try:
            for rows in q.load_sizes(periods.size):
                conn.execute(q.upsert_readings(rows), (member_key, dataset_id, *flat[pos : pos + 2 * rows]))
                pos += 2 * rows
        except sqlite3.IntegrityError as exc:
            name = self._dataset_names[dataset_id]
            raise InvalidData(f"{name}: {_BAD_VALUES.get(str(exc), exc)}") from exc


def _rebuild_totals(conn: sqlite3.Connection) -> None:
    """Totals from the readings, where a migration asked for it (see 0010_exact_totals.sql)."""
    asked = "SELECT 1 FROM sqlite_schema WHERE name = 'totals_to_rebuild'"
    if (
        conn.execute(asked).fetchone() is None
        or conn.execute("SELECT 1 FROM totals_to_rebuild").fetchone() is None
    ):
        return
    conn.execute("DELETE FROM profile_totals")
    for member_key, profile_key in conn.execute(q.MEMBERS_IN_PROFILES).fetchall():
        move_totals(conn, member_key, None, profile_key)
    conn.execute("DELETE FROM totals_to_rebuild")

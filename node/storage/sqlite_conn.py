"""SQLite connections for the store: opening, checking, copying, error translation, the reader pool."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from coopfed.node.storage.base import InvalidData, StorageBusy, StorageError


def connect(
    path: Path, synchronous: str, busy_timeout_s: float, *, query_only: bool = False, create: bool = True
) -> sqlite3.Connection:
    """A connection to the store's file; with `create` False a missing file is an error, never a new one."""
    conn = sqlite3.connect(
        path if create else existing(path),
        uri=not create,
        timeout=busy_timeout_s,
        isolation_level=None,  # transactions are begun and ended explicitly
        check_same_thread=False,  # a lock or the pool hands it to one thread at a time
    )
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA temp_store = MEMORY")
    if query_only:
        conn.execute("PRAGMA query_only = ON")
    return conn


def existing(path: Path) -> str:
    """A URI that opens `path` for reading and writing and fails where there is no such file."""
    return f"{Path(path).resolve().as_uri()}?mode=rw"


def quick_check(conn: sqlite3.Connection) -> list[str]:
    """What SQLite's quick_check finds wrong with the database: empty when it is sound."""
    try:
        rows = [row[0] for row in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:  # "file is not a database", "disk image is malformed"
        return [str(exc)]
    return [] if rows == ["ok"] else rows


def copy_database(source: sqlite3.Connection, target: Path) -> None:
    """A consistent copy of `source` into a new file `target` (mode 0600), one self-contained file.

    The online backup copies every page in one step, inside one read transaction: in WAL mode
    writers carry on meanwhile, and the copy is the database as of one commit.
    """
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # sqlite keeps the mode
    copy = sqlite3.connect(target, isolation_level=None)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode = DELETE")  # no -wal file to carry beside the copy
    finally:
        copy.close()
    with open(target, "rb") as written:
        os.fsync(written.fileno())


@contextmanager
def translated(conn: sqlite3.Connection) -> Iterator[None]:
    """Roll back on any failure and raise storage errors instead of sqlite3 ones."""
    try:
        yield
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.IntegrityError):
            raise InvalidData(str(exc)) from exc
        if isinstance(exc, OverflowError):
            raise InvalidData("a value is out of range for a 64-bit integer") from exc
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise StorageBusy(f"the database is busy: {exc}") from exc
        if isinstance(exc, sqlite3.Error):
            raise StorageError(f"{type(exc).__name__}: {exc}") from exc
        raise


class ReaderPool:
    """Query-only connections, each used by one thread at a time; WAL lets them read during writes."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise StorageError("store is closed")
            conn = self._idle.pop() if self._idle else None
        conn = conn or self._connect()
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            with self._lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

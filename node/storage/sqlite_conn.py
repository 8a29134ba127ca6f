"""SQLite connections for the store: opening, error translation, and the pool of readers."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from coopfed.node.storage.base import InvalidData, StorageBusy, StorageError


def connect(
    path: Path, synchronous: str, busy_timeout_s: float, *, query_only: bool = False
) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path,
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

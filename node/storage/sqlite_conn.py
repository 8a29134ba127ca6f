"""SQLite connections for the store: opening, checking, copying, error translation, the reader pool."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from coopfed.node.storage.base import (
    ConstraintBroken,
    InvalidData,
    StorageBusy,
    StorageError,
    StorageFull,
    StorageUnavailable,
)

# SQLite's primary result codes (the low byte of an extended one), as the node reports them
_BY_CODE: dict[int, type[StorageError]] = {
    sqlite3.SQLITE_CONSTRAINT: ConstraintBroken,
    sqlite3.SQLITE_BUSY: StorageBusy,
    sqlite3.SQLITE_LOCKED: StorageBusy,
    sqlite3.SQLITE_FULL: StorageFull,
    sqlite3.SQLITE_READONLY: StorageUnavailable,
    sqlite3.SQLITE_CANTOPEN: StorageUnavailable,
    sqlite3.SQLITE_IOERR: StorageUnavailable,
}


def connect(
    path: Path, synchronous: str, busy_timeout_s: float, *, query_only: bool = False, create: bool = True
) -> sqlite3.Connection:
    """A connection to the store's file; with `create` False a missing file is an error, never a new one."""
    try:
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
    except sqlite3.Error as exc:  # e.g. a folder that cannot be written, a missing file
        raise storage_error(exc) from exc
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
        if isinstance(exc, OverflowError):
            raise InvalidData("a value is out of range for a 64-bit integer") from exc
        if isinstance(exc, sqlite3.Error):
            raise storage_error(exc) from exc
        raise


def storage_error(exc: sqlite3.Error) -> StorageError:
    """The storage error for an sqlite3 one, chosen by SQLite's result code."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None and isinstance(exc, sqlite3.IntegrityError):
        code = sqlite3.SQLITE_CONSTRAINT
    kind = _BY_CODE.get(code & 0xFF, StorageError) if code is not None else StorageError
    return kind(_WORDS.get(kind, "the database failed: {}").format(exc))


_WORDS: dict[type[StorageError], str] = {
    ConstraintBroken: "{}",
    StorageBusy: "the database is busy: {}",
    StorageFull: "the node's disk is full; nothing was stored ({})",
    StorageUnavailable: "the node's database cannot be used just now ({})",
}


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

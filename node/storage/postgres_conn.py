"""PostgreSQL connections for the store: the store's SQL in PostgreSQL's dialect, error translation.

The store's statements are written once, in the SQL both databases share, with SQLite's `?` and
`?N` placeholders and its `json_each`/`json_extract`. `PgConnection` rewrites each statement
once (cached) into psycopg's placeholders and PostgreSQL's JSON functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.types.numeric import Int8Dumper

from coopfed.node.storage.base import (
    ConstraintBroken,
    InvalidData,
    StorageBusy,
    StorageError,
    StorageFull,
    StorageUnavailable,
)

_JSON_EACH = re.compile(r"json_each\((\?\d*)\)")
_JSON_EXTRACT = re.compile(r"json_extract\(([\w.]+), '\$\.(\w+)'\)")
_TOKEN = re.compile(r"'(?:[^']|'')*'|\?(\d*)|(?<!:):([A-Za-z_]\w*)|%")


@lru_cache(maxsize=512)
def translate(sql: str) -> tuple[str, bool]:
    """PostgreSQL's text of a statement, and whether its placeholders are numbered.

    `?N` becomes `%(pN)s`, which psycopg sends as one server parameter however often it appears,
    so PostgreSQL infers its type from any of its uses (`?2 IS NULL OR x < ?2`)."""
    sql = _JSON_EACH.sub(r"json_array_elements_text(CAST(\1 AS json))", sql)
    sql = _JSON_EXTRACT.sub(r"(CAST(\1 AS json) ->> '\2')", sql)
    numbered = False

    def placeholder(match: re.Match[str]) -> str:
        nonlocal numbered
        text = match.group(0)
        if text == "%":
            return "%%"
        if text.startswith("'"):
            return text.replace("%", "%%")  # psycopg reads every % outside its own placeholders
        if match.group(2):  # :name, its parameters a mapping
            return f"%({match.group(2)})s"
        if match.group(1):
            numbered = True
            return f"%(p{match.group(1)})s"
        return "%s"

    return _TOKEN.sub(placeholder, sql), numbered


def _arguments(numbered: bool, parameters: Any) -> Any:
    return {f"p{i}": value for i, value in enumerate(parameters, 1)} if numbered else parameters


class _FlagDumper(Int8Dumper):
    """True and False as 1 and 0: the store keeps flags in integer columns, as SQLite does."""

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def adapt(conn: psycopg.Connection) -> None:
    """Make a new connection take the store's Python values as the SQLite store does."""
    conn.adapters.register_dumper(bool, _FlagDumper)


class PgCursor:
    """The results of one statement, read the way the store reads sqlite3's cursor."""

    def __init__(self, conn: psycopg.Connection, cursor: psycopg.Cursor | None) -> None:
        self._conn = conn
        self._cursor = cursor

    @property
    def lastrowid(self) -> int | None:
        """The identity value the INSERT just drew (every inserting table's key is an identity)."""
        with translated():
            row = self._conn.execute("SELECT lastval()").fetchone()
        return None if row is None else int(row[0])

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount if self._cursor is not None else -1

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor is not None and self._cursor.description else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor is not None and self._cursor.description else []

    def fetchmany(self, size: int = 1) -> list[Any]:
        return self._cursor.fetchmany(size) if self._cursor is not None and self._cursor.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection inside one of the store's transactions, taking the store's SQL."""

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw
        self.staged = False  # the transaction has put rows in staged_readings (postgres.py)

    def execute(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] = (), /) -> PgCursor:
        if sql == "BEGIN":  # the store's transactions are begun by the store
            return PgCursor(self.raw, None)
        text, numbered = translate(sql)
        with translated():
            return PgCursor(self.raw, self.raw.execute(text.encode(), _arguments(numbered, parameters)))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any] | Mapping[str, Any]], /) -> PgCursor:
        text, numbered = translate(sql)
        with translated():
            cursor = self.raw.cursor()
            cursor.executemany(text.encode(), [_arguments(numbered, p) for p in parameters])
            return PgCursor(self.raw, cursor)


@contextmanager
def translated() -> Iterator[None]:
    """Storage errors instead of psycopg ones (the transaction's context rolls back)."""
    try:
        yield
    except psycopg.Error as exc:
        raise storage_error(exc) from exc


def storage_error(exc: psycopg.Error) -> StorageError:
    """The storage error for a psycopg one, by SQLSTATE class, as sqlite_conn does by result code."""
    state = exc.sqlstate or ""
    if isinstance(exc, pg_errors.NumericValueOutOfRange):
        return InvalidData(f"a value is out of range for a 64-bit integer ({exc})")
    if isinstance(exc, psycopg.DataError) and not state:  # refused before it was sent, e.g. a NUL
        return InvalidData(str(exc))
    if state.startswith(("23", "22")):  # integrity; malformed data a check caught
        return ConstraintBroken(str(exc))
    if state == "53100":
        return StorageFull(f"the database's disk is full; nothing was stored ({exc})")
    if state.startswith(("40", "55P03", "57014")):  # serialization, deadlock, lock wait, timeout
        return StorageBusy(f"the database is busy: {exc}")
    if isinstance(exc, psycopg.OperationalError) or state.startswith(("08", "57P", "53")):
        return StorageUnavailable(f"the node's database cannot be used just now ({exc})")
    return StorageError(f"the database failed: {exc}")

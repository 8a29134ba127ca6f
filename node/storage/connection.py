"""The connection the store's shared SQL runs on: sqlite3's, or the PostgreSQL adapter."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import psycopg

from coopfed.node.storage.base import ConstraintBroken


class Cursor(Protocol):
    """What the store reads back from a statement: sqlite3's cursor, or the PostgreSQL adapter's."""

    @property
    def lastrowid(self) -> int | None: ...
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchmany(self, size: int = ...) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection taking the store's SQL: `?` or `?N` placeholders, SQLite's JSON functions."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor: ...


# What a backend raises for a write that broke a constraint: sqlite3's own error, or the storage
# error PgConnection translates PostgreSQL's into.
Refused = (sqlite3.IntegrityError, ConstraintBroken)


def duplicate(exc: BaseException) -> bool:
    """Whether a refused write repeated a unique key, on either backend."""
    if isinstance(exc, sqlite3.IntegrityError):
        return "UNIQUE" in str(exc) or "PRIMARY" in str(exc)
    return isinstance(exc.__cause__, psycopg.errors.UniqueViolation)

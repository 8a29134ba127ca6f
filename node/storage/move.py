"""Moving a node's state from its SQLite file into an empty PostgreSQL database.

`copy_state` copies every table in one transaction (readings by binary COPY, the rest by text
COPY, in foreign-key order) and then sets each identity column past the keys it copied.
`verify_copy` reads both sides again: row counts and an order-free digest of every table, a
checksum of each member's readings, and the decision log's hash chain verified on the copy and
ending at the source's head. The caller (operations.move_to_postgresql) holds the folder lock,
so nothing writes to the SQLite file meanwhile; the file itself is only read.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from coopfed.node.decisionlog import GENESIS, verify
from coopfed.node.storage.base import SchemaError, StorageError
from coopfed.node.storage.postgres import PostgresStore
from coopfed.node.storage.postgres_conn import storage_error
from coopfed.node.storage.schema import bundled_migrations

_CHUNK = 200_000
_SEEDED = {"datasets"}  # tables the migrations fill; the copy checks them instead of copying them
# One-row counters a migration seeds (0014): the copy replaces the seeded row with the source's.
_COUNTERS = {"federation_peers_version": (1, 0), "federation_revocation_sequence": (1, 0)}
_NOT_COPIED = {"schema_version"}  # each database records its own migrations
_SQLITE_ONLY = {"totals_to_rebuild"}  # the SQLite store's work list on opening; empty once it opened
_READING = np.dtype([("member_key", "<i8"), ("dataset_id", "<i8"), ("period_start", "<i8"), ("kwh", "<f8")])
_COPY_READING = np.dtype(
    [("fields", ">i2")] + [(f"{n}{k}", t) for k, (n, t) in enumerate([("n", ">i4"), ("v", ">i8")] * 3)]
    + [("n9", ">i4"), ("kwh", ">f8")]
)  # fmt: skip
_COPY_HEADER, _COPY_TRAILER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0), struct.pack(">h", -1)
_TABLES = """SELECT c.relname FROM pg_class AS c
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition"""
_IDENTITIES = """SELECT c.relname, a.attname FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
WHERE c.relnamespace = current_schema()::regnamespace AND a.attidentity <> '' AND NOT c.relispartition"""
_SET_IDENTITY = sql.SQL(
    "SELECT setval(pg_get_serial_sequence({t}, {c}), m, true) "
    "FROM (SELECT max({col}) AS m FROM {tab}) AS top WHERE m IS NOT NULL"
)  # each identity past the keys copied, so that the node's next insert draws a new one
_READINGS = "SELECT member_key, dataset_id, period_start, kwh FROM readings ORDER BY 1, 2, 3"


class MoveRefused(StorageError):
    """The target cannot take the node's state (not empty, another schema); nothing was written."""


class CopyMismatch(StorageError):
    """The copy differs from the source: the move stops before the node uses it."""


@dataclass(frozen=True)
class Verified:
    rows: dict[str, int]  # per table, equal on both sides
    members: int  # members whose readings' checksums matched
    readings: int
    log_entries: int  # decision log entries whose chain verified on the copy


def open_target(url: str) -> PostgresStore:
    """Open the target as the node will, migrating a bare database; refuse one holding other tables."""
    tables = tables_of(url)
    if tables and "schema_version" not in tables:
        raise MoveRefused(
            f"the target database holds tables that are not coopfed's ({', '.join(sorted(tables)[:5])}); "
            "give an empty database (createdb) or one made by `coopfed node migrate`"
        )
    return PostgresStore(url)


def tables_of(url: str) -> set[str]:
    """The tables of a PostgreSQL database's schema (a partitioned table counts once)."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            return {name for (name,) in conn.execute(_TABLES).fetchall()}
    except psycopg.Error as exc:
        raise storage_error(exc) from exc


def copy_state(source: sqlite3.Connection, target: PostgresStore) -> dict[str, int]:
    """Copy every table of `source` into the empty `target`; return the rows copied per table.

    One transaction: a failure leaves the target as empty as it was (the readings' monthly
    partitions, made beforehand, stay, holding nothing).
    """
    tables = _check_schemas(source, target)
    target._make_room([(0, _months(source), np.empty(0))])
    copied: dict[str, int] = {}
    with _connect(target.url) as conn, conn.transaction():
        _check_empty(conn, source, tables)
        for table in _in_key_order(source, tables):
            if table in _SEEDED:
                continue
            if table in _COUNTERS:
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
            columns = [row[1] for row in source.execute(f'PRAGMA table_info("{table}")')]
            copy = _copy_readings if table == "readings" else _copy_table
            copied[table] = copy(source, conn, table, columns)
        for table, column in conn.execute(_IDENTITIES).fetchall():
            names = {"col": sql.Identifier(column), "tab": sql.Identifier(table)}
            conn.execute(_SET_IDENTITY.format(t=table, c=column, **names))
    target.refresh_statistics()
    return copied


def verify_copy(source: sqlite3.Connection, target: PostgresStore) -> Verified:
    """Compare the copy with the source; CopyMismatch naming what differs."""
    tables = _check_schemas(source, target)
    problems: list[str] = []
    rows: dict[str, int] = {}
    with _connect(target.url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for table in sorted(tables - {"readings"}):
            theirs, ours = _digest(_sqlite_rows(source, table)), _digest(_pg_rows(conn, table))
            rows[table] = ours[0]
            if ours != theirs:
                problems.append(f"table {table}: {theirs[0]} rows in SQLite, {ours[0]} in PostgreSQL" +
                                ("" if ours[0] != theirs[0] else ", their contents differ"))  # fmt: skip
        before, after = _member_checksums(_sqlite_readings(source)), _member_checksums(_pg_readings(conn))
        rows["readings"] = sum(n for n, _ in after.values())
        differ = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        if differ:
            names = _member_ids(source, differ[:5])
            problems.append(f"the readings of {len(differ)} member(s) differ, among them {', '.join(names)}")
        log = _verify_log(source, conn)
    if isinstance(log, str):
        problems.append(log)
    if problems:
        raise CopyMismatch("the copy does not match the SQLite database: " + "; ".join(problems))
    assert isinstance(log, int)
    return Verified(rows, len(after), rows["readings"], log)


def empty_target(target: PostgresStore) -> None:
    """Remove what a refused copy left, so that the database is as `open_target` found it."""
    tables = tables_of(target.url) - _SEEDED - _NOT_COPIED
    names = sql.SQL(", ").join(sql.Identifier(t) for t in sorted(tables))
    with _connect(target.url) as conn:
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))
        for table, seed in _COUNTERS.items():
            conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(sql.Identifier(table)), seed)


def _source_tables(source: sqlite3.Connection) -> set[str]:
    found = source.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return {name for (name,) in found} - _NOT_COPIED


# --- the checks before copying ---------------------------------------------------------------------


def _check_schemas(source: sqlite3.Connection, target: PostgresStore) -> set[str]:
    """The tables both hold; MoveRefused unless both are at this coopfed's schema with the same columns."""
    ours = [m.name for m in bundled_migrations()]
    theirs = [name for (name,) in source.execute("SELECT name FROM schema_version ORDER BY version")]
    if theirs != ours:
        raise MoveRefused(
            f"the SQLite database is at schema version {len(theirs)} and this coopfed at {len(ours)}: "
            "serve the node once with this version (which upgrades its database), stop it, then move it"
        )
    if target.schema_version != len(ours):
        raise MoveRefused(f"the target is at schema version {target.schema_version}, coopfed at {len(ours)}")
    tables = _source_tables(source)
    for table in _SQLITE_ONLY & tables:
        if source.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")').fetchone()[0]:  # noqa: S608 - ours
            raise MoveRefused(
                "the SQLite store has totals to rebuild: serve the node once, stop it, then move it"
            )
        tables.discard(table)
    with _connect(target.url) as conn:
        pg_tables = {name for (name,) in conn.execute(_TABLES).fetchall()} - _NOT_COPIED
        if pg_tables != tables:
            raise MoveRefused(f"the two databases' tables differ: {sorted(pg_tables ^ tables)}")
        for table in sorted(tables):
            mine = {row[1] for row in source.execute(f'PRAGMA table_info("{table}")')}
            found = conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s AND is_generated = 'NEVER'",
                (table,),
            )
            differ = {name for (name,) in found.fetchall()} ^ mine
            if differ:
                raise MoveRefused(f"the table {table} has other columns in the target ({sorted(differ)})")
    return tables


def _check_empty(conn: psycopg.Connection, source: sqlite3.Connection, tables: set[str]) -> None:
    held = [t for t in sorted(tables - _SEEDED - _COUNTERS.keys()) if _pg_has_rows(conn, t)]
    held += [t for t in sorted(_COUNTERS) if list(_pg_rows(conn, t)) != [_COUNTERS[t]]]
    if held:
        raise MoveRefused(
            f"the target database is not empty ({', '.join(held[:5])} hold rows): a co-op moves into "
            "an empty database, so nothing it holds is overwritten or mixed in"
        )
    for table in _SEEDED:
        if _digest(_sqlite_rows(source, table)) != _digest(_pg_rows(conn, table)):
            raise MoveRefused(f"the table {table} differs between the two databases")


def _pg_has_rows(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))).fetchone()
    return bool(row and row[0])


def _in_key_order(source: sqlite3.Connection, tables: set[str]) -> list[str]:
    """Tables ordered so that each comes after the tables its foreign keys name."""
    needs = {t: {r[2] for r in source.execute(f'PRAGMA foreign_key_list("{t}")')} - {t} for t in tables}
    ordered: list[str] = []
    while needs:
        ready = sorted(t for t, deps in needs.items() if not deps - set(ordered))
        if not ready:
            raise SchemaError(f"the tables' foreign keys form a cycle: {sorted(needs)}")
        ordered += ready
        for t in ready:
            del needs[t]
    return ordered


def _months(source: sqlite3.Connection) -> np.ndarray:
    """The first second of each month the source's readings reach (for their partitions)."""
    low, high = source.execute("SELECT min(period_start), max(period_start) FROM readings").fetchone()
    if low is None:
        return np.empty(0, np.int64)
    first, last = (np.datetime64(int(t), "s").astype("datetime64[M]") for t in (low, high))
    return np.arange(first, last + 1).astype("datetime64[s]").astype(np.int64)


# --- copying ----------------------------------------------------------------------------------------


def _copy_table(source: sqlite3.Connection, conn: psycopg.Connection, table: str, columns: list[str]) -> int:
    """COPY one table's rows as they are, its own triggers off for it: they checked each row when it
    was written (a closed ballot's box takes no vote, yet its votes are copied)."""
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    query = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), names)
    n = 0
    conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(sql.Identifier(table)))
    with conn.cursor() as cursor, cursor.copy(query) as copy:
        for rows in _chunks(_sqlite_rows(source, table, columns)):
            for row in rows:
                copy.write_row(row)
            n += len(rows)
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER USER").format(sql.Identifier(table)))
    return n


def _copy_readings(source: sqlite3.Connection, conn: psycopg.Connection, _t: str, _c: list[str]) -> int:
    query = "COPY readings (member_key, dataset_id, period_start, kwh) FROM STDIN (FORMAT BINARY)"
    n = 0
    with conn.cursor() as cursor, cursor.copy(query) as copy:
        copy.write(_COPY_HEADER)
        for part in _sqlite_readings(source, ordered=False):
            rows = np.empty(part.size, _COPY_READING)
            rows["fields"] = 4
            for i, field in enumerate(("member_key", "dataset_id", "period_start")):
                rows[f"n{2 * i}"], rows[f"v{2 * i + 1}"] = 8, part[field]
            rows["n9"], rows["kwh"] = 8, part["kwh"]
            copy.write(rows.tobytes())
            n += part.size
        copy.write(_COPY_TRAILER)
    return n


# --- reading both sides -----------------------------------------------------------------------------


def _sqlite_readings(source: sqlite3.Connection, *, ordered: bool = True) -> Iterator[np.ndarray]:
    query = _READINGS if ordered else _READINGS.removesuffix(" ORDER BY 1, 2, 3")
    for rows in _chunks(source.execute(query)):
        yield np.array(rows, dtype=_READING)


def _pg_readings(conn: psycopg.Connection) -> Iterator[np.ndarray]:
    """The target's readings, by binary COPY out: fixed-width rows that numpy reads in batches."""
    width = _COPY_READING.itemsize
    with conn.cursor() as cursor, cursor.copy(f"COPY ({_READINGS}) TO STDOUT (FORMAT BINARY)") as copy:
        held, size, pending = [], 0, b""
        for data in copy:  # a row at a time
            held.append(bytes(data))
            size += len(data)
            if size >= _CHUNK * width:
                pending, part = _parse_readings(pending + b"".join(held), width)
                held, size = [], 0
                yield part
        pending, part = _parse_readings(pending + b"".join(held), width)
        yield part
    if pending != _COPY_TRAILER:
        raise CopyMismatch("the target's readings could not be read back whole")


def _parse_readings(data: bytes, width: int) -> tuple[bytes, np.ndarray]:
    """The readings in the whole rows of `data` (its COPY header dropped), and the bytes left."""
    if data.startswith(_COPY_HEADER[:11]):
        data = data[len(_COPY_HEADER) :]
    whole = len(data) // width * width
    rows = np.frombuffer(data[:whole], _COPY_READING)
    part = np.empty(rows.size, _READING)
    part["member_key"], part["dataset_id"], part["period_start"] = rows["v1"], rows["v3"], rows["v5"]
    part["kwh"] = rows["kwh"]
    return data[whole:], part


def _member_checksums(parts: Iterator[np.ndarray]) -> dict[int, tuple[int, str]]:
    """Each member's reading count and SHA-256 of their (dataset, period, kWh) rows in key order."""
    found: dict[int, tuple[int, Any]] = {}
    for part in parts:
        keys = part["member_key"]
        cuts = [0, *(np.flatnonzero(np.diff(keys)) + 1).tolist(), keys.size]
        for lo, hi in itertools.pairwise(cuts):
            if lo == hi:
                continue
            key = int(keys[lo])
            count, digest = found.get(key) or (0, hashlib.sha256())
            digest.update(part[["dataset_id", "period_start", "kwh"]][lo:hi].tobytes())
            found[key] = (count + hi - lo, digest)
    return {key: (count, digest.hexdigest()) for key, (count, digest) in found.items()}


def _sqlite_rows(source: sqlite3.Connection, table: str, columns: list[str] | None = None) -> sqlite3.Cursor:
    listed = ", ".join(f'"{c}"' for c in columns) if columns else "*"
    return source.execute(f'SELECT {listed} FROM "{table}"')  # noqa: S608 - names from sqlite_schema


def _pg_rows(conn: psycopg.Connection, table: str) -> Iterator[tuple[Any, ...]]:
    with conn.cursor(name=f"verify_{table}") as cursor:  # server-side: a big table streams
        cursor.itersize = _CHUNK
        cursor.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
        yield from (tuple(row[name] for name in sorted(row)) for row in _named(cursor))


def _named(cursor: psycopg.Cursor) -> Iterator[dict[str, Any]]:
    for row in cursor:
        assert cursor.description is not None
        yield {d.name: value for d, value in zip(cursor.description, row, strict=True)}


def _digest(rows: Any) -> tuple[int, int]:
    """Row count and an order-free digest of a table's rows (the sum of each row's hash), its
    columns taken by name so both databases' column orders agree."""
    names = None
    n, total = 0, 0
    for row in rows:
        if names is None and hasattr(rows, "description") and rows.description is not None:
            names = [d[0] for d in rows.description]
        values = row if names is None else tuple(v for _, v in sorted(zip(names, row, strict=True)))
        n += 1
        total += int.from_bytes(hashlib.sha256(repr(_plain(values)).encode()).digest()[:16], "big")
    return n, total % (1 << 128)


def _plain(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(bytes(v) if isinstance(v, memoryview) else v for v in values)


def _member_ids(source: sqlite3.Connection, keys: list[int]) -> list[str]:
    found = dict(source.execute("SELECT member_key, member_id FROM members"))
    return [found.get(k, f"member key {k}") for k in keys]


def _verify_log(source: sqlite3.Connection, conn: psycopg.Connection) -> int | str:
    """The number of entries whose chain verified on the copy, or what is wrong with it."""
    row = source.execute("SELECT seq, hash FROM decision_log_head").fetchone()
    head = (int(row[0]), str(row[1])) if row else (0, GENESIS)
    with conn.cursor(name="verify_log") as cursor:
        cursor.execute("SELECT entry_json FROM decision_log ORDER BY position")
        report = verify((entry for (entry,) in cursor), head=head)
    if report.problems:
        return "the decision log's chain does not verify on the copy: " + report.problems[0].message
    if (report.head_seq, report.head_hash) != head:
        return f"the copy's decision log ends at entry {report.head_seq}, the SQLite one at entry {head[0]}"
    return report.entries


def _connect(url: str) -> psycopg.Connection:
    try:
        return psycopg.connect(url, autocommit=False, connect_timeout=10)
    except psycopg.Error as exc:
        raise storage_error(exc) from exc


def _chunks(cursor: sqlite3.Cursor) -> Iterator[list[Any]]:
    while rows := cursor.fetchmany(_CHUNK):
        yield rows

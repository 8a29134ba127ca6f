"""Forward-only, checksummed schema migrations: one history, in SQLite's and PostgreSQL's SQL.

`migrations/NNNN_name.sql` are SQLite's, `migrations/postgresql/NNNN_name.sql` PostgreSQL's:
the same versions under the same names, each checked against the checksum recorded when it was
applied, so neither backend can drift from the history it was built by.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Literal

import psycopg

from coopfed.node.storage.base import SchemaError, SchemaTooNew

Dialect = Literal["sqlite", "postgresql"]

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_BOOTSTRAP = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL
) STRICT"""

_PG_BOOTSTRAP = """CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""

# pg_advisory_xact_lock key of schema changes: concurrent openers of one database take turns
MIGRATION_LOCK = 0x636F_6F70_6D69_67  # "coopmig"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def bundled_migrations(dialect: Dialect = "sqlite") -> list[Migration]:
    """The migrations shipped with this package, in one backend's SQL."""
    folder = resources.files("coopfed.node.storage") / "migrations"
    sqlite = load_migrations(folder)
    if dialect == "sqlite":
        return sqlite
    found = load_migrations(folder / dialect)
    if [m.name for m in found] != [m.name for m in sqlite]:
        raise SchemaError(f"the {dialect} migrations are not the SQLite ones: {[m.name for m in found]}")
    return found


def load_migrations(folder: Traversable) -> list[Migration]:
    """`NNNN_name.sql` files of a folder, numbered 1, 2, 3... without gaps."""
    found = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        match = _NAME.match(path.name)
        if path.name.endswith(".sql") and not match:
            raise SchemaError(f"migration file name {path.name!r} is not NNNN_name.sql")
        if match:
            found.append(Migration(int(match.group(1)), path.name, path.read_text(encoding="utf-8")))
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise SchemaError(f"migrations must be numbered 1..n without gaps: {[m.name for m in found]}")
    return found


def split_statements(sql: str) -> list[str]:
    """Split a script into statements, keeping trigger bodies whole."""
    statements, start = [], 0
    for i, char in enumerate(sql):
        if char == ";" and sqlite3.complete_statement(sql[start : i + 1]):
            statements.append(sql[start : i + 1].strip())
            start = i + 1
    rest = "\n".join(ln for ln in sql[start:].splitlines() if not ln.strip().startswith("--"))
    if rest.strip():
        raise SchemaError(f"incomplete SQL statement at the end of a migration: {rest.strip()[:80]!r}")
    return statements


def migrate(conn: sqlite3.Connection, migrations: list[Migration]) -> int:
    """Apply pending migrations in one transaction; return the schema version now in force.

    Refuses a database that is newer than `migrations`, or whose applied migrations differ
    from the files (an edited migration is a new migration, never a changed one).
    """
    conn.execute(_BOOTSTRAP)
    conn.execute("BEGIN IMMEDIATE")  # concurrent openers take turns; the second sees the work done
    try:
        applied = conn.execute("SELECT version, name, checksum FROM schema_version ORDER BY version")
        current = _check_applied(applied.fetchall(), migrations)
        for migration in migrations[current:]:
            _apply(conn, migration)
            conn.execute(
                "INSERT INTO schema_version (version, name, checksum, applied_at) VALUES (?,?,?,?)",
                (migration.version, migration.name, migration.checksum, _now()),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return len(migrations)


def migrate_postgresql(conn: psycopg.Connection, migrations: list[Migration]) -> int:
    """`migrate` for PostgreSQL: pending migrations in one transaction, under an advisory lock
    so that nodes opening one database at once take turns."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(_PG_BOOTSTRAP)
        applied = conn.execute("SELECT version, name, checksum FROM schema_version ORDER BY version")
        current = _check_applied(applied.fetchall(), migrations)
        for migration in migrations[current:]:
            try:
                with conn.transaction():  # a savepoint: the error names the migration that failed
                    conn.execute(migration.sql.encode())  # no parameters: the script runs as sent
            except psycopg.Error as exc:
                raise SchemaError(f"migration {migration.name} failed: {exc}") from exc
            conn.execute(
                "INSERT INTO schema_version (version, name, checksum, applied_at) VALUES (%s,%s,%s,%s)",
                (migration.version, migration.name, migration.checksum, _now()),
            )
    return len(migrations)


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    try:
        for statement in split_statements(migration.sql):
            conn.execute(statement)
    except sqlite3.Error as exc:
        raise SchemaError(f"migration {migration.name} failed: {exc}") from exc


def _check_applied(rows: list[tuple[int, str, str]], migrations: list[Migration]) -> int:
    if [r[0] for r in rows] != list(range(1, len(rows) + 1)):
        raise SchemaError(f"schema_version has gaps: {[r[0] for r in rows]}")
    if len(rows) > len(migrations):
        raise SchemaTooNew(
            f"database schema version {len(rows)} is newer than this code knows "
            f"({len(migrations)}); upgrade coopfed before opening it"
        )
    for (version, name, checksum), known in zip(rows, migrations, strict=False):
        if checksum != known.checksum:
            raise SchemaError(
                f"migration {version} was applied as {name} with checksum {checksum[:12]}, "
                f"but {known.name} now has {known.checksum[:12]}: applied migrations must not change"
            )
    return len(rows)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")

"""Every storage backend, by name, as a function that opens a fresh store in a folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from coopfed.node.storage import SqliteStore, Store
from coopfed.node.storage.ledger import LedgerStore
from coopfed.node.storage.ledger_sqlite import PostgresLedgerStore, SqliteLedgerStore
from coopfed.node.storage.postgres import PostgresStore

from ..pgserver import fresh_database

BACKENDS: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda folder: SqliteStore(folder / "node.db"),
    "postgresql": lambda folder: PostgresStore(fresh_database()),  # a new database on the session's server
}

LEDGER_BACKENDS: dict[str, Callable[[Store], LedgerStore]] = {
    "sqlite": lambda store: SqliteLedgerStore(store),  # type: ignore[arg-type]
    "postgresql": lambda store: PostgresLedgerStore(store),  # type: ignore[arg-type]
}
"""The ledger beside each backend's store, by the same name."""

"""Every storage backend, by name, as a function that opens a fresh store in a folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from coopfed.node.storage import SqliteStore, Store
from coopfed.node.storage.ballots import BallotStore
from coopfed.node.storage.ballots_sqlite import SqliteBallotStore
from coopfed.node.storage.federation import FederationStore
from coopfed.node.storage.federation_sqlite import SqliteFederationStore
from coopfed.node.storage.forecast import ForecastIndex
from coopfed.node.storage.forecast_sqlite import SqliteForecastIndex
from coopfed.node.storage.ledger import LedgerStore
from coopfed.node.storage.ledger_sqlite import PostgresLedgerStore, SqliteLedgerStore
from coopfed.node.storage.postgres import PostgresStore

from ..pgserver import fresh_database

_DATABASES: dict[Path, str] = {}


def _database(folder: Path) -> str:
    """The test folder's own database on the session's server: opened again, the same one."""
    if folder not in _DATABASES:
        _DATABASES[folder] = fresh_database()
    return _DATABASES[folder]


BACKENDS: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda folder: SqliteStore(folder / "node.db"),
    "postgresql": lambda folder: PostgresStore(_database(folder)),
}

LEDGER_BACKENDS: dict[str, Callable[[Store], LedgerStore]] = {
    "sqlite": lambda store: SqliteLedgerStore(store),  # type: ignore[arg-type]
    "postgresql": lambda store: PostgresLedgerStore(store),  # type: ignore[arg-type]
}
"""The ledger beside each backend's store, by the same name."""

BALLOT_BACKENDS: dict[str, Callable[[Store], BallotStore]] = {
    "sqlite": lambda store: SqliteBallotStore(store),  # type: ignore[arg-type]
    "postgresql": lambda store: SqliteBallotStore(store),  # type: ignore[arg-type]  # runs on either backend
}
"""The ballot store beside each backend's store, by the same name."""

FEDERATION_BACKENDS: dict[str, Callable[[Store], FederationStore]] = {
    "sqlite": lambda store: SqliteFederationStore(store),  # type: ignore[arg-type]
    "postgresql": lambda store: SqliteFederationStore(store),  # type: ignore[arg-type]  # runs on either backend
}
"""The federation store beside each backend's store, by the same name."""

FORECAST_BACKENDS: dict[str, Callable[[Store], ForecastIndex]] = {
    "sqlite": lambda store: SqliteForecastIndex(store),  # type: ignore[arg-type]
    "postgresql": lambda store: SqliteForecastIndex(store),  # type: ignore[arg-type]  # runs on either backend
}
"""The forecast index beside each backend's store, by the same name."""

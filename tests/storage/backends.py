"""Every storage backend, by name, as a function that opens a fresh store in a folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from coopfed.node.storage import SqliteStore, Store
from coopfed.node.storage.ballots import BallotStore
from coopfed.node.storage.ballots_sqlite import SqlBallotStore
from coopfed.node.storage.federation import FederationStore
from coopfed.node.storage.federation_sqlite import SqlFederationStore
from coopfed.node.storage.forecast import ForecastIndex
from coopfed.node.storage.forecast_sqlite import SqlForecastIndex
from coopfed.node.storage.ledger import LedgerStore
from coopfed.node.storage.ledger_sqlite import PostgresLedgerStore, SqliteLedgerStore
from coopfed.node.storage.postgres import PostgresStore

from ..pgserver import fresh_database


def _postgresql(folder: Path) -> PostgresStore:
    """A new database on the session's server; the same one again when the folder is reopened."""
    named = folder / "postgresql-url"
    if not named.exists():
        named.write_text(fresh_database())
    return PostgresStore(named.read_text())


BACKENDS: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda folder: SqliteStore(folder / "node.db"),
    "postgresql": _postgresql,
}

LEDGER_BACKENDS: dict[str, Callable[[Store], LedgerStore]] = {
    "sqlite": lambda store: SqliteLedgerStore(store),  # type: ignore[arg-type]
    "postgresql": lambda store: PostgresLedgerStore(store),  # type: ignore[arg-type]
}
"""The ledger beside each backend's store, by the same name."""

BALLOT_BACKENDS: dict[str, Callable[[Store], BallotStore]] = {
    "sqlite": lambda store: SqlBallotStore(store),  # type: ignore[arg-type]
    "postgresql": lambda store: SqlBallotStore(store),  # type: ignore[arg-type]
}
"""The ballot store beside each backend's store, by the same name."""

FEDERATION_BACKENDS: dict[str, Callable[[Store], FederationStore]] = {
    "sqlite": lambda store: SqlFederationStore(store),  # type: ignore[arg-type]
    "postgresql": lambda store: SqlFederationStore(store),  # type: ignore[arg-type]
}
"""The federation store beside each backend's store, by the same name."""

FORECAST_BACKENDS: dict[str, Callable[[Store], ForecastIndex]] = {
    "sqlite": lambda store: SqlForecastIndex(store),  # type: ignore[arg-type]
    "postgresql": lambda store: SqlForecastIndex(store),  # type: ignore[arg-type]
}
"""The forecast index beside each backend's store, by the same name."""

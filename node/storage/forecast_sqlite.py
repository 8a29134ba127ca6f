"""The forecast index on either backend, in the node's database beside the member store."""

from __future__ import annotations

import json
import time
from typing import Any

from coopfed.node.storage.base import AlreadyExists
from coopfed.node.storage.forecast import ForecastIndex, ForecastSnapshot, IndexedModel
from coopfed.node.storage.sql import SqlStore

_ADD = "INSERT INTO forecast_models (coop_id, kind, version, file, saved_at) VALUES (?, ?, ?, ?, ?)"
_HELD = "SELECT 1 FROM forecast_models WHERE coop_id = ? AND kind = ? AND version = ?"
_SET_MODE = (
    "INSERT INTO forecast_mode (one, mode) VALUES (1, ?) ON CONFLICT (one) DO UPDATE SET mode = excluded.mode"
)
_SET_LATEST = """INSERT INTO forecast_latest (one, sequence, forecast) VALUES (1, ?, ?)
ON CONFLICT (one) DO UPDATE SET sequence = excluded.sequence, forecast = excluded.forecast"""


class SqlForecastIndex(ForecastIndex):
    """The forecast tables in the node's database, on the member store's connections."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def models(self, coop_id: str, kind: str) -> list[IndexedModel]:
        with self._store._read() as conn:
            rows = conn.execute(
                "SELECT coop_id, kind, version, file FROM forecast_models WHERE coop_id = ? AND kind = ?"
                " ORDER BY version",
                (coop_id, kind),
            ).fetchall()
        return [IndexedModel(*row) for row in rows]

    def max_version(self, coop_id: str) -> int:
        with self._store._read() as conn:
            row = conn.execute("SELECT max(version) FROM forecast_models WHERE coop_id = ?", (coop_id,))
            return int(row.fetchone()[0] or 0)

    def add_model(self, model: IndexedModel, saved_at: int) -> None:
        key = (model.coop_id, model.kind, model.version)
        with self._store._write() as conn:
            if conn.execute(_HELD, key).fetchone():
                raise AlreadyExists(f"{model.kind} model v{model.version} of {model.coop_id} is held already")
            conn.execute(_ADD, (*key, model.file, saved_at))

    def mode(self) -> str | None:
        with self._store._read() as conn:
            row = conn.execute("SELECT mode FROM forecast_mode").fetchone()
        return row[0] if row else None

    def set_mode(self, mode: str) -> None:
        with self._store._write() as conn:
            conn.execute(_SET_MODE, (mode,))

    def latest_sequence(self) -> int:
        with self._store._read() as conn:
            row = conn.execute("SELECT sequence FROM forecast_latest").fetchone()
        return int(row[0]) if row else 0

    def latest(self) -> dict[str, Any] | None:
        with self._store._read() as conn:
            row = conn.execute("SELECT sequence, forecast FROM forecast_latest").fetchone()
        return {**json.loads(row[1]), "sequence": row[0]} if row else None

    def save_latest(self, forecast: dict[str, Any]) -> int:
        with self._store._write() as conn:
            row = conn.execute("SELECT sequence FROM forecast_latest").fetchone()
            sequence = (row[0] if row else 0) + 1
            conn.execute(_SET_LATEST, (sequence, _json({**forecast, "sequence": sequence})))
        return sequence

    def import_snapshot(self, snapshot: ForecastSnapshot) -> bool:
        with self._store._write() as conn:
            tables = ("forecast_models", "forecast_mode", "forecast_latest")
            if any(conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() for t in tables):  # noqa: S608
                return False
            now = int(time.time())
            conn.executemany(_ADD, [(m.coop_id, m.kind, m.version, m.file, now) for m in snapshot.models])
            if snapshot.mode is not None:
                conn.execute(_SET_MODE, (snapshot.mode,))
            if snapshot.latest is not None:
                conn.execute(
                    _SET_LATEST, (int(snapshot.latest.get("sequence", 1)) or 1, _json(snapshot.latest))
                )
        return True


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))

"""The forecast index in the node's database: models found by co-op and kind, the training mode,
the latest forecast seen by another process at once; an earlier release's folder imported once."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from coopfed.node.errors import FailedPrecondition
from coopfed.node.forecast.store import ForecastStore, StoredForecast, WindowRecord, import_folder
from coopfed.node.storage import SqliteStore
from coopfed.node.storage.forecast_sqlite import SqlForecastIndex

T0 = 1704067200


def _forecast(made_at: int = T0) -> StoredForecast:
    periods = tuple(T0 + 1800 * i for i in range(96))
    return StoredForecast(
        "coop-a", made_at, T0, periods, (1.0,) * 96, (0.5,) * 96, 8, 60.0, 1.2,
        (WindowRecord("peak", T0, T0 + 3600, False),), "federated", (),
    )  # fmt: skip


@contextlib.contextmanager
def _opened(folder: Path) -> Iterator[ForecastStore]:
    """The forecast store over its own connections to the database, as each process has."""
    with SqliteStore(folder / "node.db", synchronous="NORMAL") as db:
        yield ForecastStore(folder / "forecast", SqlForecastIndex(db))


def test_models_mode_and_forecasts_are_shared_between_processes(tmp_path: Path) -> None:
    with _opened(tmp_path) as node, _opened(tmp_path) as cli:
        assert (node.latest(), node.mode(), node.next_version("coop-a")) == (None, None, 1)
        saved = cli.save_model("coop-a", "local", 1, b"artifact-1")
        assert saved.path.read_bytes() == b"artifact-1"
        assert node.latest_model("coop-a", "local") == saved
        with pytest.raises(FailedPrecondition, match="exists already"):
            node.save_model("coop-a", "local", 1, b"another")
        assert saved.path.read_bytes() == b"artifact-1"
        cli.set_mode("federated")
        assert node.mode() == "federated"
        first = cli.save_forecast(_forecast())
        assert node.latest() == first
        second = node.save_forecast(_forecast(T0 + 60))
        assert (first.sequence, second.sequence) == (1, 2)
        assert cli.latest() == second
        assert node.next_version("coop-a") == 2


def _legacy_folder(folder: Path) -> StoredForecast:
    for coop, name in (
        ("coop-a", "local-v1.cfmodel"),
        ("coop-a", "pooled-v2.cfmodel"),
        ("coop-b", "local-v7.cfmodel"),
    ):
        (folder / "models" / coop).mkdir(parents=True, exist_ok=True)
        (folder / "models" / coop / name).write_bytes(name.encode())
    (folder / "state.json").write_text(json.dumps({"mode": "pooled"}))
    latest = replace(_forecast(), sequence=4)
    (folder / "latest.json").write_text(json.dumps(latest.to_dict()))
    return latest


def test_an_upgrading_coop_keeps_its_models_mode_and_latest_forecast(tmp_path: Path) -> None:
    latest = _legacy_folder(tmp_path / "forecast")
    with _opened(tmp_path) as store:
        assert import_folder(store.path, store.index) is True
        assert [f.version for f in store.model_files("coop-a", "local")] == [1]
        assert store.latest_model("coop-b", "local").path.read_bytes() == b"local-v7.cfmodel"
        assert store.next_version("coop-a") == 3
        assert store.mode() == "pooled"
        assert store.latest() == latest
        assert store.save_forecast(_forecast(T0 + 60)).sequence == 5  # numbering carries on
        assert not (store.path / "latest.json").exists()
        assert (store.path / "state.json.imported").exists()
        assert import_folder(store.path, store.index) is False


def test_a_corrupt_file_stops_the_import_and_imports_nothing(tmp_path: Path) -> None:
    _legacy_folder(tmp_path / "forecast")
    (tmp_path / "forecast" / "latest.json").write_text('{"coop_id": "coop-a"}')
    with _opened(tmp_path) as store:
        with pytest.raises(FailedPrecondition, match=r"latest\.json"):
            import_folder(store.path, store.index)
        assert store.model_files("coop-a", "local") == []
        assert store.mode() is None
        assert (store.path / "state.json").exists()

"""The contract every forecast index keeps: models by co-op and kind in version order, versions
never reused, one training mode, and a latest forecast whose sequence counts up by one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coopfed.node.storage import AlreadyExists
from coopfed.node.storage.forecast import ForecastIndex, ForecastSnapshot, IndexedModel

from .backends import BACKENDS, FORECAST_BACKENDS


@pytest.fixture(params=sorted(FORECAST_BACKENDS))
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ForecastIndex]:
    with BACKENDS[request.param](tmp_path) as store:
        yield FORECAST_BACKENDS[request.param](store)


def _model(coop: str, kind: str, version: int) -> IndexedModel:
    return IndexedModel(coop, kind, version, f"models/{coop}/{kind}-v{version}.cfmodel")


def test_models_come_by_coop_and_kind_oldest_first(index: ForecastIndex) -> None:
    for model in (_model("coop-a", "local", 3), _model("coop-a", "local", 1), _model("coop-a", "pooled", 2)):
        index.add_model(model, 100)
    index.add_model(_model("coop-b", "local", 7), 100)
    assert index.models("coop-a", "local") == [_model("coop-a", "local", 1), _model("coop-a", "local", 3)]
    assert index.models("coop-a", "pooled") == [_model("coop-a", "pooled", 2)]
    assert index.models("coop-c", "local") == []
    assert (index.max_version("coop-a"), index.max_version("coop-b"), index.max_version("coop-c")) == (
        3,
        7,
        0,
    )


def test_a_model_version_is_indexed_once(index: ForecastIndex) -> None:
    index.add_model(_model("coop-a", "local", 1), 100)
    with pytest.raises(AlreadyExists):
        index.add_model(_model("coop-a", "local", 1), 200)
    assert len(index.models("coop-a", "local")) == 1


def test_the_training_mode_is_one_value_replaced(index: ForecastIndex) -> None:
    assert index.mode() is None
    index.set_mode("federated")
    index.set_mode("pooled")
    assert index.mode() == "pooled"


def test_the_latest_forecast_replaces_the_previous_and_counts_up(index: ForecastIndex) -> None:
    assert (index.latest_sequence(), index.latest()) == (0, None)
    assert index.save_latest({"made_at": 1, "windows": [], "sequence": 0}) == 1
    assert index.save_latest({"made_at": 2, "windows": [{"kind": "peak"}], "sequence": 0}) == 2
    assert index.latest_sequence() == 2
    assert index.latest() == {"made_at": 2, "windows": [{"kind": "peak"}], "sequence": 2}


def test_a_snapshot_is_imported_into_an_empty_index_only(index: ForecastIndex) -> None:
    snapshot = ForecastSnapshot((_model("coop-a", "local", 1),), "federated", {"made_at": 5, "sequence": 9})
    assert index.import_snapshot(snapshot) is True
    assert index.models("coop-a", "local") == [_model("coop-a", "local", 1)]
    assert (index.mode(), index.latest_sequence(), index.latest()) == (
        "federated",
        9,
        {"made_at": 5, "sequence": 9},
    )
    assert index.save_latest({"made_at": 6}) == 10  # numbering carries on from the imported forecast
    assert index.import_snapshot(ForecastSnapshot(mode="pooled")) is False
    assert index.mode() == "federated"

"""Training: pooled and federated models from real XGBoost runs, ensembles, devices, predictions."""

from __future__ import annotations

import arrow
import numpy as np
import pytest
import xgboost as xgb
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coopfed.forecaster import (
    FEATURES,
    HORIZON,
    CoopData,
    Forecaster,
    ModelArtifact,
    TrainingSpec,
    backtest,
    build_features,
    fit,
    predict,
    resolve_device,
    train_local,
    train_pooled,
)
from coopfed.forecaster.features import TECHNOLOGIES
from coopfed.forecaster.timegrid import HALF_HOUR
from coopfed.forecaster.train import cuda_available, technology_weights, training_rows

from .fctools import ONE_THREAD

ROUNDS = 120
TEST_START = arrow.get("2024-12-02T00:00:00", tzinfo="Europe/London").int_timestamp
EARLY = arrow.get("2024-11-01T00:00:00", tzinfo="Europe/London").int_timestamp


@pytest.fixture(scope="module")
def trusted(keys: dict[str, Ed25519PrivateKey]) -> dict:
    return {cid: k.public_key() for cid, k in keys.items()}


@pytest.fixture(scope="module")
def local_models(coops: list[CoopData], keys: dict[str, Ed25519PrivateKey]) -> list[ModelArtifact]:
    """Local models; the first co-op trained a month earlier, so it holds fewer rows."""
    untils = [EARLY, TEST_START, TEST_START]
    return [
        train_local(c, keys[c.coop_id], until=u, rounds=ROUNDS, version=2, params=ONE_THREAD)
        for c, u in zip(coops, untils, strict=True)
    ]


def test_local_artifacts_describe_their_training(
    local_models: list[ModelArtifact], coops: list[CoopData]
) -> None:
    for art, coop in zip(local_models, coops, strict=True):
        meta = art.metadata
        assert (meta.coop_id, meta.kind, meta.contributors, meta.version) == (
            coop.coop_id,
            "local",
            (coop.coop_id,),
            2,
        )
        assert meta.feature_names == FEATURES
        assert meta.xgboost_version == xgb.__version__
        assert meta.params["tree_method"] == "hist"
        assert meta.params["device"] == "cpu"
        assert meta.params["seed"] == 0
    rows = [a.metadata.training_rows for a in local_models]
    assert rows[0] < rows[1]
    assert rows[1] == len(TrainingSpec.from_rows(training_rows(coops[1], TEST_START)).X)


def test_ensemble_is_weighted_by_training_rows(
    local_models: list[ModelArtifact], coops: list[CoopData], trusted: dict
) -> None:
    ensemble = Forecaster.from_artifacts(local_models, trusted)
    rows = np.array([a.metadata.training_rows for a in local_models], dtype=float)
    np.testing.assert_allclose(ensemble.weights, rows / rows.sum())
    assert ensemble.weights[0] < ensemble.weights[1]
    X = build_features(coops[2], np.array([TEST_START + 12 * 3600])).X
    singles = [Forecaster.from_artifacts([a], trusted).predict_scaled(X) for a in local_models]
    got = ensemble.predict_scaled(X)
    want = sum(w * p for w, p in zip(rows / rows.sum(), singles, strict=True))
    np.testing.assert_allclose(got[:, 0], want[:, 0], rtol=1e-5)  # demand: by training rows
    mixes = np.array([[a.metadata.technology[t] for t in TECHNOLOGIES] for a in local_models])
    own = np.array([coops[2].technology_mix()[t] for t in TECHNOLOGIES])
    by_mix = technology_weights(rows / rows.sum(), mixes, own)  # generation: by technology mix
    assert by_mix[1] == 0  # fellside's turbine is not in market-town's mix
    want = sum(w * p[:, 1] for w, p in zip(by_mix, singles, strict=True))
    np.testing.assert_allclose(got[:, 1], want, rtol=1e-5)
    assert not np.allclose(singles[0], singles[1])  # the weighting is visible


def test_pooled_model_and_48h_prediction(coops: list[CoopData], keys: dict, trusted: dict) -> None:
    art = train_pooled(
        coops, keys["fellside"], trainer_id="fellside", until=TEST_START, rounds=ROUNDS, params=ONE_THREAD
    )
    assert art.metadata.kind == "pooled"
    assert art.metadata.contributors == tuple(c.coop_id for c in coops)
    total = sum(len(TrainingSpec.from_rows(training_rows(c, TEST_START)).X) for c in coops)
    assert art.metadata.training_rows == total
    forecaster = Forecaster.from_artifacts([ModelArtifact.from_bytes(art.to_bytes())], trusted)
    origin = TEST_START + 12 * 3600
    fc = predict(forecaster, coops[0], origin)
    np.testing.assert_array_equal(fc.index, origin + np.arange(HORIZON) * HALF_HOUR)
    assert (fc[["demand_kwh", "generation_kwh"]] >= 0).all().all()
    np.testing.assert_allclose(fc["demand_kwh"], fc["demand_pm"] * fc["members"])
    actual = coops[0].aggregates["demand"].reindex(fc.index)
    assert abs(fc["demand_kwh"].sum() / actual.sum() - 1) < 0.15
    with pytest.raises(ValueError, match="four days"):
        predict(forecaster, coops[0], int(coops[0].aggregates.index[0]) + 2 * 86400)


def test_backtest_accuracy_ordering(coops: list[CoopData], keys: dict) -> None:
    """A small but real run: learned models beat the baselines; the federation tracks pooled."""
    report = backtest(coops, keys, test_start=TEST_START, rounds=ROUNDS, params=ONE_THREAD)
    naive = report.score("seasonal-naive-week", "demand")
    mean7 = report.score("7-day-mean", "demand")
    pooled, fed, local = (report.score(m, "demand") for m in ("pooled", "federated", "local"))
    assert pooled["mae"] < 0.85 * naive["mae"]
    assert fed["mae"] < 0.85 * naive["mae"]
    assert local["mae"] < naive["mae"]
    assert pooled["mae"] < mean7["mae"]
    assert pooled["vs_mean7"] == pytest.approx(pooled["mae"] / mean7["mae"])
    assert fed["mae"] < 1.15 * pooled["mae"]
    assert (
        report.score("pooled", "generation")["mae"] < report.score("seasonal-naive-week", "generation")["mae"]
    )
    doc = report.to_dict()
    assert doc["origins"] == report.predictions["origin"].nunique() > 20
    assert {s["model"] for s in doc["scores"]} == {
        "seasonal-naive-day", "seasonal-naive-week", "7-day-mean", "local", "pooled", "federated"
    }  # fmt: skip
    assert set(doc["weather"].values()) == {"forecasts issued by each origin"}
    table = report.to_table()
    assert "federated" in table
    assert "vs 7d" in table
    assert "weather, riverside: forecasts issued by each origin" in table
    assert set(report.predictions["day"]) <= {0, 1, 2}
    assert report.predictions["period"].max() < int(coops[0].aggregates.index[-1]) + HALF_HOUR


def test_device_selection() -> None:
    assert resolve_device() == "cpu"
    assert resolve_device("cuda") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"
    assert resolve_device(allow_gpu=True) == ("cuda" if cuda_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


def test_fit_reports_progress_and_hands_off_to_a_trainer(coops: list[CoopData]) -> None:
    spec = TrainingSpec.from_rows(build_features(coops[0], np.array([TEST_START + 12 * 3600])))
    seen: list[tuple] = []
    blob, params = fit(spec, {"max_depth": 3, **ONE_THREAD}, rounds=4, progress=lambda *a: seen.append(a))
    assert seen == [("train", i, 4) for i in range(1, 5)]
    assert params["max_depth"] == 3
    assert xgb.Booster(model_file=bytearray(blob)).num_boosted_rounds() == 4
    calls = []

    def cluster_trainer(s: TrainingSpec, p: dict, rounds: int, callbacks: list) -> bytes:
        calls.append((s.rows, p["tree_method"], p["device"], rounds))
        return b"booster"

    assert fit(spec, rounds=7, trainer=cluster_trainer)[0] == b"booster"
    assert calls == [(spec.rows, "hist", "cpu", 7)]

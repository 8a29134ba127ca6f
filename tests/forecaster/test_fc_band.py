"""The forecast's band (P10/P50/P90), how sure windows are, and generation per kW installed."""

from __future__ import annotations

import dataclasses

import arrow
import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coopfed.forecaster import BacktestReport, CoopData, Window, backtest, build_features, nudges, windows
from coopfed.forecaster.nudging import QUANTILES, band_column, exceedance, sureness, surplus_chance
from coopfed.forecaster.simulate import installed_capacity
from coopfed.forecaster.timegrid import HALF_HOUR
from coopfed.forecaster.train import band_widening, technology_weights, widen

from .fctools import ONE_THREAD

TEST_START = arrow.get("2024-12-02T00:00:00", tzinfo="Europe/London").int_timestamp
PARIS = "Europe/Paris"


@pytest.fixture(scope="module")
def report(coops: list[CoopData], keys: dict[str, Ed25519PrivateKey]) -> BacktestReport:
    return backtest(coops, keys, test_start=TEST_START, rounds=90, params=ONE_THREAD)


def test_quantiles_never_cross_and_hold_about_eight_in_ten(report: BacktestReport) -> None:
    p = report.predictions
    for model in ("local", "pooled", "federated"):
        for target in ("demand", "generation"):
            q = p[[f"{model}_{target}_p{round(a * 100)}" for a in QUANTILES]].to_numpy()
            assert (np.diff(q, axis=1) >= 0).all(), (model, target)
            assert (q >= 0).all()
    for model in ("pooled", "federated"):
        for target in ("demand", "generation"):
            band = report.band(model, target)
            assert 0.7 <= band["coverage"] <= 0.9, (model, target, band)
            assert 0 < band["pinball"] < report.score(model, target)["mae"]  # pinball halves MAE at P50
    assert "P10-P90 band" in report.to_table()


def test_band_widening_is_split_conformal() -> None:
    rng = np.random.default_rng(0)
    actual = rng.normal(size=4000)
    narrow = np.tile([-0.5, 0.0, 0.5], (4000, 1))  # holds 38 %: must widen
    c = band_widening(narrow, actual)
    wide = widen(narrow.copy(), c)
    assert np.mean((actual >= wide[:, 0]) & (actual <= wide[:, -1])) == pytest.approx(0.8, abs=0.01)
    loose = np.tile([-3.0, 0.0, 3.0], (4000, 1))  # holds 99.7 %: narrows, the order kept
    c = band_widening(loose, actual)
    assert c < 0
    assert (np.diff(widen(loose.copy(), c), axis=1) >= 0).all()
    night = np.zeros((4000, 3))
    assert band_widening(night, np.zeros(4000)) == 0.0  # no width, nothing to calibrate


def test_chances_from_quantiles() -> None:
    q = np.array([[1.0, 2.0, 3.0]])
    assert exceedance(q, 2.0)[0] == pytest.approx(0.5)
    assert exceedance(q, 1.0)[0] == pytest.approx(0.9)
    assert exceedance(q, 3.0)[0] == pytest.approx(0.1)
    assert exceedance(q, 10.0)[0] == 0.0
    assert exceedance(q, -10.0)[0] == 1.0
    assert surplus_chance(q, q)[0] == pytest.approx(0.5, abs=0.02)
    assert surplus_chance(q, q + 5)[0] == 1.0
    assert surplus_chance(q + 5, q)[0] == 0.0


def _frame(start: int, demand: list[float], spread: float) -> pd.DataFrame:
    d = np.asarray(demand, dtype=float)
    frame = pd.DataFrame(
        {"demand_kwh": d, "generation_kwh": np.zeros(len(d))},
        index=pd.Index(start + np.arange(len(d)) * HALF_HOUR, name="period"),
    )
    for level, k in zip(QUANTILES, (-1, 0, 1), strict=True):
        frame[band_column("demand", level)] = d + k * spread
        frame[band_column("generation", level)] = 0.0
    return frame


def test_windows_carry_a_confidence_and_nudges_say_it_in_words() -> None:
    start = arrow.get("2024-12-20T16:00:00", tzinfo=PARIS).int_timestamp
    demand = [1, 1, 1, 9, 9, 9, 9, 1, 1, 1]
    sure = windows(_frame(start, demand, 0.5), peak_percentile=50, reference=np.array([1.0, 2.0, 3.0]))
    unsure = windows(_frame(start, demand, 20.0), peak_percentile=50, reference=np.array([1.0, 2.0, 3.0]))
    assert [w.kind for w in sure] == ["peak"]
    assert sure[0].confidence == 1.0
    assert unsure[0].confidence is not None
    assert 0.5 <= unsure[0].confidence < 0.75
    now = arrow.get("2024-12-20T12:00:00", tzinfo=PARIS).int_timestamp
    texts = [n.text for n in nudges([*sure, *unsure], now=now, tz=PARIS)]
    assert texts[0].startswith("Very likely busy today 17:30-19:30: ")
    assert texts[1].startswith("Likely busy today 17:30-19:30: ")
    maybe = Window("surplus", sure[0].start, sure[0].end, True, 0.3)
    (n,) = nudges([maybe], now=now, tz=PARIS)
    assert n.text.startswith("Possibly sunny today 17:30-19:30: ")
    (n,) = nudges([dataclasses.replace(maybe, confidence=None)], now=now, tz=PARIS)
    assert n.text.startswith("Sunny today")  # no band: no word for how sure
    assert [sureness(c) for c in (0.75, 0.74, 0.5, 0.49)] == ["very likely", "likely", "likely", "possibly"]


def test_generation_is_normalised_by_the_installed_kw(federation: dict, coops: list[CoopData]) -> None:
    sim, coop = next(iter(federation.values())), coops[0]
    kw = installed_capacity(sim.readings.members)
    assert kw["pv"] == pytest.approx(sim.readings.members["kwp"].sum())
    assert kw["wind"] == 0
    origin = np.array([TEST_START + 12 * 3600])
    rows = build_features(coop, origin)
    members = rows.members[0]
    np.testing.assert_allclose(rows.scale[:, 1], kw["pv"] * 0.5 / members)  # kWh per member at full output
    assert 0 <= np.nanmax(rows.y[:, 1]) <= 1  # a capacity factor
    assert (rows.X["pv_share"] == 1).all()
    assert (rows.X["wind_share"] == 0).all()
    unknown = build_features(dataclasses.replace(coop, capacity=None), origin)
    assert unknown.X["pv_share"].isna().all()
    assert not np.allclose(unknown.scale[:, 1], rows.scale[:, 1])  # the 28-day peak instead
    with pytest.raises(ValueError, match="capacity"):
        dataclasses.replace(coop, capacity={"hydro": 5.0})


def test_generation_weights_follow_the_technology_mix() -> None:
    base = np.array([0.3, 0.3, 0.4])
    mixes = np.array([[1.0, 0.0], [1.0, 0.0], [0.5, 0.5]])  # two PV co-ops, one half wind
    np.testing.assert_allclose(technology_weights(base, mixes, np.array([0.5, 0.5])), [0, 0, 1], atol=1e-9)
    pv = technology_weights(base, mixes, np.array([1.0, 0.0]))
    np.testing.assert_allclose(pv, [0.5, 0.5, 0.0], atol=1e-9)
    same = np.array([[1.0, 0.0]] * 3)
    np.testing.assert_allclose(technology_weights(base, same, np.array([1.0, 0.0])), base)
    unknown = np.array([[1.0, 0.0], [np.nan, np.nan], [0.5, 0.5]])
    np.testing.assert_allclose(technology_weights(base, unknown, np.array([0.5, 0.5])), base)

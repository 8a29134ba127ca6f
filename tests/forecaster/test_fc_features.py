"""Features: what a forecast made at an origin may read, and nothing after it."""

from __future__ import annotations

import dataclasses

import arrow
import numpy as np
import pandas as pd
import pytest

from coopfed.forecaster import FEATURES, HORIZON, CoopData, build_features
from coopfed.forecaster.timegrid import HALF_HOUR

NOON = arrow.get("2024-12-10T12:00:00", tzinfo="Europe/London").int_timestamp


def _scramble_after(coop: CoopData, origin: int, seed: int) -> CoopData:
    """The same co-op with every value measured or issued after `origin` replaced by noise."""
    rng = np.random.default_rng(seed)
    agg = coop.aggregates.astype(float)
    late = agg.index + HALF_HOUR > origin
    for col in agg.columns:
        agg.loc[late, col] = rng.uniform(1, 1000, late.sum())
    weather = coop.weather.copy()
    wlate = weather.index + HALF_HOUR > origin
    weather.loc[wlate] = rng.uniform(-20, 40, (wlate.sum(), weather.shape[1]))
    fc = coop.weather_forecast.copy()
    flate = fc["issued"] > origin
    fc.loc[flate, ["temp_c", "ghi", "wind_ms"]] = rng.uniform(0, 500, (flate.sum(), 3))
    return dataclasses.replace(coop, aggregates=agg, weather=weather, weather_forecast=fc)


@pytest.mark.parametrize("offset_h", [0, 3.5, 11])
def test_no_leakage_a_forecast_reads_nothing_after_its_origin(coops: list[CoopData], offset_h: float) -> None:
    origin = NOON + int(offset_h * 3600)
    for coop in coops:
        full = build_features(coop, np.array([origin]))
        truncated = build_features(coop.known_at(origin), np.array([origin]))
        scrambled = build_features(_scramble_after(coop, origin, 1), np.array([origin]))
        pd.testing.assert_frame_equal(full.X, truncated.X)
        pd.testing.assert_frame_equal(full.X, scrambled.X)
        np.testing.assert_array_equal(full.scale, scrambled.scale)
        assert not np.isnan(full.y).any()  # the targets themselves are after the origin ...
        assert np.isnan(truncated.y).all()  # ... and unknown to a node at the origin


def test_leakage_check_can_fail(coops: list[CoopData]) -> None:
    """Scrambling data one period *before* the origin must change the features."""
    coop = coops[0]
    full = build_features(coop, np.array([NOON]))
    moved = build_features(_scramble_after(coop, NOON - HALF_HOUR, 2), np.array([NOON]))
    assert not full.X.equals(moved.X)


def test_rows_cover_the_next_48_hours_with_scaled_targets(coops: list[CoopData]) -> None:
    coop = coops[2]
    origins = np.array([NOON, NOON + 86400])
    rows = build_features(coop, origins)
    assert list(rows.X.columns) == list(FEATURES)
    assert len(rows) == 2 * HORIZON
    np.testing.assert_array_equal(rows.period[:HORIZON], NOON + np.arange(HORIZON) * HALF_HOUR)
    agg = coop.aggregates
    per_member = (agg["demand"] / agg["members"]).reindex(rows.period).to_numpy()
    np.testing.assert_allclose(rows.actual[:, 0], per_member, rtol=1e-9)
    lag7 = (agg["demand"] / agg["members"]).reindex(rows.period - 7 * 86400).to_numpy()
    np.testing.assert_allclose(rows.X["d_lag7"] * rows.scale[:, 0], lag7, rtol=1e-5)


def test_calendar_and_weather_forecast_features(coops: list[CoopData]) -> None:
    christmas = arrow.get("2024-12-24T12:00:00", tzinfo="Europe/London").int_timestamp
    rows = build_features(coops[0], np.array([christmas]))
    day = pd.Series(rows.X["holiday"].to_numpy(), index=rows.period)
    assert day.iloc[0] == 0  # Christmas Eve afternoon
    assert day.iloc[24:72].eq(1).all()  # Christmas Day, local 00:00-24:00
    assert rows.X["day_type"].iloc[24:72].eq(2).all()
    assert rows.X["tod"].iloc[0] == 24  # 12:00 local
    assert rows.X["fc_lead"].iloc[0] == pytest.approx(0.0)
    assert rows.X["temp_fc"].notna().all()
    night = rows.X["clearsky"].to_numpy() == 0
    assert night.any()
    assert (~night).any()


def test_bad_inputs_are_rejected(coops: list[CoopData]) -> None:
    coop = coops[0]
    with pytest.raises(ValueError, match="multiples of 1800"):
        build_features(coop, np.array([NOON + 60]))
    with pytest.raises(ValueError, match="after the first aggregate"):
        build_features(coop, np.array([int(coop.aggregates.index[0])]))
    with pytest.raises(ValueError, match="multiples of 1800"):
        CoopData("x", coop.aggregates.set_axis(coop.aggregates.index + 5), coop.site)
    with pytest.raises(ValueError, match="at least one member"):
        CoopData("x", coop.aggregates.assign(members=0), coop.site)
    with pytest.raises(ValueError, match="lack columns"):
        CoopData("x", coop.aggregates.drop(columns="members"), coop.site)

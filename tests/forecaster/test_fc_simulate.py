"""Simulator: reproducible, physically plausible, consistent with the BDEW profiles it builds on."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from demandlib import bdew

from coopfed.forecaster import CoopSpec, SimulatedCoop, aggregate_readings, england, simulate_coop
from coopfed.forecaster.physics import quiet_pandas_deprecations
from coopfed.forecaster.timegrid import HALF_HOUR, local_times, period_grid
from coopfed.forecaster.weather import read_try

UK = "Europe/London"
NORWICH = england("Norwich", 52.63, 1.30, 30)


@pytest.fixture(scope="module")
def year() -> SimulatedCoop:
    spec = CoopSpec("year", 60, NORWICH, pv_share=0.5, battery_share=0.3, heat_pump_share=0.0, seed=5)
    return simulate_coop(spec, dt.date(2024, 1, 1), dt.date(2025, 1, 1))


def _short(seed: int) -> SimulatedCoop:
    spec = CoopSpec("s", 12, NORWICH, 0.5, 0.5, 0.3, turbines=1, seed=seed)
    return simulate_coop(spec, dt.date(2024, 6, 1), dt.date(2024, 6, 8))


def test_same_seed_same_readings_other_seed_differs() -> None:
    a, b, c = _short(1), _short(1), _short(2)
    for name in ("demand", "generation", "export"):
        np.testing.assert_array_equal(getattr(a.readings, name), getattr(b.readings, name))
        assert not np.array_equal(getattr(a.readings, name), getattr(c.readings, name))
    pd.testing.assert_frame_equal(a.weather_forecast, b.weather_forecast)


def test_periods_are_utc_half_hours_with_local_clock_changes() -> None:
    assert len(period_grid(dt.date(2024, 3, 31), dt.date(2024, 4, 1), UK)) == 46
    assert len(period_grid(dt.date(2024, 10, 27), dt.date(2024, 10, 28), UK)) == 50
    p = period_grid(dt.date(2024, 1, 1), dt.date(2024, 1, 2), UK)
    assert p[0] == 1704067200
    assert np.all(np.diff(p) == HALF_HOUR)
    assert np.all(p % HALF_HOUR == 0)


def test_pv_is_zero_at_night_and_summer_beats_winter(year: SimulatedCoop) -> None:
    r, w = year.readings, year.weather
    homes = (r.members["kind"] != "H25").to_numpy()
    gen = r.generation[:, homes].sum(axis=1)
    assert np.all(gen[w["clearsky"].to_numpy() == 0] == 0)
    assert gen.max() > 0
    month = local_times(r.periods, UK).month
    summer, winter = gen[month.isin([6, 7])].sum(), gen[month.isin([12, 1])].sum()
    assert summer > 3 * winter
    per_kwp = r.generation.sum(axis=0)[homes] / r.members["kwp"].to_numpy()[homes]
    assert 600 < per_kwp.mean() < 1100  # kWh per kWp per year, UK rooftops


def test_household_annual_demand_is_realistic(year: SimulatedCoop) -> None:
    r = year.readings
    h25 = (r.members["kind"] == "H25").to_numpy()
    annual = r.demand.sum(axis=0, dtype=float)[h25]
    assert 2000 < annual.mean() < 4500
    assert np.all((annual > 800) & (annual < 9000))


def test_pv_homes_grid_import_has_the_shape_of_bdew_p25(year: SimulatedCoop) -> None:
    """H25 consumption minus pvlib self-consumption should look like the measured P25 import."""
    r = year.readings
    pv = (r.members["kind"] == "P25").to_numpy()
    imp = r.demand[:, pv] - np.minimum(r.demand[:, pv], r.generation[:, pv])
    local = local_times(r.periods, UK)
    june = (local.month == 6) & (local.day_of_week < 5)
    sim = pd.Series(imp[june].mean(axis=1), index=local[june].hour).groupby(level=0).mean()
    idx = pd.date_range("2024-06-01", "2024-06-30 23:45", freq="15min")
    with quiet_pandas_deprecations():
        ref, h25 = bdew.P25(idx), bdew.H25(idx)
    ref = ref[idx.day_of_week < 5].groupby(ref[idx.day_of_week < 5].index.hour).mean()
    h25 = h25[idx.day_of_week < 5].groupby(h25[idx.day_of_week < 5].index.hour).mean()
    assert np.corrcoef(sim, ref)[0, 1] > 0.85
    assert np.corrcoef(sim, ref)[0, 1] > np.corrcoef(sim, h25)[0, 1] + 0.3


def test_energy_balance(year: SimulatedCoop) -> None:
    r = year.readings
    assert np.all(r.demand >= 0)
    assert np.all(r.export >= 0)
    assert np.all(r.export <= r.generation + 1e-6)
    p25 = (r.members["kind"] == "P25").to_numpy()
    s25 = (r.members["kind"] == "S25").to_numpy()
    spill = r.generation - np.minimum(r.generation, r.demand)
    np.testing.assert_allclose(r.export[:, p25], spill[:, p25], atol=1e-6)
    assert r.export[:, s25].sum() < 0.9 * spill[:, s25].sum()  # batteries soak up surplus


def test_heat_pumps_raise_winter_demand(federation: dict[str, SimulatedCoop]) -> None:
    r = federation["market-town"].readings
    december = local_times(r.periods, UK).month == 12
    hp = r.members["heat_pump"].to_numpy(dtype=bool)
    homes = (r.members["kind"] != "turbine").to_numpy()
    per_home = r.demand[december].sum(axis=0)
    assert per_home[hp].mean() > 1.5 * per_home[homes & ~hp].mean()


def test_turbine_member_exports_all_it_generates() -> None:
    r = _short(1).readings
    t = (r.members["member_id"] == "s-wind-0").to_numpy()
    assert r.generation[:, t].sum() > 0
    assert np.all(r.demand[:, t] == 0)
    np.testing.assert_array_equal(r.export[:, t], r.generation[:, t])


def test_aggregate_equals_aggregate_of_long_readings(federation: dict[str, SimulatedCoop]) -> None:
    r = federation["fellside"].readings
    start, end = int(r.periods[100]), int(r.periods[196])
    long = r.to_frame(start, end)
    assert set(long.columns) == {"member_id", "dataset", "period", "kwh"}
    got = aggregate_readings(long)
    want = r.aggregate().loc[start : end - HALF_HOUR]
    pd.testing.assert_frame_equal(got, want, check_dtype=False, atol=1e-4, rtol=1e-6)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("period", 1704067201, "multiples of 1800"),
        ("period", 1704067200.5, "multiples of 1800"),
        ("dataset", "heat", "unknown datasets"),
        ("kwh", -0.1, "non-negative"),
        ("kwh", float("nan"), "finite"),
    ],
)
def test_aggregate_rejects_bad_readings(column: str, value: object, message: str) -> None:
    good = pd.DataFrame({"member_id": ["a", "b"], "dataset": "demand", "period": 1704067200, "kwh": 0.2})
    aggregate_readings(good)
    bad = good.copy()
    bad[column] = bad[column].astype(object)
    bad.loc[1, column] = value
    with pytest.raises(ValueError, match=message):
        aggregate_readings(bad)
    with pytest.raises(ValueError, match="lack columns"):
        aggregate_readings(good.drop(columns="kwh"))


def test_try_weather_is_read_from_demandlib_files(year: SimulatedCoop) -> None:
    tr = read_try(1)
    assert tr.station == "Bremerhaven"
    assert len(tr.hourly) == 8760
    assert abs(tr.latitude - 53.53) < 0.01
    assert abs(tr.longitude - 8.58) < 0.01
    with pytest.raises(ValueError, match="1-15"):
        read_try(16)
    w = year.weather
    assert np.all(w.loc[w["clearsky"] == 0, "ghi"] == 0)
    annual_ghi = w["ghi"].sum() * 0.5 / 1000  # kWh/m2
    assert 850 < annual_ghi < 1250
    assert w["temp_c"].min() > -15
    assert w["temp_c"].max() < 38

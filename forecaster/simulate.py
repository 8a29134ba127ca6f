"""Seeded simulation of co-op members' half-hourly meter readings from standard and physical models.

Every home consumes along the BDEW H25 household profile (demandlib) at its own annual level with
day-to-day and half-hourly noise; some homes add an air-source heat pump (BDEW heat profile, COP
from temperature); PV homes (the P25 group) get pvlib output from site weather; some of those
(the S25 group) run a battery; a co-op may own small wind turbines. See forecaster/README.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
from demandlib import bdew
from numpy.typing import NDArray
from scipy.signal import lfilter

from .features import CoopData
from .physics import (
    PowerCurve,
    battery_dispatch,
    heat_profile,
    heat_pump_cop,
    pv_kwh_per_kwp,
    quiet_pandas_deprecations,
)
from .timegrid import HALF_HOUR, Site, holiday_dates, local_times, noon_origins, period_grid
from .weather import simulate_weather, simulate_weather_forecast

DATASETS = ("demand", "generation", "export")  # the member datasets of coopfed.node.model
_ORIENTATIONS = [(t, a) for t in (30.0, 40.0) for a in (90.0, 135.0, 180.0, 225.0, 270.0)]
_ORIENTATION_P = np.array([0.05, 0.1, 0.2, 0.1, 0.05] * 2)
_BATTERY_KWH = np.array([5.0, 6.5, 9.5, 13.5])


@dataclass(frozen=True)
class CoopSpec:
    """One simulated co-op: size, technology shares, site, weather region and seed."""

    coop_id: str
    households: int
    site: Site
    pv_share: float = 0.3  # homes with rooftop PV (P25 group, or S25 with a battery)
    battery_share: float = 0.3  # share of PV homes that also have a battery (S25 group)
    heat_pump_share: float = 0.15  # homes heating with an air-source heat pump
    turbines: int = 0
    turbine: PowerCurve = field(default_factory=PowerCurve)
    try_region: int = 1  # DWD TRY climate region whose weather is resampled
    seed: int = 0
    median_kwh: float = 2700.0  # median annual household consumption (kWh, without heat pump)
    median_heat_kwh: float = 9000.0  # median annual heat demand of a heat-pump home (kWh)
    median_kwp: float = 3.5


@dataclass
class MemberReadings:
    """Half-hourly kWh per member: arrays shaped (periods, members)."""

    coop_id: str
    periods: NDArray[np.int64]
    members: pd.DataFrame
    demand: NDArray[np.float32]
    generation: NDArray[np.float32]
    export: NDArray[np.float32]

    def to_frame(self, start: int | None = None, end: int | None = None) -> pd.DataFrame:
        """Long readings (member_id, dataset, period, kwh) for periods in [start, end)."""
        lo = 0 if start is None else int(np.searchsorted(self.periods, start))
        hi = len(self.periods) if end is None else int(np.searchsorted(self.periods, end))
        ids = self.members["member_id"].to_numpy()
        parts = []
        for name in DATASETS:
            block = getattr(self, name)[lo:hi]
            parts.append(
                pd.DataFrame(
                    {
                        "member_id": np.tile(ids, hi - lo),
                        "dataset": name,
                        "period": np.repeat(self.periods[lo:hi], len(ids)),
                        "kwh": block.ravel().astype(float),
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)

    def aggregate(self) -> pd.DataFrame:
        """Co-op totals per period; equal to `aggregate_readings(self.to_frame())`."""
        frame = pd.DataFrame(
            {name: getattr(self, name).sum(axis=1, dtype=float) for name in DATASETS},
            index=pd.Index(self.periods, name="period"),
        )
        frame["members"] = len(self.members)
        return frame


@dataclass
class SimulatedCoop:
    """A simulated co-op: its spec, member readings, observed weather and weather forecasts."""

    spec: CoopSpec
    readings: MemberReadings
    weather: pd.DataFrame
    weather_forecast: pd.DataFrame

    def coop_data(self) -> CoopData:
        return CoopData(
            self.spec.coop_id,
            self.readings.aggregate(),
            site=self.spec.site,
            weather=self.weather[["temp_c", "ghi", "wind_ms"]],
            weather_forecast=self.weather_forecast,
            capacity=installed_capacity(self.readings.members),
        )


def installed_capacity(members: pd.DataFrame) -> dict[str, float]:
    """kW installed by technology, as the simulated members declare it (PV kWp, turbine kW)."""
    kw = members["kwp"].to_numpy(dtype=float)
    wind = (members["kind"] == "turbine").to_numpy()
    return {"pv": float(kw[~wind].sum()), "wind": float(kw[wind].sum())}


def aggregate_readings(readings: pd.DataFrame) -> pd.DataFrame:
    """Co-op totals per period from long member readings (member_id, dataset, period, kwh).

    The result (index `period`; demand, generation, export in kWh; members = distinct members
    reporting in the period) is what the forecaster trains on, for real and simulated co-ops.
    """
    missing = {"member_id", "dataset", "period", "kwh"} - set(readings.columns)
    if missing:
        raise ValueError(f"readings lack columns {sorted(missing)}")
    unknown = set(readings["dataset"].unique()) - set(DATASETS)
    if unknown:
        raise ValueError(f"unknown datasets {sorted(unknown)}")
    raw = readings["period"].to_numpy(dtype=float)
    periods = raw.astype(np.int64)
    if np.any(raw != periods) or np.any(periods % HALF_HOUR):
        raise ValueError("period timestamps must be multiples of 1800 s (UTC period starts)")
    kwh = readings["kwh"].to_numpy(dtype=float)
    if not np.all(np.isfinite(kwh)) or np.any(kwh < 0):
        raise ValueError("kwh must be finite and non-negative")
    clean = readings.assign(period=periods, kwh=kwh)
    totals = clean.pivot_table(index="period", columns="dataset", values="kwh", aggfunc="sum")
    totals = totals.reindex(columns=list(DATASETS)).fillna(0.0)
    totals["members"] = clean.groupby("period")["member_id"].nunique()
    totals.columns.name = None
    return totals


def _bdew_unit(profile: type, local: pd.DatetimeIndex, holidays: list[dt.date]) -> NDArray[np.floating[Any]]:
    """kWh per half-hour per kWh of annual consumption, looked up by local wall-clock time."""
    grid = pd.date_range(local.min().floor("D"), local.max().ceil("D"), freq="30min")
    with quiet_pandas_deprecations():
        series: pd.Series[float] = profile(grid, holidays=holidays)  # kW per GWh/a
    return series.reindex(local.floor("30min")).to_numpy() * (HALF_HOUR / 3600) / 1e6


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> NDArray[np.float64]:
    return median * np.exp(sigma * rng.standard_normal(n))


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float, phi: float) -> NDArray[np.float32]:
    """Mean-one multiplicative noise, AR(1) in time (appliance runs last beyond one period)."""
    white = rng.standard_normal(shape, dtype=np.float32)
    ar: NDArray[np.float32] = lfilter([np.sqrt(1 - phi**2)], [1.0, -phi], white, axis=0).astype(np.float32)
    noise: NDArray[np.float32] = np.exp(sigma * ar - sigma**2 / 2)
    return noise


def _day_factor(
    rng: np.random.Generator, day: NDArray[np.int64], n: int, sigma: float
) -> NDArray[np.float32]:
    n_days = int(day.max()) + 1
    f = np.exp(sigma * rng.standard_normal((n_days, n)) - sigma**2 / 2).astype(np.float32)
    return f[day]


def _households(spec: CoopSpec, rng: np.random.Generator) -> pd.DataFrame:
    n = spec.households
    pv = rng.random(n) < spec.pv_share
    battery = pv & (rng.random(n) < spec.battery_share)
    orient = rng.choice(len(_ORIENTATIONS), size=n, p=_ORIENTATION_P / _ORIENTATION_P.sum())
    heat_pump = rng.random(n) < spec.heat_pump_share
    return pd.DataFrame(
        {
            "member_id": [f"{spec.coop_id}-{i:04d}" for i in range(n)],
            "kind": np.where(battery, "S25", np.where(pv, "P25", "H25")),
            "annual_kwh": np.clip(_lognormal(rng, spec.median_kwh, 0.35, n), 1200, 7000),
            "heat_pump": heat_pump,
            "annual_heat_kwh": np.where(heat_pump, _lognormal(rng, spec.median_heat_kwh, 0.25, n), 0),
            "kwp": np.where(pv, np.clip(_lognormal(rng, spec.median_kwp, 0.3, n), 1.5, 8.0), 0.0),
            "orientation": np.where(pv, orient, -1),
            "battery_kwh": np.where(battery, rng.choice(_BATTERY_KWH, size=n), 0.0),
        }
    )


def _heat_pump_kwh(weather: pd.DataFrame, local: pd.DatetimeIndex) -> NDArray[np.float64]:
    """Electricity (kWh per half-hour) per kWh of annual heat demand."""
    temp = pd.Series(weather["temp_c"].to_numpy(), index=local).groupby(level=0).mean()
    hours = pd.date_range(local.min().floor("D"), local.max().ceil("D"), freq="h")
    # grouping by level 0 keeps the DatetimeIndex, which pandas-stubs widen to Index
    hourly = (
        temp.groupby(cast(pd.DatetimeIndex, temp.index).floor("h"))
        .mean()
        .reindex(hours)
        .interpolate()
        .bfill()
        .ffill()
    )
    heat = heat_profile(hourly).reindex(local.floor("h")).to_numpy() / 2  # hour -> half-hours
    return heat / heat_pump_cop(weather["temp_c"].to_numpy())


def _pv_generation(
    homes: pd.DataFrame, weather: pd.DataFrame, rng: np.random.Generator
) -> NDArray[np.float32]:
    gen = np.zeros((len(weather), len(homes)), dtype=np.float32)
    shading = 1.0 - rng.uniform(0.0, 0.1, len(homes))
    for o in np.unique(homes["orientation"][homes["orientation"] >= 0]):
        tilt, az = _ORIENTATIONS[o]
        unit = pv_kwh_per_kwp(weather, tilt, az)
        cols = np.flatnonzero(homes["orientation"].to_numpy() == o)
        gen[:, cols] = unit[:, None] * (homes["kwp"].to_numpy()[cols] * shading[cols])[None, :]
    return gen


def _consumption(
    homes: pd.DataFrame,
    weather: pd.DataFrame,
    local: pd.DatetimeIndex,
    holidays: list[dt.date],
    rng: np.random.Generator,
) -> NDArray[np.float32]:
    """Each home's consumption (periods x homes, kWh): H25 routine plus any heat pump."""
    unit = _bdew_unit(bdew.H25, local, holidays).astype(np.float32)
    day = (local.normalize() - local.normalize()[0]).days.to_numpy()
    n = len(homes)
    load: NDArray[np.float32] = unit[:, None] * homes["annual_kwh"].to_numpy(dtype=np.float32)[None, :]
    load *= _day_factor(rng, day, n, 0.15) * _noise(rng, load.shape, 0.55, 0.6)
    hp = homes["heat_pump"].to_numpy()
    if hp.any():
        per_kwh = _heat_pump_kwh(weather, local).astype(np.float32)
        q = homes["annual_heat_kwh"].to_numpy(dtype=np.float32)[hp]
        extra = per_kwh[:, None] * q[None, :]
        extra *= _day_factor(rng, day, int(hp.sum()), 0.1) * _noise(rng, extra.shape, 0.3, 0.8)
        load[:, hp] += extra
    return load


def simulate_coop(spec: CoopSpec, start: dt.date, end: dt.date) -> SimulatedCoop:
    """Members' readings from local midnight of `start` to local midnight of `end` (exclusive)."""
    rng = np.random.default_rng(spec.seed)
    site = spec.site
    periods = period_grid(start, end, site.tz)
    local = local_times(periods, site.tz)
    holidays = sorted(holiday_dates(range(start.year - 1, end.year + 2), site.country, site.subdiv))
    weather = simulate_weather(site, periods, spec.try_region, spec.seed + 1)
    homes = _households(spec, rng)
    demand = _consumption(homes, weather, local, holidays, rng)
    gen = _pv_generation(homes, weather, rng)
    own = np.minimum(demand, gen)
    surplus, deficit = gen - own, demand - own
    bat = np.flatnonzero(homes["battery_kwh"].to_numpy() > 0)
    if len(bat):
        cap = homes["battery_kwh"].to_numpy()[bat]
        charge, _ = battery_dispatch(surplus[:, bat], deficit[:, bat], cap, np.minimum(cap / 2, 5.0))
        surplus[:, bat] -= charge.astype(np.float32)
    members, demand, gen, export = _add_turbines(spec, homes, weather, demand, gen, surplus, rng)
    readings = MemberReadings(spec.coop_id, periods, members, demand, gen, export)
    origins = noon_origins(int(periods[0]), int(periods[-1]), site.tz)
    forecast = simulate_weather_forecast(weather, origins, spec.seed + 2)
    return SimulatedCoop(spec, readings, weather, forecast)


def _add_turbines(
    spec: CoopSpec,
    homes: pd.DataFrame,
    weather: pd.DataFrame,
    demand: NDArray[np.float32],
    gen: NDArray[np.float32],
    export: NDArray[np.float32],
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """Append the co-op's turbines as members that generate and export, and consume nothing."""
    if spec.turbines == 0:
        return homes, demand, gen, export
    base = spec.turbine.kwh(weather["wind_ms"].to_numpy())
    wake = _noise(rng, (len(base), spec.turbines), 0.1, 0.9)  # site and wake differences
    tgen = (base[:, None] * wake).astype(np.float32)
    rows = pd.DataFrame(
        {
            "member_id": [f"{spec.coop_id}-wind-{j}" for j in range(spec.turbines)],
            "kind": "turbine",
            "annual_kwh": 0.0,
            "heat_pump": False,
            "annual_heat_kwh": 0.0,
            "kwp": spec.turbine.rated_kw,  # rated kW of the turbine
            "orientation": -1,
            "battery_kwh": 0.0,
        }
    )
    members = pd.concat([homes, rows], ignore_index=True)
    zeros = np.zeros_like(tgen)
    return (
        members,
        np.hstack([demand, zeros]),
        np.hstack([gen, tgen]),
        np.hstack([export, tgen]),
    )


def england(name: str, latitude: float, longitude: float, altitude: float = 0.0) -> Site:
    """A site in England: UK clock, England and Wales bank holidays."""
    return Site(name, latitude, longitude, altitude, tz="Europe/London", country="GB", subdiv="ENG")


def default_federation() -> tuple[CoopSpec, ...]:
    """Three co-ops of different sizes and technology mixes, one with two wind turbines."""
    riverside = CoopSpec(
        "riverside",
        households=60,
        site=england("Bristol", 51.45, -2.59, 20),
        pv_share=0.35,
        battery_share=0.3,
        heat_pump_share=0.15,
        try_region=1,
        seed=101,
    )
    fellside = CoopSpec(
        "fellside",
        households=150,
        site=england("Kendal", 54.33, -2.75, 60),
        pv_share=0.2,
        battery_share=0.2,
        heat_pump_share=0.1,
        turbines=2,
        try_region=1,
        seed=202,
    )
    market_town = CoopSpec(
        "market-town",
        households=300,
        site=england("Norwich", 52.63, 1.30, 30),
        pv_share=0.45,
        battery_share=0.35,
        heat_pump_share=0.25,
        try_region=3,
        seed=303,
    )
    return riverside, fellside, market_town  # fmt: skip


def simulate_federation(
    specs: tuple[CoopSpec, ...],
    start: dt.date,
    end: dt.date,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, SimulatedCoop]:
    """Simulate every co-op in `specs` (each from its own seed)."""
    out = {}
    for i, spec in enumerate(specs):
        out[spec.coop_id] = simulate_coop(spec, start, end)
        if progress:
            progress("simulate", i + 1, len(specs))
    return out

"""Forecast features and targets from a co-op's aggregates, using only what is known at the origin.

Rows are (origin, target period) pairs for the next 48 hours. A reading for the period starting at
p is known from p + 30 min, so features of an origin o read periods p < o only, observed weather
likewise, and weather forecasts issued at or before o. Targets are per-member demand and generation
divided by scales known at the origin, so co-ops of different sizes and technology mixes share
one model: demand by its 7-day mean; generation by the co-op's installed capacity (kW declared by
members, all technologies: the target is then the capacity factor) or, where that is unknown, by
its 28-day peak. The shares of PV and wind in the installed kW are features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .timegrid import (
    HALF_HOUR,
    PERIODS_PER_DAY,
    Site,
    check_periods,
    is_holiday,
    local_times,
    same_local_time,
)
from .weather import sky

HORIZON = 2 * PERIODS_PER_DAY  # 48 hours of half-hour targets
TARGETS = ("demand", "generation")
WEEK = 7 * PERIODS_PER_DAY
_GEN_FLOOR = 1e-3  # kWh per member per half-hour: scale of a co-op with (almost) no generation
TECHNOLOGIES = ("pv", "wind")  # generation technologies members declare (kW installed)
FEATURES = (
    "horizon", "tod", "dow", "day_type", "holiday", "doy", "month", "season",
    "clearsky", "sun_elevation", "sun_azimuth",
    "d_lag7", "d_lag14", "d_last_same", "d_mean7_same", "d_last", "d_mean24",
    "g_lag7", "g_last_same", "g_mean7_same", "g_last", "g_mean24",
    "temp_last", "temp_mean24", "temp_fc", "ghi_fc", "clearness_fc", "wind_fc", "fc_lead",
    "pv_share", "wind_share",
)  # fmt: skip
SHARES = ("pv_share", "wind_share")  # the features holding the technology mix, as TECHNOLOGIES


@dataclass(frozen=True)
class CoopData:
    """What one co-op's node knows: aggregates, its site (clock, holidays, sun), optionally weather.

    aggregates: index `period` (UTC unix seconds, multiples of 1800); columns demand,
    generation, export (kWh totals) and members. weather: index `period`; temp_c, ghi, wind_ms.
    weather_forecast: columns issued, period, temp_c, ghi, wind_ms. `astronomy` off leaves the
    clear-sky and sun-position features empty (only to measure what they add). capacity: kW
    installed by technology (keys of TECHNOLOGIES), as members declared it; None when unknown.
    """

    coop_id: str
    aggregates: pd.DataFrame
    site: Site
    weather: pd.DataFrame | None = None
    weather_forecast: pd.DataFrame | None = None
    astronomy: bool = True
    capacity: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        agg = self.aggregates
        missing = {"demand", "generation", "members"} - set(agg.columns)
        if missing:
            raise ValueError(f"{self.coop_id}: aggregates lack columns {sorted(missing)}")
        if len(agg) == 0:
            raise ValueError(f"{self.coop_id}: no aggregates")
        check_periods(agg.index.to_numpy())
        if not (agg["members"] > 0).all():
            raise ValueError(f"{self.coop_id}: every aggregate period needs at least one member")
        if not agg.index.is_monotonic_increasing or agg.index.has_duplicates:
            raise ValueError(f"{self.coop_id}: aggregate periods must be sorted and unique")
        cap = self.capacity
        if cap is not None and (set(cap) - set(TECHNOLOGIES) or not all(v >= 0 for v in cap.values())):
            raise ValueError(f"{self.coop_id}: capacity must be kW (>= 0) by technology {TECHNOLOGIES}")

    def technology_mix(self) -> dict[str, float]:
        """Shares of the installed kW by technology; {} when unknown or nothing is installed."""
        return mix(self.capacity)

    def known_at(self, origin: int) -> CoopData:
        """The data as it stood at `origin`: nothing measured or issued after it."""
        agg = self.aggregates[self.aggregates.index + HALF_HOUR <= origin]
        weather = None if self.weather is None else self.weather[self.weather.index + HALF_HOUR <= origin]
        fc = self.weather_forecast
        fc = None if fc is None else fc[fc["issued"] <= origin]
        return replace(self, aggregates=agg, weather=weather, weather_forecast=fc)

    def without_weather(self, astronomy: bool = True) -> CoopData:
        """The same co-op with no weather observations or forecasts (and optionally no sun)."""
        return replace(self, weather=None, weather_forecast=None, astronomy=astronomy)


@dataclass
class FeatureRows:
    """Feature matrix with targets, keys and the scales that turn predictions into kWh."""

    coop_id: str
    origin: NDArray[np.int64]  # (n,) UTC unix seconds
    period: NDArray[np.int64]  # (n,) target period starts
    X: pd.DataFrame  # columns FEATURES
    y: NDArray[np.float64]  # (n, 2) scaled targets, NaN where not (yet) measured
    scale: NDArray[np.float64]  # (n, 2) kWh per member per unit of target
    members: NDArray[np.float64]  # (n,) member count known at the origin

    def __len__(self) -> int:
        return len(self.origin)

    @property
    def actual(self) -> NDArray[np.float64]:
        """Measured kWh per member (NaN where unknown)."""
        return self.y * self.scale

    def select(self, mask: NDArray[np.bool_]) -> FeatureRows:
        return FeatureRows(
            self.coop_id, self.origin[mask], self.period[mask], self.X[mask].reset_index(drop=True),
            self.y[mask], self.scale[mask], self.members[mask],
        )  # fmt: skip


def mix(capacity: Mapping[str, float] | None) -> dict[str, float]:
    """kW by technology as shares of the total; {} when unknown or zero."""
    total = sum((capacity or {}).values())
    return {t: (capacity or {}).get(t, 0.0) / total for t in TECHNOLOGIES} if total > 0 else {}


def concat_rows(parts: list[FeatureRows]) -> FeatureRows:
    """Stack rows of several co-ops (pooled training)."""
    return FeatureRows(
        "+".join(p.coop_id for p in parts),
        np.concatenate([p.origin for p in parts]),
        np.concatenate([p.period for p in parts]),
        pd.concat([p.X for p in parts], ignore_index=True),
        np.vstack([p.y for p in parts]),
        np.vstack([p.scale for p in parts]),
        np.concatenate([p.members for p in parts]),
    )


def _take(arr: NDArray[np.floating[Any]], idx: NDArray[np.int64]) -> NDArray[np.float64]:
    ok = (idx >= 0) & (idx < len(arr))
    return np.where(ok, arr[np.clip(idx, 0, len(arr) - 1)], np.nan)


def _window_mean(arr: NDArray[np.float64], end: NDArray[np.int64], width: int) -> NDArray[np.float64]:
    """Mean of arr[end - width : end] ignoring NaN; NaN when under half the window is known."""
    known = ~np.isnan(arr)
    cs = np.concatenate([[0.0], np.cumsum(np.where(known, arr, 0.0))])
    cnt = np.concatenate([[0], np.cumsum(known)])
    lo, hi = np.clip(end - width, 0, len(arr)), np.clip(end, 0, len(arr))
    n = cnt[hi] - cnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= width / 2, (cs[hi] - cs[lo]) / n, np.nan)


def _known_days(at: dict[int, NDArray[np.int64]], oi: NDArray[np.int64]) -> NDArray[np.int64]:
    """Per row, the 7 most recent day offsets (as indices into `at`, 0 = one day back) whose
    same-local-time period was measured by the origin (period index < oi)."""
    known = np.column_stack([at[d] < oi for d in sorted(at)])  # (rows, 14), True from some day on
    first = np.argmax(known, axis=1)
    days: NDArray[np.int64] = np.minimum(first[:, None] + np.arange(7)[None, :], len(at) - 1)
    return days


def _row_mean(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean of each row's known values; NaN where none is known."""
    n = np.sum(~np.isnan(a), axis=1)
    return np.where(n > 0, np.nansum(a, axis=1) / np.maximum(n, 1), np.nan)


def _series(frame: pd.DataFrame | None, column: str, p0: int, n: int) -> NDArray[np.float64]:
    out = np.full(n, np.nan)
    if frame is None or len(frame) == 0:
        return out
    pos = (frame.index.to_numpy(dtype=np.int64) - p0) // HALF_HOUR
    ok = (pos >= 0) & (pos < n)
    out[pos[ok]] = frame[column].to_numpy(dtype=float)[ok]
    return out


def _calendar(period: NDArray[np.int64], site: Site) -> dict[str, NDArray[np.int64]]:
    local = local_times(period, site.tz)
    hol = is_holiday(local, site.country, site.subdiv)
    dow = local.day_of_week.to_numpy()
    day_type = np.where((dow == 6) | (hol == 1), 2, np.where(dow == 5, 1, 0))
    month = local.month.to_numpy()
    return {
        "tod": local.hour.to_numpy() * 2 + local.minute.to_numpy() // 30,
        "dow": dow,
        "day_type": day_type,
        "holiday": hol,
        "doy": local.day_of_year.to_numpy(),
        "month": month,
        "season": (month % 12) // 3,
    }


def _forecast_weather(
    coop: CoopData, origin: NDArray[np.int64], period: NDArray[np.int64]
) -> dict[str, NDArray[np.float64]]:
    nan = np.full(len(origin), np.nan)
    fc = coop.weather_forecast
    if fc is None or len(fc) == 0:
        return {"temp_fc": nan, "ghi_fc": nan, "wind_fc": nan, "fc_lead": nan}
    issues = np.unique(fc["issued"].to_numpy(dtype=np.int64))
    pos = np.searchsorted(issues, origin, side="right") - 1  # latest issue at or before origin
    issued = np.where(pos >= 0, issues[np.clip(pos, 0, None)], -1)
    keys = pd.DataFrame({"issued": issued, "period": period})
    got = keys.merge(fc, on=["issued", "period"], how="left", validate="many_to_one")
    lead = np.where(np.isnan(got["temp_c"].to_numpy()), np.nan, (period - issued) / 3600)
    return {
        "temp_fc": got["temp_c"].to_numpy(),
        "ghi_fc": got["ghi"].to_numpy(),
        "wind_fc": got["wind_ms"].to_numpy(),
        "fc_lead": lead,
    }


def _generation_scale(
    coop: CoopData, g: NDArray[np.float64], members: NDArray[np.floating[Any]], oi: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Per row, kWh per member per half-hour at full output of the installed kW (members known
    at the origin), or the 28-day peak where the capacity is unknown."""
    kw = sum((coop.capacity or {}).values())
    if kw > 0:
        return kw * (HALF_HOUR / 3600) / _take(members, oi - 1)
    gmax = pd.Series(g).rolling(4 * WEEK, min_periods=PERIODS_PER_DAY).max().to_numpy()
    return np.maximum(_take(gmax, oi - 1), _GEN_FLOOR)


def build_features(coop: CoopData, origins: NDArray[np.int64], horizon: int = HORIZON) -> FeatureRows:
    """Rows for each origin and each of the next `horizon` periods."""
    origins = np.asarray(origins, dtype=np.int64)
    check_periods(origins)
    agg = coop.aggregates
    p0 = int(agg.index[0])
    if len(origins) and origins.min() <= p0:
        raise ValueError("every origin must come after the first aggregate period")
    last = max(int(agg.index[-1]), int(origins.max(initial=p0)) + (horizon - 1) * HALF_HOUR)
    n = (last - p0) // HALF_HOUR + 1
    members = pd.Series(_series(agg, "members", p0, n)).ffill().to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        d = _series(agg, "demand", p0, n) / members
        g = _series(agg, "generation", p0, n) / members
    k = np.tile(np.arange(horizon), len(origins))
    oi = np.repeat((origins - p0) // HALF_HOUR, horizon)  # first period not yet measured
    ti = oi + k
    period = p0 + ti * HALF_HOUR
    tz = coop.site.tz
    at = {days: (same_local_time(period, -days, tz) - p0) // HALF_HOUR for days in range(1, 15)}
    known_days = _known_days(at, oi)  # per row: days back to the same local time, 7 known ones
    base_d = _window_mean(d, oi, WEEK)
    base_g = _generation_scale(coop, g, members, oi)
    temp = _series(coop.weather, "temp_c", p0, n)
    sun = sky(coop.site, period)
    if not coop.astronomy:
        sun[:] = np.nan
    clear = sun["clearsky"].to_numpy()
    cols: dict[str, NDArray[Any]] = {"horizon": k, **_calendar(period, coop.site)}
    cols |= {str(c): sun[c].to_numpy() for c in sun}
    for name, arr, scale in (("d", d, base_d), ("g", g, base_g)):
        same = np.column_stack([_take(arr, np.choose(known_days[:, j], list(at.values()))) for j in range(7)])
        cols[f"{name}_lag7"] = _take(arr, at[7]) / scale
        cols[f"{name}_last_same"] = same[:, 0] / scale
        cols[f"{name}_mean7_same"] = _row_mean(same) / scale
        cols[f"{name}_last"] = _take(arr, oi - 1) / scale
        cols[f"{name}_mean24"] = _window_mean(arr, oi, PERIODS_PER_DAY) / scale
    cols["d_lag14"] = _take(d, at[14]) / base_d
    shares = coop.technology_mix()
    for tech, feature in zip(TECHNOLOGIES, SHARES, strict=True):
        cols[feature] = np.full(len(k), shares.get(tech, np.nan))
    cols["temp_last"] = _take(temp, oi - 1)
    cols["temp_mean24"] = _window_mean(temp, oi, PERIODS_PER_DAY)
    origin = p0 + oi * HALF_HOUR
    cols.update(_forecast_weather(coop, origin, period))
    with np.errstate(invalid="ignore", divide="ignore"):
        cols["clearness_fc"] = np.where(clear > 20, cols["ghi_fc"] / clear, np.nan)
    X = pd.DataFrame({f: np.asarray(cols[f], dtype=np.float32) for f in FEATURES})
    scale = np.column_stack([base_d, base_g])
    y = np.column_stack([_take(d, ti), _take(g, ti)]) / scale
    return FeatureRows(coop.coop_id, origin, period, X, y, scale, _take(members, oi - 1))

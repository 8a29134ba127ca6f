"""Weather from the DWD test reference years shipped in demandlib, moved to a co-op's site.

demandlib 0.2.2 ships the hourly TRY2010 files of the 15 DWD climate regions but its reader
(`demandlib.vdi.read_dwd_weather_file`) keeps only temperature and cloud cover, so the files are
parsed here for temperature, 10 m wind speed and direct and diffuse horizontal irradiance.
A TRY is one representative year; longer runs resample it in blocks of whole days (seeded), and
irradiance reaches the site as a clear-sky index so sun times follow the site, not the station.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import demandlib
import numpy as np
import pandas as pd
import pvlib
from numpy.typing import NDArray
from scipy.signal import lfilter

from .physics import quiet_pandas_deprecations
from .timegrid import HALF_HOUR, Site

TRY_DIR = Path(demandlib.__file__).parent / "vdi" / "resources_weather"
_MIN_CLEARSKY = 50.0  # W/m2: below this a clear-sky index is too noisy to carry over
_MAX_CLEARNESS = 1.3


@dataclass(frozen=True)
class TryYear:
    """One DWD test reference year: station metadata and 8760 hourly rows."""

    region: int
    station: str
    latitude: float
    longitude: float
    hourly: pd.DataFrame  # month, day, hour (1-24, hour ending, CET), temp_c, wind_ms, direct, diffuse


def _degrees(text: str, hemisphere: str) -> float:
    match = re.search(rf"(\d+)°(\d+)'{hemisphere}", text)
    if not match:
        raise ValueError(f"no {hemisphere} coordinate in TRY header line {text!r}")
    return int(match.group(1)) + int(match.group(2)) / 60


@cache
def read_try(region: int) -> TryYear:
    """Parse one TRY2010 file shipped by demandlib (regions 1-15)."""
    if not 1 <= region <= 15:
        raise ValueError(f"TRY region must be 1-15, got {region}")
    path = TRY_DIR / f"TRY2010_{region:02d}_Jahr.dat"
    lines = path.read_text(encoding="utf-8").splitlines()
    station = next(ln for ln in lines if ln.startswith("Station:")).split()[1]
    position = next(ln for ln in lines if ln.startswith("Lage:"))
    marker = next(i for i, ln in enumerate(lines) if ln.startswith("***"))
    names = lines[marker - 1].split()
    rows = [ln.split() for ln in lines[marker + 1 :] if ln.strip()]
    raw = pd.DataFrame(rows, columns=names).astype(float)
    hourly = pd.DataFrame(
        {
            "month": raw["MM"].astype(int),
            "day": raw["DD"].astype(int),
            "hour": raw["HH"].astype(int),
            "temp_c": raw["t"],
            "wind_ms": raw["WG"],
            "direct": raw["B"],
            "diffuse": raw["D"],
        }
    )
    if len(hourly) != 8760:
        raise ValueError(f"{path.name}: expected 8760 hourly rows, got {len(hourly)}")
    lat, lon = _degrees(position, "N"), _degrees(position, "O")
    return TryYear(region, station, lat, lon, hourly)


def _solar(times: pd.DatetimeIndex, lat: float, lon: float, alt: float = 0.0) -> pd.DataFrame:
    with quiet_pandas_deprecations():
        pos = pvlib.solarposition.get_solarposition(times, lat, lon, altitude=alt)
    clear = pvlib.clearsky.haurwitz(pos["apparent_zenith"])["ghi"]
    return pd.DataFrame({"zenith": pos["zenith"], "azimuth": pos["azimuth"], "clearsky": clear})


@cache
def _station_indices(region: int) -> pd.DataFrame:
    """Per TRY hour: clear-sky index and diffuse fraction at the station, gaps filled by day."""
    tr = read_try(region)
    h = tr.hourly
    # TRY hours are hour-ending CET (UTC+1): hour HH covers [HH-2, HH-1) UTC.
    start = pd.to_datetime({"year": 2010, "month": h["month"], "day": h["day"]}, utc=True)
    mid = pd.DatetimeIndex(start + pd.to_timedelta(h["hour"] - 2, unit="h") + pd.Timedelta("30min"))
    clear = _solar(mid, tr.latitude, tr.longitude)["clearsky"].to_numpy()
    ghi = (h["direct"] + h["diffuse"]).to_numpy()
    day = np.repeat(np.arange(365), 24)
    lit = clear >= _MIN_CLEARSKY
    k = np.where(lit, ghi / np.where(lit, clear, 1.0), np.nan)
    kd = np.where(ghi > 0, h["diffuse"].to_numpy() / np.where(ghi > 0, ghi, 1.0), np.nan)
    daily_k = pd.Series(ghi * lit).groupby(day).sum() / pd.Series(clear * lit).groupby(day).sum()
    k = np.where(np.isnan(k), daily_k.to_numpy()[day], k)
    kd = np.where(np.isnan(kd), 1.0, kd)
    return pd.DataFrame(
        {
            "temp_c": h["temp_c"].to_numpy(),
            "wind_ms": h["wind_ms"].to_numpy(),
            "clearness": np.clip(np.nan_to_num(k, nan=0.0), 0.0, _MAX_CLEARNESS),
            "diffuse_fraction": np.clip(kd, 0.0, 1.0),
        }
    )


def resample_days(n_days: int, first_doy: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """TRY source day (0-364) for each simulated day: blocks of 3-7 consecutive days from near
    the same date (+-10 days), so every year differs yet keeps its season and day-to-day spells."""
    out = np.empty(n_days, dtype=np.int64)
    i = 0
    while i < n_days:
        length = int(rng.integers(3, 8))
        source = (first_doy + i + int(rng.integers(-10, 11))) % 365
        for j in range(min(length, n_days - i)):
            out[i + j] = (source + j) % 365
        i += length
    return out


def simulate_weather(site: Site, periods: NDArray[np.int64], region: int, seed: int) -> pd.DataFrame:
    """Half-hourly site weather for UTC period starts, from TRY days resampled with `seed`."""
    tr = read_try(region)
    idx = _station_indices(region)
    first = pd.Timestamp(int(periods[0]), unit="s", tz="UTC").normalize() - pd.Timedelta("1D")
    n_days = int((periods[-1] - first.timestamp()) // 86400) + 3
    src = resample_days(n_days, first.day_of_year - 1, np.random.default_rng(seed))
    rows = (src[:, None] * 24 + np.arange(24)[None, :]).ravel()
    # Hour h of simulated day d sits at d + (h - 1) h + 30 min UTC; shifting by the longitude
    # difference keeps each value at the same solar time at the site as at the station.
    shift_s = (tr.longitude - site.longitude) / 15.0 * 3600.0
    src_t = first.timestamp() + (np.arange(n_days * 24) - 1) * 3600.0 + 1800.0 + shift_s
    mid = periods.astype(float) + HALF_HOUR / 2
    values = {c: np.interp(mid, src_t, idx[c].to_numpy()[rows]) for c in idx.columns}
    times = pd.DatetimeIndex(pd.to_datetime(mid, unit="s", utc=True))
    sun = _solar(times, site.latitude, site.longitude, site.altitude)
    clear = sun["clearsky"].to_numpy()
    ghi = values["clearness"] * clear
    dhi = values["diffuse_fraction"] * ghi
    cosz = np.cos(np.radians(sun["zenith"].to_numpy()))
    dni = np.where(cosz > 0.065, (ghi - dhi) / np.maximum(cosz, 0.065), 0.0)
    frame = pd.DataFrame(
        {
            "temp_c": values["temp_c"],
            "wind_ms": values["wind_ms"],
            "ghi": ghi,
            "dhi": dhi,
            "dni": np.clip(dni, 0.0, 1100.0),
            "clearsky": clear,
            "solar_zenith": sun["zenith"].to_numpy(),
            "solar_azimuth": sun["azimuth"].to_numpy(),
        },
        index=pd.Index(periods, name="period"),
    )
    return frame


def sky(site: Site, periods: NDArray[np.int64]) -> pd.DataFrame:
    """Clear-sky horizontal irradiance (Haurwitz, W/m2) and the sun's elevation and azimuth
    (degrees) at period midpoints: astronomy only, known years ahead."""
    mid = pd.to_datetime(np.asarray(periods, dtype=np.int64) + HALF_HOUR // 2, unit="s", utc=True)
    sun = _solar(pd.DatetimeIndex(mid), site.latitude, site.longitude, site.altitude)
    return pd.DataFrame(
        {
            "clearsky": sun["clearsky"].to_numpy(),
            "sun_elevation": 90.0 - sun["zenith"].to_numpy(),
            "sun_azimuth": sun["azimuth"].to_numpy(),
        }
    )


def clearsky_ghi(site: Site, periods: NDArray[np.int64]) -> NDArray[np.float64]:
    """Clear-sky horizontal irradiance at period midpoints (Haurwitz): astronomy only."""
    return sky(site, periods)["clearsky"].to_numpy()


def simulate_weather_forecast(
    weather: pd.DataFrame, origins: NDArray[np.int64], seed: int, horizon: int = 96
) -> pd.DataFrame:
    """Synthetic numerical weather forecasts issued at each origin for the next `horizon` periods.

    Truth plus smooth (AR(1), phi 0.97 per half-hour) errors that grow with lead time: temperature
    0.6 -> 1.8 degC, clear-sky index 0.10 -> 0.24, wind log-error 0.12 -> 0.31 at 48 h. A real
    co-op puts a weather service's forecasts into the same columns.
    """
    rng = np.random.default_rng(seed)
    k = np.arange(horizon)
    lead_h = (k * HALF_HOUR + HALF_HOUR / 2) / 3600
    white = rng.standard_normal((len(origins), horizon, 3))
    phi = 0.97
    smooth = lfilter([np.sqrt(1 - phi**2)], [1, -phi], white, axis=1)
    sig = np.stack([0.6 + 0.025 * lead_h, 0.10 + 0.003 * lead_h, 0.12 + 0.004 * lead_h], axis=-1)
    err = smooth * sig[None, :, :]
    target = (origins[:, None] + k[None, :] * HALF_HOUR).ravel()
    truth = weather.reindex(target)
    clear = truth["clearsky"].to_numpy()
    kt = np.where(clear > 0, truth["ghi"].to_numpy() / np.where(clear > 0, clear, 1.0), 0.0)
    e = err.reshape(-1, 3)
    wind_bias = np.tile(sig[:, 2] ** 2 / 2, len(origins))  # keeps the wind forecast unbiased
    frame = pd.DataFrame(
        {
            "issued": np.repeat(origins, horizon),
            "period": target,
            "temp_c": truth["temp_c"].to_numpy() + e[:, 0],
            "ghi": np.clip(kt + e[:, 1], 0.0, 1.2) * clear,
            "wind_ms": truth["wind_ms"].to_numpy() * np.exp(e[:, 2] - wind_bias),
        }
    )
    return frame.dropna().reset_index(drop=True)

"""Real weather for a co-op: hourly observations and forecasts from files (EPW, Open-Meteo JSON or
CSV) or from Open-Meteo's API, on the forecaster's half-hour grid.

Observations: index `period`; temp_c, ghi (W/m2), wind_ms (10 m). Forecasts: the same columns
plus `issued` (when the forecast was made, UTC unix seconds) and `period`. Instantaneous values
(temperature, wind) are interpolated to period midpoints; an hour's mean irradiance covers both
of its half-hours. A backtest reads only forecasts issued by each origin (`CoopData.known_at`).
"""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pvlib

from .features import CoopData
from .timegrid import HALF_HOUR, Site

COLUMNS = ("temp_c", "ghi", "wind_ms")
OPEN_METEO_URL = "https://api.open-meteo.com/v1/forecast"
OPEN_METEO_HOURLY = ("temperature_2m", "shortwave_radiation", "wind_speed_10m")
_WIND_TO_MS = {"m/s": 1.0, "km/h": 1 / 3.6, "mp/h": 0.44704, "kn": 0.514444}


class WeatherSourceError(ValueError):
    """Weather that cannot be read: a bad file, an unknown unit, an API that refused or is away."""


@dataclass(frozen=True)
class Weather:
    """What a weather source gave: observations and forecasts (either may be None)."""

    observations: pd.DataFrame | None = None
    forecasts: pd.DataFrame | None = None

    def attach(self, coop: CoopData) -> CoopData:
        return replace(coop, weather=self.observations, weather_forecast=self.forecasts)


class WeatherSource(Protocol):
    def load(self, site: Site) -> Weather: ...


def _half_hours(start: int, end: int, instant: pd.DataFrame, hourly_mean: pd.Series) -> pd.DataFrame:
    """Half-hourly frame for [start, end): `instant` columns (index unix s) interpolated at
    midpoints, `hourly_mean` (index: hour starts) repeated over each hour."""
    periods = np.arange(start - start % HALF_HOUR, end, HALF_HOUR, dtype=np.int64)
    mid = periods + HALF_HOUR / 2
    t = instant.index.to_numpy(dtype=float)
    out = {c: np.interp(mid, t, instant[c].to_numpy(dtype=float), left=np.nan, right=np.nan) for c in instant}
    hour = periods - periods % 3600
    out["ghi"] = hourly_mean.reindex(hour).to_numpy(dtype=float)
    frame = pd.DataFrame(out, index=pd.Index(periods, name="period"))[list(COLUMNS)]
    return frame.dropna()


def read_epw(path: str | Path) -> pd.DataFrame:
    """Half-hourly observations from an EnergyPlus weather file (read by pvlib; its index is the
    start of each hour in local standard time). Irradiance is the hour's mean."""
    try:
        data, _ = pvlib.iotools.read_epw(str(path))
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise WeatherSourceError(f"{path}: not a readable EPW file ({exc})") from exc
    start = np.asarray(data.index.tz_convert("UTC").as_unit("s").asi8, dtype=np.int64)  # hour starts
    instant = pd.DataFrame(
        {"temp_c": data["temp_air"].to_numpy(float), "wind_ms": data["wind_speed"].to_numpy(float)},
        index=start + 3600,  # EPW: instantaneous values at the end of their hour
    )
    ghi = pd.Series(data["ghi"].to_numpy(float), index=start)
    return _half_hours(int(start[0]), int(start[-1]) + 3600, instant, ghi)


def _open_meteo_hourly(doc: Mapping[str, Any], units: Mapping[str, str]) -> pd.DataFrame:
    hourly = doc["hourly"]
    missing = [v for v in ("time", *OPEN_METEO_HOURLY) if v not in hourly]
    if missing:
        raise WeatherSourceError(f"Open-Meteo hourly data lacks {', '.join(missing)}")
    times = hourly["time"]
    offset = int(doc.get("utc_offset_seconds", 0))
    if times and isinstance(times[0], str):  # ISO 8601 local times of the response's time zone
        local = pd.to_datetime(pd.Series(times), format="ISO8601")
        stamps = (local.astype("datetime64[s]").astype(np.int64) - offset).to_numpy()
    else:  # timeformat=unixtime
        stamps = np.asarray(times, dtype=np.int64)
    wind_unit = units.get("wind_speed_10m", "km/h")
    if wind_unit not in _WIND_TO_MS:
        raise WeatherSourceError(f"Open-Meteo wind speed unit {wind_unit!r} is not known")
    if units.get("temperature_2m", "°C") != "°C":
        raise WeatherSourceError("Open-Meteo temperatures must be in °C (temperature_unit=celsius)")
    frame = pd.DataFrame(
        {
            "temp_c": pd.to_numeric(pd.Series(hourly["temperature_2m"]), errors="coerce").to_numpy(float),
            "ghi": pd.to_numeric(pd.Series(hourly["shortwave_radiation"]), errors="coerce").to_numpy(float),
            "wind_ms": pd.to_numeric(pd.Series(hourly["wind_speed_10m"]), errors="coerce").to_numpy(float)
            * _WIND_TO_MS[wind_unit],
        },
        index=stamps,
    )
    if len(frame) == 0:
        raise WeatherSourceError("Open-Meteo returned no hourly rows")
    return frame


def _parse_open_meteo_csv(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Open-Meteo's `format=csv`: a location header block, a blank line, then the hourly table
    whose headers carry units ("temperature_2m (°C)")."""
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]
    if len(blocks) < 2:
        raise WeatherSourceError("an Open-Meteo CSV has a location block, a blank line and an hourly table")
    meta = next(csv.DictReader(io.StringIO(blocks[0])))
    rows = list(csv.reader(io.StringIO(blocks[1])))
    names, units = [], {}
    for head in rows[0]:
        name, _, unit = head.partition(" (")
        names.append(name.strip())
        if unit:
            units[name.strip()] = unit.rstrip(")")
    hourly: dict[str, list[Any]] = {n: [r[i] for r in rows[1:]] for i, n in enumerate(names)}
    if units.get("time") == "unixtime":
        hourly["time"] = [int(v) for v in hourly["time"]]
    return {"utc_offset_seconds": meta.get("utc_offset_seconds", 0), "hourly": hourly}, units


def parse_open_meteo(payload: str | bytes, issued: int | None = None) -> pd.DataFrame:
    """Half-hourly weather from an Open-Meteo response (JSON or CSV). With `issued`, a forecast
    frame (the time it was fetched or, for archived forecasts, made); without, observations."""
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    try:
        if text.lstrip().startswith("{"):
            doc = json.loads(text)
            if doc.get("error"):
                raise WeatherSourceError(f"Open-Meteo refused: {doc.get('reason', 'no reason given')}")
            units = doc.get("hourly_units", {})
        else:
            doc, units = _parse_open_meteo_csv(text)
        hourly = _open_meteo_hourly(doc, units)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, StopIteration) as exc:
        if isinstance(exc, WeatherSourceError):
            raise
        raise WeatherSourceError(f"not an Open-Meteo hourly response: {exc}") from exc
    stamps = hourly.index.to_numpy(dtype=np.int64)
    # Temperature and wind are instants at the hour; radiation is the mean of the preceding hour.
    ghi = pd.Series(hourly["ghi"].to_numpy(), index=stamps - 3600)
    frame = _half_hours(int(stamps[0]) - 3600, int(stamps[-1]), hourly[["temp_c", "wind_ms"]], ghi)
    if issued is None:
        return frame
    return frame.reset_index().assign(issued=int(issued))[["issued", "period", *COLUMNS]]


@dataclass(frozen=True)
class WeatherFiles:
    """Weather imported from files: observations (EPW or Open-Meteo) and forecasts, each an
    Open-Meteo file with the time it was issued."""

    observations: Sequence[Path] = ()
    forecasts: Sequence[tuple[int, Path]] = ()

    def load(self, site: Site) -> Weather:
        obs = [
            read_epw(p) if Path(p).suffix.lower() == ".epw" else parse_open_meteo(Path(p).read_bytes())
            for p in self.observations
        ]
        fcs = [parse_open_meteo(Path(p).read_bytes(), issued) for issued, p in self.forecasts]
        observed = pd.concat(obs).sort_index() if obs else None
        if observed is not None:
            observed = observed[~observed.index.duplicated(keep="last")]
        return Weather(observed, pd.concat(fcs, ignore_index=True) if fcs else None)


@dataclass(frozen=True)
class OpenMeteo:
    """Open-Meteo's forecast API: the forecast issued now for the next `days` days."""

    url: str = OPEN_METEO_URL
    days: int = 3
    timeout_s: float = 10.0

    def query(self, site: Site) -> str:
        params = {
            "latitude": f"{site.latitude:.4f}",
            "longitude": f"{site.longitude:.4f}",
            "hourly": ",".join(OPEN_METEO_HOURLY),
            "wind_speed_unit": "ms",
            "timezone": "GMT",
            "timeformat": "unixtime",
            "forecast_days": str(self.days),
        }
        return f"{self.url}?{urllib.parse.urlencode(params)}"

    def load(self, site: Site, issued: int | None = None) -> Weather:
        """Fetch the forecast; `issued` defaults to the response's first hour's start."""
        try:
            with urllib.request.urlopen(self.query(site), timeout=self.timeout_s) as reply:  # noqa: S310
                body = reply.read()
        except urllib.error.HTTPError as exc:
            raise WeatherSourceError(f"Open-Meteo answered {exc.code}: {_reason(exc.read())}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise WeatherSourceError(f"cannot reach Open-Meteo at {self.url}: {exc}") from exc
        frame = parse_open_meteo(body, issued=0)
        first = int(frame["period"].min()) if len(frame) else 0
        return Weather(forecasts=frame.assign(issued=first if issued is None else issued))


def _reason(body: bytes) -> str:
    try:
        return str(json.loads(body).get("reason", body[:200].decode("utf-8", "replace")))
    except (json.JSONDecodeError, AttributeError):
        return body[:200].decode("utf-8", "replace")


def observed_as_forecasts(observations: pd.DataFrame, origins: Sequence[int], horizon: int) -> pd.DataFrame:
    """Stand-in forecasts when none were kept: the observations that followed each origin.
    Perfect foresight, so scores made with them are optimistic; backtests say so."""
    parts = []
    for o in origins:
        window = observations.loc[int(o) : int(o) + (horizon - 1) * HALF_HOUR]
        parts.append(window.reset_index().assign(issued=int(o)))
    if not parts:
        return pd.DataFrame(columns=["issued", "period", *COLUMNS])
    return pd.concat(parts, ignore_index=True)[["issued", "period", *COLUMNS]]

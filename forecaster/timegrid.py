"""Half-hourly UTC period grids, a co-op's place (clock, holidays, location) and forecast origins.

Every function takes the co-op's time zone (or its Site) explicitly: a co-op's settlement periods,
calendar, lags and nudges follow its own clock, wherever it is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import arrow
import holidays
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

HALF_HOUR = 1800  # seconds in one settlement period (same value as coopfed.node.model.HALF_HOUR)
PERIODS_PER_DAY = 48  # on a day without a clock change (46 or 50 on the days the clocks move)


@dataclass(frozen=True)
class Site:
    """Where a co-op is: location (decimal degrees, metres), clock (IANA zone) and holidays
    (ISO country code and optional subdivision, as the `holidays` package names them)."""

    name: str
    latitude: float
    longitude: float
    altitude: float = 0.0
    tz: str = field(kw_only=True)
    country: str = field(kw_only=True)
    subdiv: str | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if not (-90 <= self.latitude <= 90 and -180 <= self.longitude <= 180):
            raise ValueError(f"{self.latitude},{self.longitude} is not on Earth")
        check_tz(self.tz)
        try:
            holidays.country_holidays(self.country, subdiv=self.subdiv, years=2024)
        except NotImplementedError as exc:
            raise ValueError(f"no public holidays known for {self.country}/{self.subdiv}: {exc}") from exc


def check_tz(tz: str) -> None:
    """Reject a name that is not an IANA time zone."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{tz!r} is not a time zone (e.g. Europe/London)") from exc


def period_grid(start: dt.date, end: dt.date, tz: str) -> NDArray[np.int64]:
    """UTC period starts (unix seconds) from local midnight of `start` to local midnight of `end`."""
    first = arrow.get(dt.datetime.combine(start, dt.time()), tz).int_timestamp
    last = arrow.get(dt.datetime.combine(end, dt.time()), tz).int_timestamp
    if last <= first:
        raise ValueError(f"empty period range {start}..{end}")
    return np.arange(first, last, HALF_HOUR, dtype=np.int64)


def check_periods(periods: ArrayLike) -> None:
    """Reject timestamps that are not period starts."""
    if np.any(np.asarray(periods) % HALF_HOUR):
        raise ValueError("period timestamps must be multiples of 1800 s (UTC period starts)")


def local_times(periods: ArrayLike, tz: str) -> pd.DatetimeIndex:
    """Naive local wall-clock times of UTC period starts (what a household's routine follows)."""
    utc = pd.to_datetime(np.asarray(periods, dtype=np.int64), unit="s", utc=True)
    return pd.DatetimeIndex(utc.tz_convert(tz).tz_localize(None))


def same_local_time(periods: ArrayLike, days: int, tz: str) -> NDArray[np.int64]:
    """The period at the same local clock time `days` days away (negative: earlier).

    "Last week at 18:00" is 18:00 on the local clock, 335, 336 or 337 UTC half-hours back across
    a clock change. A time that repeats (clocks back) maps to its first occurrence; one that did
    not exist (clocks forward) to the next period that did.
    """
    local = local_times(periods, tz) + pd.Timedelta(days=days)
    first = np.ones(len(local), dtype=bool)
    moved = local.tz_localize(tz, ambiguous=first, nonexistent="shift_forward")
    return np.asarray(moved.tz_convert("UTC").as_unit("s").asi8, dtype=np.int64)


@cache
def _holiday_dates(years: tuple[int, ...], country: str, subdiv: str | None) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdiv, years=list(years)).keys())


def holiday_dates(years: range | list[int], country: str, subdiv: str | None) -> frozenset[dt.date]:
    """Public holidays of a country (and subdivision) for the given years."""
    return _holiday_dates(tuple(sorted(set(years))), country, subdiv)


def is_holiday(local: pd.DatetimeIndex, country: str, subdiv: str | None) -> NDArray[np.int8]:
    """1 where the local date is a public holiday, else 0."""
    if len(local) == 0:
        return np.zeros(0, dtype=np.int8)
    days = holiday_dates(range(local.year.min(), local.year.max() + 1), country, subdiv)
    dates = pd.DatetimeIndex(local.normalize())
    hol = pd.DatetimeIndex(sorted(pd.Timestamp(d) for d in days))
    return dates.isin(hol).astype(np.int8)


def noon_origins(first: int, last: int, tz: str, hour: int = 12) -> NDArray[np.int64]:
    """UTC instants of local `hour`:00 on each day whose origin lies in [first, last]."""
    day = arrow.get(first).to(tz).floor("day")
    end = arrow.get(last).to(tz)
    out = []
    while day <= end:
        origin = day.replace(hour=hour)
        if first <= origin.int_timestamp <= last:
            out.append(origin.int_timestamp)
        day = day.shift(days=1)
    return np.asarray(out, dtype=np.int64)


def local_day_offset(origins: ArrayLike, periods: ArrayLike, tz: str) -> NDArray[np.int64]:
    """Local calendar days from each origin to its period (0 today, 1 tomorrow, ...)."""
    start = local_times(np.asarray(origins), tz).normalize()
    day = local_times(np.asarray(periods), tz).normalize()
    return np.asarray((day - start).days, dtype=np.int64)

"""Half-hourly UTC period grids, Europe/London local clock times, holidays and forecast origins."""

from __future__ import annotations

import datetime as dt
from functools import cache

import arrow
import holidays
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

HALF_HOUR = 1800  # seconds in one settlement period (same value as coopfed.node.model.HALF_HOUR)
PERIODS_PER_DAY = 48
LOCAL_TZ = "Europe/London"


def period_grid(start: dt.date, end: dt.date, tz: str = LOCAL_TZ) -> NDArray[np.int64]:
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


def local_times(periods: ArrayLike, tz: str = LOCAL_TZ) -> pd.DatetimeIndex:
    """Naive local wall-clock times of UTC period starts (what a household's routine follows)."""
    utc = pd.to_datetime(np.asarray(periods, dtype=np.int64), unit="s", utc=True)
    return pd.DatetimeIndex(utc.tz_convert(tz).tz_localize(None))


@cache
def _holiday_dates(years: tuple[int, ...], country: str, subdiv: str | None) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdiv, years=list(years)).keys())


def holiday_dates(
    years: range | list[int], country: str = "GB", subdiv: str | None = "ENG"
) -> frozenset[dt.date]:
    """Public holidays (England and Wales by default) for the given years."""
    return _holiday_dates(tuple(sorted(set(years))), country, subdiv)


def is_holiday(local: pd.DatetimeIndex, country: str = "GB", subdiv: str | None = "ENG") -> NDArray[np.int8]:
    """1 where the local date is a public holiday, else 0."""
    if len(local) == 0:
        return np.zeros(0, dtype=np.int8)
    days = holiday_dates(range(local.year.min(), local.year.max() + 1), country, subdiv)
    dates = pd.DatetimeIndex(local.normalize())
    hol = pd.DatetimeIndex(sorted(pd.Timestamp(d) for d in days))
    return dates.isin(hol).astype(np.int8)


def noon_origins(first: int, last: int, tz: str = LOCAL_TZ, hour: int = 12) -> NDArray[np.int64]:
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


def local_day_offset(origins: ArrayLike, periods: ArrayLike, tz: str = LOCAL_TZ) -> NDArray[np.int64]:
    """Local calendar days from each origin to its period (0 today, 1 tomorrow, ...)."""
    start = local_times(np.asarray(origins), tz).normalize()
    day = local_times(np.asarray(periods), tz).normalize()
    return np.asarray((day - start).days, dtype=np.int64)

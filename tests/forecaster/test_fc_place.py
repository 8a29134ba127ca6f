"""Co-ops away from London: their clock, clock changes (either hemisphere) and holidays drive the
settlement periods, calendar features, last-week lags, origins and nudges."""

from __future__ import annotations

import datetime as dt

import arrow
import numpy as np
import pandas as pd
import pytest

from coopfed.forecaster import CoopData, Site, Window, build_features, nudges
from coopfed.forecaster.timegrid import HALF_HOUR, noon_origins, period_grid, same_local_time

PARIS = Site("Lyon", 45.76, 4.84, 170, tz="Europe/Paris", country="FR")
SYDNEY = Site("Marrickville", -33.91, 151.16, 10, tz="Australia/Sydney", country="AU", subdiv="NSW")


def _at(text: str, tz: str) -> int:
    return arrow.get(text, tzinfo=tz).int_timestamp


def _coop(site: Site, start: dt.date, end: dt.date) -> CoopData:
    """Demand that names its own period (kWh = period index), so a lag says which period it read."""
    periods = period_grid(start, end, site.tz)
    n = np.arange(1, len(periods) + 1, dtype=float)
    agg = pd.DataFrame(
        {"demand": n, "generation": 0.0, "export": 0.0, "members": 1},
        index=pd.Index(periods, name="period"),
    )
    return CoopData(site.name, agg, site)


@pytest.mark.parametrize(
    ("site", "short", "long"),
    [
        (PARIS, dt.date(2024, 3, 31), dt.date(2024, 10, 27)),
        (SYDNEY, dt.date(2024, 10, 6), dt.date(2025, 4, 6)),
    ],
)
def test_days_the_clocks_change_have_46_and_50_periods(site: Site, short: dt.date, long: dt.date) -> None:
    day = dt.timedelta(days=1)
    assert len(period_grid(short, short + day, site.tz)) == 46
    assert len(period_grid(long, long + day, site.tz)) == 50
    assert len(period_grid(short - day, short, site.tz)) == 48


def test_last_week_is_the_same_local_time_across_sydneys_spring_forward() -> None:
    coop = _coop(SYDNEY, dt.date(2024, 9, 1), dt.date(2024, 10, 20))
    origin = _at("2024-10-08T12:00:00", SYDNEY.tz)  # two days after clocks went forward (Oct 6)
    rows = build_features(coop, np.array([origin]))
    target = _at("2024-10-09T18:00:00", SYDNEY.tz)
    week_before = _at("2024-10-02T18:00:00", SYDNEY.tz)
    assert (target - week_before) // HALF_HOUR == 7 * 48 - 2  # an hour fewer in UTC
    i = int(np.flatnonzero(rows.period == target)[0])
    read = rows.X["d_lag7"].to_numpy(dtype=float)[i] * rows.scale[i, 0]
    assert read == pytest.approx(coop.aggregates.loc[week_before, "demand"])
    # The day before, too, is read at the same local time (yesterday 18:00 is after the origin).
    same = rows.X["d_last_same"].to_numpy(dtype=float)[i] * rows.scale[i, 0]
    assert same == pytest.approx(coop.aggregates.loc[_at("2024-10-07T18:00:00", SYDNEY.tz), "demand"])


def test_a_repeated_hour_maps_to_its_first_occurrence_and_a_missing_one_forward() -> None:
    first_0230 = _at("2024-10-27T02:30:00+02:00", PARIS.tz)  # Paris falls back at 03:00 CEST
    second_0230 = first_0230 + 3600
    week_on = _at("2024-11-03T02:30:00", PARIS.tz)
    assert same_local_time([week_on], -7, PARIS.tz)[0] == first_0230
    assert same_local_time([first_0230, second_0230], 7, PARIS.tz).tolist() == [week_on, week_on]
    # 02:30 on 31 March 2024 did not exist in Paris: the next period that did is 03:00 CEST.
    before = _at("2024-03-24T02:30:00", PARIS.tz)
    assert same_local_time([before], 7, PARIS.tz)[0] == _at("2024-03-31T03:00:00", PARIS.tz)


def test_features_follow_the_local_clock_on_a_50_period_day() -> None:
    coop = _coop(SYDNEY, dt.date(2025, 3, 1), dt.date(2025, 4, 10))
    origin = _at("2025-04-05T12:00:00", SYDNEY.tz)  # clocks go back at 03:00 on Sunday 6 April
    rows = build_features(coop, np.array([origin]))
    sunday = rows.X["dow"].to_numpy() == 6
    tod = rows.X["tod"].to_numpy()[sunday].astype(int)
    assert len(tod) == 50
    assert tod[:8].tolist() == [0, 1, 2, 3, 4, 5, 4, 5]  # 02:00-03:00 happens twice


def test_holidays_are_the_co_ops_own() -> None:
    bastille = _at("2024-07-13T12:00:00", PARIS.tz)
    coop = _coop(PARIS, dt.date(2024, 6, 1), dt.date(2024, 7, 20))
    rows = build_features(coop, np.array([bastille]))
    on_14th = rows.X["holiday"].to_numpy()[rows.X["doy"].to_numpy() == 196]  # 14 July 2024
    assert len(on_14th) == 48
    assert on_14th.all()
    england = Site("Bristol", 51.45, -2.59, tz="Europe/London", country="GB", subdiv="ENG")
    uk = build_features(CoopData("uk", coop.aggregates, england), np.array([bastille]))
    assert not uk.X["holiday"].to_numpy().any()


def test_origins_and_nudges_are_on_the_co_ops_clock() -> None:
    start = _at("2024-10-05T00:00:00", SYDNEY.tz)
    origins = noon_origins(start, start + 2 * 86400, SYDNEY.tz)
    assert [arrow.get(int(o)).to(SYDNEY.tz).hour for o in origins] == [12, 12]
    assert [arrow.get(int(o)).to("UTC").hour for o in origins] == [2, 1]  # AEST, then AEDT
    peak = Window("peak", _at("2024-10-07T17:30:00", SYDNEY.tz), _at("2024-10-07T19:30:00", SYDNEY.tz), False)
    (n,) = nudges([peak], now=int(origins[1]), tz=SYDNEY.tz)
    assert "tomorrow 17:30-19:30" in n.text


def test_a_place_must_exist() -> None:
    with pytest.raises(ValueError, match="not a time zone"):
        Site("x", 0, 0, tz="Europe/Nowhere", country="GB")
    with pytest.raises(ValueError, match="no public holidays"):
        Site("x", 0, 0, tz="UTC", country="XX")
    with pytest.raises(ValueError, match="not on Earth"):
        Site("x", 91, 0, tz="UTC", country="GB")

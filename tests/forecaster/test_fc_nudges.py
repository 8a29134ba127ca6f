"""Peak and surplus windows, their boundaries, and the nudge texts in local time."""

from __future__ import annotations

import arrow
import numpy as np
import pandas as pd
import pytest

from coopfed.forecaster import Nudge, Window, nudges, peak_threshold, reference_demand, windows
from coopfed.forecaster.timegrid import HALF_HOUR

UK = "Europe/London"


def _at(text: str) -> int:
    return arrow.get(text, tzinfo="Europe/London").int_timestamp


def _forecast(
    start: int, demand: list[float], generation: list[float], sun: list[bool] | None = None
) -> pd.DataFrame:
    n = len(demand)
    frame = pd.DataFrame(
        {"demand_kwh": demand, "generation_kwh": generation},
        index=pd.Index(start + np.arange(n) * HALF_HOUR, name="period"),
    )
    if sun is not None:
        frame["clearsky"] = np.where(sun, 300.0, 0.0)
    return frame


def test_windows_have_exact_boundaries() -> None:
    start = _at("2024-06-14T11:00:00")
    demand = [1, 1, 1, 1, 1, 1, 1, 9, 9, 1]
    generation = [0, 3, 3, 3, 0, 0, 0, 0, 0, 2]
    found = windows(_forecast(start, demand, generation, [True] * 10), peak_percentile=70)
    assert found == [
        Window("surplus", start + 1 * HALF_HOUR, start + 4 * HALF_HOUR, True),
        Window("peak", start + 7 * HALF_HOUR, start + 9 * HALF_HOUR, True),
        Window("surplus", start + 9 * HALF_HOUR, start + 10 * HALF_HOUR, True),
    ]
    longer = windows(_forecast(start, demand, generation), peak_percentile=70, min_periods=2)
    assert [(w.kind, w.daylight) for w in longer] == [("surplus", False), ("peak", False)]


def test_peak_threshold_comes_from_the_reference_when_given() -> None:
    start = _at("2024-06-14T11:00:00")
    fc = _forecast(start, [2, 3, 4, 5], [0, 0, 0, 0])
    assert [w.start for w in windows(fc, peak_percentile=50)] == [start + 2 * HALF_HOUR]
    assert windows(fc, peak_percentile=90, reference=np.array([1.0, 1.5, 1.8])) == [
        Window("peak", start, start + 4 * HALF_HOUR, False)
    ]
    assert peak_threshold(np.array([1, 2, 3, 4, np.nan]), 50) == 2.5
    with pytest.raises(ValueError, match="0-100"):
        peak_threshold(np.array([1.0]), 101)
    with pytest.raises(ValueError, match="no demand"):
        peak_threshold(np.array([np.nan]), 50)
    with pytest.raises(ValueError, match="consecutive"):
        windows(fc.iloc[[0, 2, 3]])


def test_reference_demand_is_the_measured_month_before_the_origin() -> None:
    origin = _at("2024-06-14T12:00:00")
    periods = origin + np.arange(-60 * 48, 10) * HALF_HOUR
    agg = pd.DataFrame({"demand": np.arange(len(periods), dtype=float)}, index=periods)
    ref = reference_demand(agg, origin, days=28)
    assert len(ref) == 28 * 48
    assert ref[-1] == agg.loc[origin - HALF_HOUR, "demand"]


def test_sunny_surplus_nudge_text_in_british_summer_time() -> None:
    now = _at("2024-06-13T12:00:00")
    w = Window("surplus", _at("2024-06-14T11:00:00"), _at("2024-06-14T14:30:00"), True)
    assert nudges([w], now=now, tz=UK) == [
        Nudge(
            "surplus",
            w.start,
            w.end,
            "Sunny tomorrow 11:00-14:30: a good time for the washing machine or EV charging",
        )
    ]
    assert w.start == arrow.get("2024-06-14T10:00:00Z").int_timestamp  # BST is UTC+1


def test_peak_and_night_surplus_texts_and_day_names() -> None:
    now = _at("2024-12-20T12:00:00")  # a Friday, GMT
    peak = Window("peak", _at("2024-12-20T17:00:00"), _at("2024-12-20T19:30:00"), False)
    windy = Window("surplus", _at("2024-12-22T02:00:00"), _at("2024-12-22T05:00:00"), False)
    late = Window("peak", _at("2024-12-21T22:30:00"), _at("2024-12-22T00:00:00"), False)
    span = Window("surplus", _at("2024-12-21T23:00:00"), _at("2024-12-22T01:30:00"), False)
    texts = [n.text for n in nudges([peak, windy, late, span], now=now, tz=UK)]
    assert texts == [
        "Busy today 17:00-19:30: if you can, run the washing machine or dishwasher at another time",
        "Local power to spare on Sunday 02:00-05:00: a good time for EV charging or the dishwasher",
        "Busy tomorrow 22:30-midnight: if you can, run the washing machine or dishwasher at another time",
        "Local power to spare tomorrow 23:00 to Sunday 01:30: a good time for EV charging or the dishwasher",
    ]
    with pytest.raises(ValueError, match="unknown window kind"):
        nudges([Window("storm", peak.start, peak.end, False)], now=now, tz=UK)


def test_times_follow_the_local_clock_across_the_autumn_change() -> None:
    """On 27 Oct 2024 clocks go back at 02:00 BST: 00:30 BST to 01:30 GMT is two hours."""
    start, end = _at("2024-10-27T00:30:00"), arrow.get("2024-10-27T01:30:00Z").int_timestamp
    assert (end - start) == 2 * 3600
    (n,) = nudges([Window("peak", start, end, False)], now=_at("2024-10-26T12:00:00"), tz=UK)
    assert n.text.startswith("Busy tomorrow 00:30-01:30:")

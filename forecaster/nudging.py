"""Peak and surplus windows from a forecast, and plain-language nudges in local time."""

from __future__ import annotations

from dataclasses import dataclass

import arrow
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from .timegrid import HALF_HOUR


@dataclass(frozen=True)
class Window:
    """A run of periods: start and end are UTC unix seconds, end exclusive."""

    kind: str  # "peak" (demand above the policy percentile) or "surplus" (generation > demand)
    start: int
    end: int
    daylight: bool  # the sun is up for most of it (so the spare power is likely solar)


@dataclass(frozen=True)
class Nudge:
    kind: str
    start: int
    end: int
    text: str


def peak_threshold(demand: ArrayLike, percentile: float) -> float:
    """Demand level above which a period is a peak: `percentile` (0-100) of `demand`."""
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be within 0-100, got {percentile}")
    known = np.asarray(demand, dtype=float)
    known = known[~np.isnan(known)]
    if len(known) == 0:
        raise ValueError("no demand values to take a percentile of")
    return float(np.percentile(known, percentile))


def flags(
    demand: ArrayLike, generation: ArrayLike, threshold: float | NDArray[np.float64]
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Per period: (peak, surplus) booleans."""
    d, g = np.asarray(demand, dtype=float), np.asarray(generation, dtype=float)
    return d > threshold, g > d


def _runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def windows(
    forecast: pd.DataFrame,
    *,
    peak_percentile: float = 90.0,
    reference: NDArray[np.float64] | None = None,
    min_periods: int = 1,
) -> list[Window]:
    """Peak and surplus windows of a forecast (index `period`; demand_kwh, generation_kwh).

    The peak threshold is `peak_percentile` (from policy data) of `reference` (recent measured
    demand, same units as demand_kwh) or, without one, of the forecast itself. Windows are
    returned in time order; runs shorter than `min_periods` are dropped.
    """
    periods = forecast.index.to_numpy(dtype=np.int64)
    if len(periods) == 0:
        return []
    if np.any(np.diff(periods) != HALF_HOUR):
        raise ValueError("forecast periods must be consecutive half-hours")
    demand = forecast["demand_kwh"].to_numpy(dtype=float)
    ref = demand if reference is None else reference
    threshold = peak_threshold(ref, peak_percentile)
    peak, surplus = flags(demand, forecast["generation_kwh"].to_numpy(dtype=float), threshold)
    sun = forecast["clearsky"].to_numpy(dtype=float) > 0 if "clearsky" in forecast else None
    return windows_from_flags(periods, peak, surplus, sun, min_periods)


def windows_from_flags(
    periods: NDArray[np.int64],
    peak: NDArray[np.bool_],
    surplus: NDArray[np.bool_],
    sun: NDArray[np.bool_] | None = None,
    min_periods: int = 1,
) -> list[Window]:
    """Windows from per-period flags of consecutive half-hours, in time order."""
    periods = np.asarray(periods, dtype=np.int64)
    sun = np.zeros(len(periods), dtype=bool) if sun is None else np.asarray(sun, dtype=bool)
    out = []
    for kind, mask in (("peak", peak), ("surplus", surplus)):
        for a, b in _runs(np.asarray(mask, dtype=bool)):
            if b - a >= min_periods:
                end = int(periods[b - 1]) + HALF_HOUR
                out.append(Window(kind, int(periods[a]), end, bool(sun[a:b].mean() > 0.5)))
    return sorted(out, key=lambda w: (w.start, w.kind))


def _day(moment: arrow.Arrow, now: arrow.Arrow, on: str = "on ") -> str:
    days = (moment.date() - now.date()).days
    if days == 0:
        return "today"
    if days == 1:
        return "tomorrow"
    return f"{on}{moment.format('dddd')}"


def _span(start: int, end: int, now: arrow.Arrow, tz: str) -> str:
    a = arrow.get(start).to(tz)
    b = arrow.get(end).to(tz)
    if b.date() == a.date():
        return f"{_day(a, now)} {a.format('HH:mm')}-{b.format('HH:mm')}"
    if b == b.floor("day") and (b.date() - a.date()).days == 1:
        return f"{_day(a, now)} {a.format('HH:mm')}-midnight"
    return f"{_day(a, now)} {a.format('HH:mm')} to {_day(b, now, on='')} {b.format('HH:mm')}"


def nudges(found: list[Window], *, now: int, tz: str) -> list[Nudge]:
    """Plain-language nudges for windows, with times on the local clock of `tz`.

    Who receives them (members who opted in) is for the node to decide.
    """
    here = arrow.get(now).to(tz)
    out = []
    for w in found:
        span = _span(w.start, w.end, here, tz)
        if w.kind == "surplus" and w.daylight:
            text = f"Sunny {span}: a good time for the washing machine or EV charging"
        elif w.kind == "surplus":
            text = f"Local power to spare {span}: a good time for EV charging or the dishwasher"
        elif w.kind == "peak":
            text = f"Busy {span}: if you can, run the washing machine or dishwasher at another time"
        else:
            raise ValueError(f"unknown window kind {w.kind!r}")
        out.append(Nudge(w.kind, w.start, w.end, text))
    return out


def reference_demand(aggregates: pd.DataFrame, origin: int, days: int = 28) -> NDArray[np.float64]:
    """Measured co-op demand (kWh) of the `days` before `origin`: the usual peak reference."""
    periods = aggregates.index.to_numpy(dtype=np.int64)
    known = (periods >= origin - days * 48 * HALF_HOUR) & (periods + HALF_HOUR <= origin)
    return aggregates["demand"].to_numpy(dtype=float)[known]

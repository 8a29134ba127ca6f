"""Peak and surplus windows from a forecast, how sure they are, and plain-language nudges in local time.

A window's confidence is the mean, over its half-hours, of the chance that the half-hour really
is a peak (demand above the threshold) or in surplus (generation above demand), read from the
forecast's P10/P50/P90: each quantity's distribution is taken as piecewise linear through them
(linear tails down to 0 and up to 1), demand and generation as independent.
"""

from __future__ import annotations

from dataclasses import dataclass

import arrow
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from .timegrid import HALF_HOUR

QUANTILES = (0.1, 0.5, 0.9)  # levels of a forecast's band
_U = np.linspace(0.05, 0.95, 19)  # levels at which demand is sampled for P(generation > demand)


def band_column(target: str, level: float) -> str:
    """`demand_p10_kwh`: the forecast frame's column of one target's quantile (co-op kWh)."""
    return f"{target}_p{round(level * 100)}_kwh"


@dataclass(frozen=True)
class Window:
    """A run of periods: start and end are UTC unix seconds, end exclusive."""

    kind: str  # "peak" (demand above the policy percentile) or "surplus" (generation > demand)
    start: int
    end: int
    daylight: bool  # the sun is up for most of it (so the spare power is likely solar)
    confidence: float | None = None  # chance (0-1) it really is busy / in surplus; None: no band


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


def _knots(q: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """x and F(x) of a piecewise-linear distribution through sorted P10/P50/P90."""
    lo, mid, hi = q
    xs = np.array([lo - (mid - lo) / 4, lo, mid, hi, hi + (hi - mid) / 4])
    return xs, np.array([0.0, *QUANTILES, 1.0])


def exceedance(q: NDArray[np.float64], x: ArrayLike) -> NDArray[np.float64]:
    """Per row of (rows x QUANTILES) quantiles: the chance the value exceeds x (scalar or per row)."""
    q = np.sort(np.asarray(q, dtype=float), axis=1)
    xb = np.broadcast_to(np.asarray(x, dtype=float), (len(q),))
    out = np.empty(len(q))
    for i, row in enumerate(q):
        xs, fs = _knots(row)
        out[i] = 1.0 - np.interp(xb[i], xs, fs)
    return out


def surplus_chance(demand_q: NDArray[np.float64], generation_q: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per row: the chance generation exceeds demand (independent, each through its quantiles)."""
    d = np.sort(np.asarray(demand_q, dtype=float), axis=1)
    out = np.empty(len(d))
    for i, row in enumerate(d):
        xs, fs = _knots(row)
        samples = np.interp(_U, fs, xs)  # demand at evenly spread levels
        out[i] = exceedance(np.repeat(generation_q[i : i + 1], len(_U), axis=0), samples).mean()
    return out


def _band(forecast: pd.DataFrame, target: str) -> NDArray[np.float64] | None:
    cols = [band_column(target, q) for q in QUANTILES]
    if not set(cols) <= set(forecast.columns):
        return None
    return forecast[cols].to_numpy(dtype=float)


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
    dq, gq = _band(forecast, "demand"), _band(forecast, "generation")
    chance = None
    if dq is not None and gq is not None:
        chance = {"peak": exceedance(dq, threshold), "surplus": surplus_chance(dq, gq)}
    return windows_from_flags(periods, peak, surplus, sun, min_periods, chance)


def windows_from_flags(
    periods: NDArray[np.int64],
    peak: NDArray[np.bool_],
    surplus: NDArray[np.bool_],
    sun: NDArray[np.bool_] | None = None,
    min_periods: int = 1,
    chance: dict[str, NDArray[np.float64]] | None = None,
) -> list[Window]:
    """Windows from per-period flags of consecutive half-hours, in time order; `chance` (per
    kind, per period) gives each window its confidence, the mean over its half-hours."""
    periods = np.asarray(periods, dtype=np.int64)
    sun = np.zeros(len(periods), dtype=bool) if sun is None else np.asarray(sun, dtype=bool)
    out = []
    for kind, mask in (("peak", peak), ("surplus", surplus)):
        for a, b in _runs(np.asarray(mask, dtype=bool)):
            if b - a >= min_periods:
                end = int(periods[b - 1]) + HALF_HOUR
                sure = None if chance is None else round(float(chance[kind][a:b].mean()), 3)
                out.append(Window(kind, int(periods[a]), end, bool(sun[a:b].mean() > 0.5), sure))
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


def sureness(confidence: float | None) -> str:
    """How sure, in words: "very likely" (3 in 4 or more), "likely" (1 in 2), else "possibly"."""
    if confidence is None:
        return ""
    if confidence >= 0.75:
        return "very likely"
    return "likely" if confidence >= 0.5 else "possibly"


def _lead(confidence: float | None, what: str) -> str:
    words = f"{sureness(confidence)} {what}".strip()
    return words[0].upper() + words[1:]


def nudges(found: list[Window], *, now: int, tz: str) -> list[Nudge]:
    """Plain-language nudges for windows, with times on the local clock of `tz`.

    Who receives them (members who opted in) is for the node to decide.
    """
    here = arrow.get(now).to(tz)
    out = []
    for w in found:
        span = _span(w.start, w.end, here, tz)
        if w.kind == "surplus" and w.daylight:
            text = (
                f"{_lead(w.confidence, 'sunny')} {span}: a good time for the washing machine or EV charging"
            )
        elif w.kind == "surplus":
            text = (
                f"{_lead(w.confidence, 'local power to spare')} {span}:"
                " a good time for EV charging or the dishwasher"
            )
        elif w.kind == "peak":
            text = (
                f"{_lead(w.confidence, 'busy')} {span}:"
                " if you can, run the washing machine or dishwasher at another time"
            )
        else:
            raise ValueError(f"unknown window kind {w.kind!r}")
        out.append(Nudge(w.kind, w.start, w.end, text))
    return out


def reference_demand(aggregates: pd.DataFrame, origin: int, days: int = 28) -> NDArray[np.float64]:
    """Measured co-op demand (kWh) of the `days` before `origin`: the usual peak reference."""
    periods = aggregates.index.to_numpy(dtype=np.int64)
    known = (periods >= origin - days * 48 * HALF_HOUR) & (periods + HALF_HOUR <= origin)
    return aggregates["demand"].to_numpy(dtype=float)[known]

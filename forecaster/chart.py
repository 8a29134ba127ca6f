"""PNG charts of forecast against actual, the P10-P90 band and peak and surplus windows shaded
(matplotlib Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from .evaluate import band_key
from .features import TARGETS
from .nudging import Window, band_column, flags, windows_from_flags

_SHADE = {"peak": ("tab:red", "peak window"), "surplus": ("tab:green", "surplus window")}


def _local(periods: ArrayLike, tz: str) -> pd.DatetimeIndex:
    utc = pd.to_datetime(np.asarray(periods, dtype=np.int64), unit="s", utc=True)
    return pd.DatetimeIndex(utc.tz_convert(tz))


def plot_forecast(
    forecast: pd.DataFrame,
    path: str | Path,
    *,
    actual: pd.DataFrame | None = None,
    found: Sequence[Window] = (),
    title: str = "",
    tz: str,
    unit: str = "kWh per half-hour",
) -> Path:
    """Forecast (index period; demand_kwh, generation_kwh, and the band's `demand_p10_kwh`...
    when it has one) against actual, windows shaded."""
    fig = Figure(figsize=(12, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = _local(forecast.index.to_numpy(), tz)
    ax.plot(x, forecast["demand_kwh"], color="tab:blue", label="demand forecast")
    ax.plot(x, forecast["generation_kwh"], color="tab:orange", label="generation forecast")
    for target, colour in zip(TARGETS, ("tab:blue", "tab:orange"), strict=True):
        lo, hi = band_column(target, 0.1), band_column(target, 0.9)
        if {lo, hi} <= set(forecast.columns):
            ax.fill_between(
                x, forecast[lo], forecast[hi], color=colour, alpha=0.18, lw=0, label=f"{target} P10-P90"
            )
    if actual is not None:
        xa = _local(actual.index.to_numpy(), tz)
        ax.plot(xa, actual["demand_kwh"], color="tab:blue", ls=":", label="demand actual")
        ax.plot(xa, actual["generation_kwh"], color="tab:orange", ls=":", label="generation actual")
    labelled = set()
    for w in found:
        colour, label = _SHADE[w.kind]
        span = _local(np.array([w.start, w.end]), tz)
        # matplotlib's stubs type the span's ends as float; like plot(), it converts dates itself.
        ax.axvspan(
            cast(float, span[0]),
            cast(float, span[1]),
            color=colour,
            alpha=0.12,
            lw=0,
            label=None if w.kind in labelled else label,
        )
        labelled.add(w.kind)
    ax.set_ylabel(unit)
    ax.set_xlabel(f"local time ({tz})")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small", ncols=3)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png")
    return out


def plot_backtest(
    predictions: pd.DataFrame,
    coop: str,
    path: str | Path,
    *,
    tz: str,
    model: str = "federated",
    days: int = 7,
) -> Path:
    """Day-ahead forecasts of the last `days` origins of a backtest for one co-op, stitched."""
    p = predictions[(predictions["coop"] == coop) & (predictions["day"] == 1)]
    if p.empty:
        raise ValueError(f"no day-ahead predictions for co-op {coop!r}")
    p = p[p["origin"].isin(np.sort(p["origin"].unique())[-days:])].sort_values("period")
    idx = pd.Index(p["period"].to_numpy(), name="period")
    fc = pd.DataFrame(
        {
            "demand_kwh": p[f"{model}_demand"].to_numpy(),
            "generation_kwh": p[f"{model}_generation"].to_numpy(),
            **{
                band_column(t, q): p[band_key(model, t, q)].to_numpy()
                for t in TARGETS
                for q in (0.1, 0.9)
                if band_key(model, t, q) in p
            },
        },
        index=idx,
    )
    act = pd.DataFrame(
        {"demand_kwh": p["actual_demand"].to_numpy(), "generation_kwh": p["actual_generation"].to_numpy()},
        index=idx,
    )
    peak, surplus = flags(
        fc["demand_kwh"].to_numpy(), fc["generation_kwh"].to_numpy(), p["peak_threshold"].to_numpy()
    )
    found = windows_from_flags(idx.to_numpy(), peak, surplus)
    title = f"{coop}: day-ahead {model} forecast vs actual (windows from the forecast)"
    return plot_forecast(
        fc, path, actual=act, found=found, title=title, tz=tz, unit="kWh per member per half-hour"
    )

"""Making the co-op's forecast: verified models over its own aggregates, peak and surplus windows
at the policy's percentile, kept as the latest forecast and announced to nudge streams."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from coopfed.forecaster import Window, nudges, peak_threshold, predict, reference_demand, windows
from coopfed.forecaster.nudging import QUANTILES, band_column
from coopfed.node.errors import FailedPrecondition
from coopfed.node.forecast.data import history_window
from coopfed.node.forecast.store import StoredForecast, WindowRecord
from coopfed.node.model import HALF_HOUR, Flow

if TYPE_CHECKING:
    from coopfed.node.forecast.context import ForecastContext
    from coopfed.node.forecast.data import ForecastData
    from coopfed.node.forecast.models import Ensemble, Models


BAND_COLUMNS = tuple(band_column(t, q) for t in ("demand", "generation") for q in QUANTILES)


class Forecasting:
    """The co-op's forecasts, built once with the aggregates and models they are made from."""

    def __init__(
        self, *, data: ForecastData, models: Models, forecast: ForecastContext, node_id: str
    ) -> None:
        self.data, self.models, self.forecast, self.node_id = data, models, forecast, node_id

    def default_origin(self, now: int | None = None) -> int:
        """Now (floored to the half-hour), or the end of the data held if that is earlier."""
        now = int(time.time()) if now is None else now
        now -= now % HALF_HOUR
        try:
            held = self.data.own_aggregates(Flow.INTERNAL, *history_window(now)).coop.aggregates
        except FailedPrecondition:  # nothing recent: the data held ends earlier
            held = self.data.own_aggregates(Flow.INTERNAL, None, now).coop.aggregates
        return min(now, int(held.index[-1]) + HALF_HOUR)

    def make_forecast(
        self, *, origin: int | None = None, mode: str | None = None, ensemble: Ensemble | None = None
    ) -> tuple[StoredForecast, Ensemble]:
        """Forecast the 48 h after `origin` (default: `default_origin`), keep it, wake the streams."""
        policy = self.data.forecast_policy()
        ensemble = ensemble or self.models.load_ensemble(mode)
        origin = self.default_origin() if origin is None else origin
        if origin % HALF_HOUR:
            raise FailedPrecondition("a forecast origin must be a half-hour boundary", code="forecast.origin")
        history = self.data.own_aggregates(Flow.INTERNAL, *history_window(origin)).coop
        try:
            frame = predict(ensemble.forecaster, history, origin)
        except ValueError as exc:
            raise FailedPrecondition(
                f"cannot forecast from {origin}: {exc}", code="forecast.history"
            ) from exc
        reference = reference_demand(history.aggregates, origin)
        if len(reference) == 0:
            reference = frame["demand_kwh"].to_numpy()
        found = windows(frame, peak_percentile=policy.peak_percentile, reference=reference)
        forecast = StoredForecast(
            coop_id=self.node_id,
            made_at=int(time.time()),
            origin=origin,
            periods=tuple(int(p) for p in frame.index),
            demand_kwh=tuple(float(v) for v in frame["demand_kwh"]),
            generation_kwh=tuple(float(v) for v in frame["generation_kwh"]),
            members=int(frame["members"].iloc[0]),
            peak_percentile=policy.peak_percentile,
            peak_threshold_kwh=peak_threshold(reference, policy.peak_percentile),
            windows=tuple(WindowRecord(w.kind, w.start, w.end, w.daylight, w.confidence) for w in found),
            mode=ensemble.mode,
            models=ensemble.records,
            band={c: tuple(float(v) for v in frame[c]) for c in BAND_COLUMNS if c in frame},
        )
        saved = self.forecast.store.save_forecast(forecast)
        self.forecast.hub.notify()
        return saved, ensemble


def nudge_texts(found: tuple[WindowRecord, ...], tz: str, now: int | None = None) -> list[str]:
    """Plain-language nudges, worded for the moment they are read ("today", "tomorrow")."""
    now = int(time.time()) if now is None else now
    ws = [Window(w.kind, w.start, w.end, w.daylight, w.confidence) for w in found]
    return [n.text for n in nudges(ws, now=now, tz=tz)]


def forecast_frame(forecast: StoredForecast) -> pd.DataFrame:
    """The stored forecast as the forecaster's frame (for charts), with its band if it has one."""
    return pd.DataFrame(
        {
            "demand_kwh": np.asarray(forecast.demand_kwh),
            "generation_kwh": np.asarray(forecast.generation_kwh),
            **{c: np.asarray(v) for c, v in forecast.band.items()},
        },
        index=pd.Index(np.asarray(forecast.periods, dtype=np.int64), name="period"),
    )

"""Protobuf conversion for forecasts, windows, nudges and model records."""

from __future__ import annotations

from datetime import datetime

from coopfed.node.convert import timestamp
from coopfed.node.forecast.store import ModelRecord, StoredForecast, WindowRecord
from coopfed.v1 import forecast_pb2 as pb

_KINDS = {"peak": pb.WINDOW_KIND_PEAK, "surplus": pb.WINDOW_KIND_SURPLUS}
_MODES = {"pooled": pb.TRAINING_MODE_POOLED, "federated": pb.TRAINING_MODE_FEDERATED}


def model_to_proto(record: ModelRecord) -> pb.ModelInfo:
    return pb.ModelInfo(
        trained_by=record.trained_by,
        version=record.version,
        kind=record.kind,
        trained_at=timestamp(datetime.fromisoformat(record.trained_at)),
        training_rows=record.training_rows,
        weight=record.weight,
        contributors=list(record.contributors),
        sha256=record.sha256,
    )


def window_to_proto(window: WindowRecord, text: str) -> pb.ForecastWindow:
    return pb.ForecastWindow(
        kind=_KINDS[window.kind],
        start_unix=window.start,
        end_unix=window.end,
        daylight=window.daylight,
        nudge=text,
        confidence=window.confidence,
    )


def periods_to_proto(forecast: StoredForecast) -> list[pb.ForecastPeriod]:
    """Half-hours with their band (proto fields named as the band's columns)."""
    out = []
    for i, (p, d, g) in enumerate(
        zip(forecast.periods, forecast.demand_kwh, forecast.generation_kwh, strict=True)
    ):
        band = {column: values[i] for column, values in forecast.band.items()}
        out.append(pb.ForecastPeriod(period_start_unix=p, demand_kwh=d, generation_kwh=g, **band))
    return out


def forecast_to_proto(forecast: StoredForecast, texts: list[str]) -> pb.Forecast:
    """`texts`: one nudge per window, worded for now."""
    return pb.Forecast(
        coop_id=forecast.coop_id,
        sequence=forecast.sequence,
        made_at=timestamp(forecast.made_at),
        origin=timestamp(forecast.origin),
        periods=periods_to_proto(forecast),
        windows=[window_to_proto(w, t) for w, t in zip(forecast.windows, texts, strict=True)],
        model=pb.ForecastModel(
            mode=_MODES[forecast.mode], models=[model_to_proto(m) for m in forecast.models]
        ),
        peak_percentile=forecast.peak_percentile,
        peak_threshold_kwh=forecast.peak_threshold_kwh,
        members=forecast.members,
    )


def nudge_to_proto(window: WindowRecord, text: str, forecast: StoredForecast) -> pb.Nudge:
    return pb.Nudge(
        kind=_KINDS[window.kind],
        start_unix=window.start,
        end_unix=window.end,
        text=text,
        forecast_sequence=forecast.sequence,
        forecast_made_at=timestamp(forecast.made_at),
    )

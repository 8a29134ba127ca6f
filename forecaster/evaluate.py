"""Rolling-origin backtests of pooled, federated and local models against the simple baselines.

Baselines, all on the co-op's local clock and from what was measured by the origin: seasonal-naive
by day (the latest same half-hour), by week (the same half-hour a week before the target), and the
mean of the last seven same half-hours. Weather: forecasts issued by each origin where the co-op
kept them; otherwise observed weather stands in for them, and the report says so.
The models' P10-P90 bands are scored by coverage (80 % when calibrated) and pinball loss.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.typing import NDArray

from .features import HORIZON, TARGETS, WEEK, CoopData, FeatureRows, build_features
from .nudging import QUANTILES, flags, peak_threshold
from .timegrid import HALF_HOUR, PERIODS_PER_DAY, local_day_offset, noon_origins
from .train import BAND, Forecaster, Progress, live_rows, train_local, train_pooled
from .weather_sources import observed_as_forecasts

BASELINES = {"seasonal-naive-day": "last_same", "seasonal-naive-week": "lag7", "7-day-mean": "mean7_same"}
MODELS = (*BASELINES, "local", "pooled", "federated")
WEEKLY, MEAN7 = "seasonal-naive-week", "7-day-mean"
REFERENCE_DAYS = 28  # history behind a peak threshold
_ACTUAL = [f"actual_{t}" for t in TARGETS]


def metrics(pred: NDArray[np.float64], actual: NDArray[np.float64]) -> dict[str, float]:
    """MAE, RMSE, MAE / mean actual (nMAE) over the rows where both are known."""
    ok = ~(np.isnan(pred) | np.isnan(actual))
    err = pred[ok] - actual[ok]
    if len(err) == 0:
        return {"mae": np.nan, "rmse": np.nan, "nmae": np.nan, "n": 0}
    mae = float(np.mean(np.abs(err)))
    mean = float(np.mean(np.abs(actual[ok])))
    return {
        "mae": mae,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "nmae": mae / mean if mean else np.nan,
        "n": len(err),
    }


def band_scores(q: NDArray[np.float64], actual: NDArray[np.float64]) -> dict[str, float]:
    """For (rows x QUANTILES) forecasts: the share of actuals within P10-P90 and the pinball loss
    (mean over the quantiles). Coverage counts only the rows a band can miss (`live_rows`)."""
    ok = ~(np.isnan(actual) | np.isnan(q).any(axis=1))
    q, a = q[ok], actual[ok]
    if len(a) == 0:
        return {"coverage": np.nan, "pinball": np.nan}
    diff = a[:, None] - q
    alpha = np.asarray(QUANTILES)[None, :]
    pinball = float(np.mean(np.maximum(alpha * diff, (alpha - 1) * diff)))
    live = live_rows(q[:, -1], a)
    inside = (a >= q[:, 0]) & (a <= q[:, -1])
    return {"coverage": float(inside[live].mean()) if live.any() else np.nan, "pinball": pinball}


def precision_recall(pred: NDArray[np.bool_], actual: NDArray[np.bool_]) -> dict[str, float]:
    """Period-level precision and recall of predicted event periods (peaks or surpluses)."""
    hit = int(np.sum(pred & actual))
    return {
        "precision": hit / int(pred.sum()) if pred.any() else np.nan,
        "recall": hit / int(actual.sum()) if actual.any() else np.nan,
        "predicted": int(pred.sum()),
        "actual": int(actual.sum()),
    }


@dataclass
class BacktestReport:
    """Forecasts of every model for every (co-op, origin, period), and their scores."""

    predictions: pd.DataFrame  # coop, origin, period, day, actual_<t>, <model>_<t> (kWh/member)
    peak_percentile: float
    train_seconds: dict[str, float] = field(default_factory=dict)
    weather: dict[str, str] = field(default_factory=dict)  # per co-op: what weather the models saw

    def _frame(self, coop: str, window: str) -> pd.DataFrame:
        p = self.predictions
        if coop != "all":
            p = p[p["coop"] == coop]
        return p[p["day"] == 1] if window == "day-ahead" else p

    def score(
        self, model: str, target: str, coop: str = "all", window: str = "day-ahead"
    ) -> dict[str, float]:
        p = self._frame(coop, window)
        actual = p[f"actual_{target}"].to_numpy()
        m = metrics(p[f"{model}_{target}"].to_numpy(), actual)
        week = metrics(p[f"{WEEKLY}_{target}"].to_numpy(), actual)["mae"]
        mean7 = metrics(p[f"{MEAN7}_{target}"].to_numpy(), actual)["mae"]
        return {
            **m,
            "vs_naive": m["mae"] / week if week else np.nan,  # vs weekly seasonal-naive
            "vs_mean7": m["mae"] / mean7 if mean7 else np.nan,
        }

    def band(self, model: str, target: str, coop: str = "all", window: str = "day-ahead") -> dict[str, float]:
        """Coverage of the model's P10-P90 band and its pinball loss (NaN for the baselines)."""
        p = self._frame(coop, window)
        cols = [band_key(model, target, q) for q in QUANTILES]
        if not set(cols) <= set(p.columns):
            return {"coverage": np.nan, "pinball": np.nan}
        return band_scores(p[cols].to_numpy(dtype=float), p[f"actual_{target}"].to_numpy(dtype=float))

    def events(self, model: str, kind: str, coop: str = "all", window: str = "day-ahead") -> dict[str, float]:
        """Precision and recall of the model's peak or surplus periods."""
        p = self._frame(coop, window)
        thr = p["peak_threshold"].to_numpy()
        pred = flags(p[f"{model}_demand"].to_numpy(), p[f"{model}_generation"].to_numpy(), thr)
        act = flags(p["actual_demand"].to_numpy(), p["actual_generation"].to_numpy(), thr)
        i = ("peak", "surplus").index(kind)
        return precision_recall(pred[i], act[i])

    def to_dict(self) -> dict[str, Any]:
        coops = ["all", *sorted(self.predictions["coop"].unique())]
        return {
            "peak_percentile": self.peak_percentile,
            "train_seconds": self.train_seconds,
            "weather": self.weather,
            "origins": int(self.predictions["origin"].nunique()),
            "scores": [
                {
                    "model": m,
                    "target": t,
                    "coop": c,
                    "window": w,
                    **self.score(m, t, c, w),
                    **self.band(m, t, c, w),
                }
                for m in MODELS
                for t in TARGETS
                for c in coops
                for w in ("day-ahead", "48h")
            ],
            "events": [
                {"model": m, "kind": k, "coop": c, **self.events(m, k, c)}
                for m in MODELS
                for k in ("peak", "surplus")
                for c in coops
            ],
        }

    def to_table(self, coop: str = "all", window: str = "day-ahead") -> str:
        """Fixed-width table: one row per model, errors in kWh per member per half-hour."""
        head = (
            f"{'model':<20}{'demand MAE':>11}{'RMSE':>8}{'nMAE':>7}{'vs week':>8}{'vs 7d':>7}"
            f"{'gen MAE':>9}{'nMAE':>7}{'vs week':>8}{'peak P/R':>12}{'surplus P/R':>13}"
        )
        lines = [f"{window}, co-op: {coop}, kWh per member per half-hour", head, "-" * len(head)]
        for m in MODELS:
            d, g = self.score(m, "demand", coop, window), self.score(m, "generation", coop, window)
            pk, sp = self.events(m, "peak", coop, window), self.events(m, "surplus", coop, window)
            lines.append(
                f"{m:<20}{d['mae']:>11.4f}{d['rmse']:>8.4f}{d['nmae']:>7.1%}{d['vs_naive']:>8.2f}"
                f"{d['vs_mean7']:>7.2f}{g['mae']:>9.4f}{g['nmae']:>7.1%}{g['vs_naive']:>8.2f}"
                f"{_pr(pk):>12}{_pr(sp):>13}"
            )
        lines += ["", f"P10-P90 band, target {BAND:.0%} coverage; pinball loss (kWh per member)"]
        lines.append(f"{'model':<20}{'demand cover':>13}{'pinball':>9}{'gen cover':>11}{'pinball':>9}")
        for m in ("local", "pooled", "federated"):
            d, g = self.band(m, "demand", coop, window), self.band(m, "generation", coop, window)
            lines.append(
                f"{m:<20}{d['coverage']:>13.1%}{d['pinball']:>9.4f}{g['coverage']:>11.1%}{g['pinball']:>9.4f}"
            )
        notes = self.weather if coop == "all" else {coop: self.weather.get(coop, "")}
        lines += [f"weather, {c}: {why}" for c, why in notes.items() if why]
        return "\n".join(lines)


def band_key(model: str, target: str, level: float) -> str:
    """Prediction column of a model's quantile: `pooled_demand_p10`."""
    return f"{model}_{target}_p{round(level * 100)}"


def _pr(e: Mapping[str, float]) -> str:
    return f"{e['precision']:.2f}/{e['recall']:.2f}"


def _thresholds(rows: FeatureRows, coop: CoopData, percentile: float) -> NDArray[np.float64]:
    """Per row: peak threshold from the co-op's per-member demand in the 28 days before the origin."""
    agg = coop.aggregates
    pm = (agg["demand"] / agg["members"]).to_numpy(dtype=float)
    periods = agg.index.to_numpy(dtype=np.int64)
    out: dict[int, float] = {}
    for o in np.unique(rows.origin):
        lo, hi = np.searchsorted(periods, [o - REFERENCE_DAYS * PERIODS_PER_DAY * HALF_HOUR, o])
        out[o] = peak_threshold(pm[lo:hi], percentile) if hi > lo else np.nan
    return np.array([out[o] for o in rows.origin])


def _fold_frame(
    coop: CoopData, origins: NDArray[np.int64], forecasters: Mapping[str, Forecaster], percentile: float
) -> pd.DataFrame:
    rows = build_features(coop, origins)
    frame = pd.DataFrame(
        {
            "coop": coop.coop_id,
            "origin": rows.origin,
            "period": rows.period,
            "day": local_day_offset(rows.origin, rows.period, coop.site.tz),
            "peak_threshold": _thresholds(rows, coop, percentile),
        }
    )
    actual = rows.actual
    preds = {name: fc.predict_rows(rows) for name, fc in forecasters.items()}
    bands = {name: fc.band_rows(rows) for name, fc in forecasters.items()}
    for name, feature in BASELINES.items():
        preds[name] = rows.X[[f"d_{feature}", f"g_{feature}"]].to_numpy(dtype=float) * rows.scale
    for j, t in enumerate(TARGETS):
        frame[f"actual_{t}"] = actual[:, j]
        for name, pred in preds.items():
            frame[f"{name}_{t}"] = pred[:, j]
        for name, band in bands.items():
            for i, level in enumerate(QUANTILES if band is not None else ()):
                frame[band_key(name, t, level)] = band[:, j, i]  # type: ignore[index]
    return frame


def backtest(
    coops: Sequence[CoopData],
    signing_keys: Mapping[str, Ed25519PrivateKey],
    *,
    test_start: int,
    test_end: int | None = None,
    folds: int = 1,
    peak_percentile: float = 90.0,
    progress: Progress | None = None,
    **train_args: Any,
) -> BacktestReport:
    """Rolling-origin backtest over [test_start, test_end): daily noon origins, split into
    `folds` blocks; before each block every model is retrained on data measured before it.
    The pooled model is trained and signed by the first co-op; models are verified before use."""
    end = test_end or min(int(c.aggregates.index[-1]) + HALF_HOUR for c in coops)
    # Origins whose next local day is measured; later periods without a reading are dropped.
    last = end - 36 * 3600
    origins = noon_origins(test_start, last, coops[0].site.tz)  # fold boundaries
    if len(origins) == 0 or folds < 1:
        raise ValueError("the test window holds no forecast origin")
    if test_start - int(max(c.aggregates.index[0] for c in coops)) < 3 * WEEK * HALF_HOUR:
        raise ValueError("need at least three weeks of aggregates before the test window")
    trusted = {cid: k.public_key() for cid, k in signing_keys.items()}
    coops, weather = zip(*(_honest_weather(c) for c in coops), strict=True)
    parts, seconds = [], {"pooled": 0.0, "federated": 0.0, "federated_slowest": 0.0}
    blocks = [b for b in np.array_split(origins, folds) if len(b)]
    for i, block in enumerate(blocks):
        until = int(block[0])
        block_end = int(blocks[i + 1][0]) - 1 if i + 1 < len(blocks) else last
        tick = time.perf_counter()
        pooled = train_pooled(
            coops,
            signing_keys[coops[0].coop_id],
            trainer_id=coops[0].coop_id,
            until=until,
            progress=progress,
            **train_args,
        )
        seconds["pooled"] += time.perf_counter() - tick
        local, slowest = [], 0.0
        for c in coops:
            tick = time.perf_counter()
            local.append(
                train_local(c, signing_keys[c.coop_id], until=until, progress=progress, **train_args)
            )
            slowest = max(slowest, time.perf_counter() - tick)
            seconds["federated"] += time.perf_counter() - tick
        seconds["federated_slowest"] += slowest  # wall time when the co-ops train in parallel
        shared = {
            "pooled": Forecaster.from_artifacts([pooled], trusted),
            "federated": Forecaster.from_artifacts(local, trusted),
        }
        for coop, art in zip(coops, local, strict=True):
            own = {**shared, "local": Forecaster.from_artifacts([art], trusted)}
            own_origins = noon_origins(until, block_end, coop.site.tz)  # noon on the co-op's clock
            frame = _fold_frame(coop, own_origins, own, peak_percentile)
            parts.append(frame[(frame["period"] < end) & frame[_ACTUAL].notna().all(axis=1)])
        if progress:
            progress("backtest folds", i + 1, folds)
    predictions = pd.concat(parts, ignore_index=True)
    notes = {c.coop_id: why for c, why in zip(coops, weather, strict=True)}
    return BacktestReport(predictions, peak_percentile, seconds, notes)


def _honest_weather(coop: CoopData) -> tuple[CoopData, str]:
    """The co-op with the weather its models may see, and a line saying which it is."""
    if coop.weather_forecast is not None and len(coop.weather_forecast):
        return coop, "forecasts issued by each origin"
    if coop.weather is not None and len(coop.weather):
        periods = coop.aggregates.index.to_numpy(dtype=np.int64)
        origins = noon_origins(int(periods[0]), int(periods[-1]), coop.site.tz)
        stand_in = observed_as_forecasts(coop.weather, list(origins), HORIZON)
        why = "no forecasts kept: observed weather stands in for them (optimistic)"
        return replace(coop, weather_forecast=stand_in), why
    sky = "clear-sky and sun position" if coop.astronomy else "calendar"
    return coop, f"none (features: {sky} only)"

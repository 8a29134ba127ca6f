"""XGBoost training, pooled and by model federation, into signed artifacts; verified ensembles predict.

Each model is a squared-error booster for the point forecast (both targets) and, per target, a
quantile booster (XGBoost's quantile loss, P10/P50/P90 in one booster) for the band: smaller,
on half the rows per tree and two thirds of the rounds (a band needs less precision than the
point forecast, and the quantile loss trains about three times slower).
The quantile boosters train on all but every second of the last twelve weeks' origin days (of
the later half, with fewer days); on those 42 held-out days the band is widened (or narrowed) by split
conformal calibration until it holds 80 % of the actuals, and the factor is signed with the
model. Recent days calibrate because the band's width follows the season. The band never
crosses: the quantiles are sorted.

`fit` takes a TrainingSpec (feature frame + label matrix, what a DMatrix or DaskDMatrix is built
from) and XGBoost params, and hands them to a trainer; the default trains in process. A cluster
trainer with the same signature can wrap `xgboost.dask.train` (see README).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import numpy as np
import pandas as pd
import xgboost as xgb
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from numpy.typing import NDArray

from .artifact import ArtifactMetadata, ModelArtifact, sign_artifact
from .errors import ArtifactVerificationError
from .features import (
    FEATURES,
    HORIZON,
    SHARES,
    TARGETS,
    TECHNOLOGIES,
    WEEK,
    CoopData,
    FeatureRows,
    build_features,
    mix,
)
from .features import concat_rows as _concat
from .nudging import QUANTILES, band_column
from .timegrid import HALF_HOUR, noon_origins

Progress = Callable[[str, int, int], None]  # (stage, done, total)
DEFAULT_ROUNDS = 150
BAND = 0.8  # share of actuals the P10-P90 band should hold
CALIBRATION_DAYS, CALIBRATION_EVERY = 84, 2  # every second of the last 84 origin days calibrates
QUANTILE_PARAMS: dict[str, Any] = {
    "objective": "reg:quantileerror",
    "quantile_alpha": list(QUANTILES),
    "max_depth": 5,
    "subsample": 0.5,
    "max_bin": 64,
}
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "reg:squarederror",
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.1,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5,
    "max_bin": 256,
    "seed": 0,
    "nthread": 2,
}


@cache
def cuda_available() -> bool:
    """True when this XGBoost build can train on a visible CUDA device."""
    if not xgb.build_info().get("USE_CUDA") or shutil.which("nvidia-smi") is None:
        return False
    try:
        probe = xgb.DMatrix(np.zeros((2, 1)), label=np.zeros(2))
        xgb.train({"device": "cuda", "tree_method": "hist"}, probe, num_boost_round=1)
    except xgb.core.XGBoostError:
        return False
    return True


def resolve_device(device: str | None = None, allow_gpu: bool = False) -> str:
    """ "cuda" when asked for, or when allowed and a CUDA device is present; else "cpu"."""
    if device is not None:
        if device != "cpu" and not device.startswith("cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:n]', got {device!r}")
        return device
    return "cuda" if allow_gpu and cuda_available() else "cpu"


@dataclass(frozen=True)
class TrainingSpec:
    """Training input: features X (columns FEATURES) and labels y (rows x targets), no NaN labels;
    `origin` (per row, when known) chooses the days that calibrate the band."""

    X: pd.DataFrame
    y: NDArray[np.float64]
    feature_names: tuple[str, ...] = FEATURES
    origin: NDArray[np.int64] | None = None

    @classmethod
    def from_rows(cls, rows: FeatureRows) -> TrainingSpec:
        # numpy's stubs cannot tell that any(axis=1) of a 2-D array is an array, not a scalar.
        keep = cast(NDArray[np.bool_], ~np.isnan(rows.y).any(axis=1))
        if not keep.any():
            raise ValueError("no training rows with measured targets")
        return cls(rows.X.loc[keep].reset_index(drop=True), rows.y[keep], origin=rows.origin[keep])

    def subset(self, mask: NDArray[np.bool_], target: int) -> TrainingSpec:
        """The rows of `mask`, labelled with one target."""
        origin = None if self.origin is None else self.origin[mask]
        return TrainingSpec(
            self.X.loc[mask].reset_index(drop=True), self.y[mask, target], self.feature_names, origin
        )

    @property
    def rows(self) -> int:
        return len(self.X)


class _ProgressCallback(xgb.callback.TrainingCallback):
    def __init__(self, progress: Progress, stage: str, rounds: int) -> None:
        super().__init__()
        self.progress, self.stage, self.rounds = progress, stage, rounds

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        self.progress(self.stage, epoch + 1, self.rounds)
        return False  # never stop early


Trainer = Callable[[TrainingSpec, dict[str, Any], int, list[xgb.callback.TrainingCallback]], bytes]


def local_trainer(
    spec: TrainingSpec, params: dict[str, Any], rounds: int, callbacks: list[xgb.callback.TrainingCallback]
) -> bytes:
    """Train in this process; returns the booster as UBJSON bytes."""
    dtrain = xgb.DMatrix(spec.X, label=spec.y, feature_names=list(spec.feature_names))
    booster = xgb.train(params, dtrain, num_boost_round=rounds, callbacks=callbacks)
    return bytes(booster.save_raw("ubj"))


def fit(
    spec: TrainingSpec,
    params: Mapping[str, Any] | None = None,
    rounds: int = DEFAULT_ROUNDS,
    *,
    device: str | None = None,
    allow_gpu: bool = False,
    progress: Progress | None = None,
    stage: str = "train",
    trainer: Trainer = local_trainer,
) -> tuple[bytes, dict[str, Any]]:
    """Train one booster; returns its bytes and the params used (defaults, then `params`)."""
    merged = {**DEFAULT_PARAMS, **(params or {})}
    merged["device"] = resolve_device(device or merged.get("device"), allow_gpu)
    callbacks: list[xgb.callback.TrainingCallback] = (
        [_ProgressCallback(progress, stage, rounds)] if progress else []
    )
    return trainer(spec, merged, rounds, callbacks), merged


def calibration_days(origin: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Rows of every second of the last 84 origin days (of the later half, with fewer days), held
    out to calibrate the band: 42 days, so that a few days' weather does not set the factor."""
    days = np.unique(origin)
    if len(days) < 4 * CALIBRATION_EVERY:
        return np.zeros(len(origin), dtype=bool)  # too few days to spare: the band stays as fitted
    held = days[::-1][: min(CALIBRATION_DAYS, len(days) // 2) : CALIBRATION_EVERY]
    return np.isin(origin, held)


def band_widening(q: NDArray[np.float64], actual: NDArray[np.float64], band: float = BAND) -> float:
    """Split conformal factor c (quantile regression, scaled by width): P10 - c w and P90 + c w,
    w = P90 - P10, hold `band` of the actuals. Rows left out by `live_rows` are covered whatever c
    is; c stays in [-0.45, 5], so the order is kept."""
    lo, hi = q[:, 0], q[:, -1]
    live = live_rows(hi, actual)
    if live.sum() < 50:
        return 0.0
    width = np.maximum(hi - lo, 1e-6)[live]
    score = np.maximum(lo[live] - actual[live], actual[live] - hi[live]) / width
    level = min(1.0, np.ceil((len(score) + 1) * band) / len(score))
    return float(np.clip(np.quantile(score, level), -0.45, 5.0))


def live_rows(p90: NDArray[np.float64], actual: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Rows whose band can miss: P90 or the actual above 0.1 % of the largest actual. The rest
    (night, no wind: nothing forecast, nothing measured) are covered by any band."""
    tol = 1e-3 * float(np.nanmax(np.abs(actual), initial=0.0))
    live: NDArray[np.bool_] = (p90 > tol) | (np.abs(actual) > tol)
    return live


def widen(q: NDArray[np.float64], c: float) -> NDArray[np.float64]:
    """Sorted quantiles (rows x levels), the outer ones moved out by c x (P90 - P10)."""
    q = np.sort(q, axis=1)
    width = q[:, -1] - q[:, 0]
    q[:, 0] -= c * width
    q[:, -1] += c * width
    return q


def fit_band(
    spec: TrainingSpec,
    params: Mapping[str, Any] | None = None,
    rounds: int = DEFAULT_ROUNDS,
    *,
    stage: str = "train",
    **fit_args: Any,
) -> tuple[tuple[bytes, ...], tuple[float, ...]]:
    """Per target: a P10/P50/P90 booster and its conformal widening (see the module doc)."""
    held = calibration_days(spec.origin) if spec.origin is not None else np.zeros(spec.rows, dtype=bool)
    blobs, widening = [], []
    for j, target in enumerate(TARGETS):
        blob, _ = fit(
            spec.subset(~held, j), {**(params or {}), **QUANTILE_PARAMS}, max(1, rounds * 2 // 3),
            stage=f"{stage} {target} band", **fit_args,
        )  # fmt: skip
        blobs.append(blob)
        if held.any():
            booster = xgb.Booster(model_file=bytearray(blob))
            dm = xgb.DMatrix(spec.X.loc[held], feature_names=list(spec.feature_names))
            q = np.sort(booster.predict(dm).reshape(-1, len(QUANTILES)), axis=1)
            widening.append(band_widening(q, spec.y[held, j]))
        else:
            widening.append(0.0)
    return tuple(blobs), tuple(widening)


def training_origins(coop: CoopData, until: int | None = None) -> NDArray[np.int64]:
    """Daily local-noon origins with two weeks of history whose 48 h targets end before `until`."""
    periods = coop.aggregates.index.to_numpy(dtype=np.int64)
    end = int(periods[-1]) + HALF_HOUR if until is None else until
    return noon_origins(int(periods[0]) + 2 * WEEK * HALF_HOUR, end - HORIZON * HALF_HOUR, coop.site.tz)


def training_rows(coop: CoopData, until: int | None = None) -> FeatureRows:
    return build_features(coop, training_origins(coop, until))


def _sign(
    blob: bytes,
    band: tuple[tuple[bytes, ...], tuple[float, ...]],
    params: dict[str, Any],
    spec: TrainingSpec,
    coop_id: str,
    kind: str,
    contributors: list[str],
    version: int,
    key: Ed25519PrivateKey,
    technology: dict[str, float],
) -> ModelArtifact:
    meta = {
        "version": version,
        "coop_id": coop_id,
        "kind": kind,
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "feature_names": tuple(spec.feature_names),
        "targets": TARGETS,
        "training_rows": spec.rows,
        "contributors": tuple(contributors),
        "xgboost_version": xgb.__version__,
        "params": params,
        "quantiles": QUANTILES,
        "band_widening": band[1],
        "technology": technology,
    }
    return sign_artifact(blob, meta, key, band[0])


def train_local(
    coop: CoopData,
    signing_key: Ed25519PrivateKey,
    *,
    until: int | None = None,
    version: int = 1,
    params: Mapping[str, Any] | None = None,
    rounds: int = DEFAULT_ROUNDS,
    **fit_args: Any,
) -> ModelArtifact:
    """One co-op trains on its own aggregates and signs the booster (model federation member)."""
    spec = TrainingSpec.from_rows(training_rows(coop, until))
    stage = f"train {coop.coop_id}"
    blob, used = fit(spec, params, rounds, stage=stage, **fit_args)
    band = fit_band(spec, params, rounds, stage=stage, **fit_args)
    tech = coop.technology_mix()
    return _sign(blob, band, used, spec, coop.coop_id, "local", [coop.coop_id], version, signing_key, tech)


def train_pooled(
    coops: Sequence[CoopData],
    signing_key: Ed25519PrivateKey,
    *,
    trainer_id: str,
    until: int | None = None,
    version: int = 1,
    params: Mapping[str, Any] | None = None,
    rounds: int = DEFAULT_ROUNDS,
    **fit_args: Any,
) -> ModelArtifact:
    """One node trains one booster on all co-ops' aggregates (received under grants) and signs it."""
    rows = _concat([training_rows(c, until) for c in coops])
    spec = TrainingSpec.from_rows(rows)
    blob, used = fit(spec, params, rounds, stage="train pooled", **fit_args)
    band = fit_band(spec, params, rounds, stage="train pooled", **fit_args)
    ids = [c.coop_id for c in coops]
    known = [c.capacity for c in coops]
    total = (
        None
        if any(k is None for k in known)
        else {t: sum(k.get(t, 0.0) for k in known if k) for t in TECHNOLOGIES}
    )
    return _sign(blob, band, used, spec, trainer_id, "pooled", ids, version, signing_key, mix(total))


def train_federated(
    coops: Sequence[CoopData], signing_keys: Mapping[str, Ed25519PrivateKey], **kwargs: Any
) -> list[ModelArtifact]:
    """Every co-op trains locally with its own key (what each node runs, here in one process)."""
    return [train_local(c, signing_keys[c.coop_id], **kwargs) for c in coops]


@dataclass(frozen=True)
class Forecaster:
    """Verified boosters and their weights (data size); one booster is the pooled case.
    `bands`: per member, its quantile boosters (one per target); empty when one has none."""

    boosters: tuple[xgb.Booster, ...]
    weights: tuple[float, ...]
    metadata: tuple[ArtifactMetadata, ...]
    bands: tuple[tuple[xgb.Booster, ...], ...] = ()

    @classmethod
    def from_artifacts(
        cls, artifacts: Sequence[ModelArtifact], trusted_keys: Mapping[str, Ed25519PublicKey]
    ) -> Forecaster:
        """Verify every artifact against its trainer's pinned key, then weight by training rows."""
        if not artifacts:
            raise ValueError("no model artifacts")
        boosters, bands = [], []
        for art in artifacts:
            key = trusted_keys.get(art.metadata.coop_id)
            if key is None:
                raise ArtifactVerificationError(f"no trusted key for co-op {art.metadata.coop_id!r}")
            boosters.append(art.load_booster(key))
            bands.append(art.load_quantile_boosters(key))
        metas = tuple(a.metadata for a in artifacts)
        if any(m.feature_names != FEATURES or m.targets != TARGETS for m in metas):
            raise ValueError("model features or targets disagree with this forecaster's")
        rows = np.array([m.training_rows for m in metas], dtype=float)
        banded = all(
            len(b) == len(TARGETS) and m.quantiles == QUANTILES for b, m in zip(bands, metas, strict=True)
        )
        return cls(tuple(boosters), tuple(rows / rows.sum()), metas, tuple(bands) if banded else ())

    def member_weights(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """(rows x targets x members): demand by training rows; generation by `technology_weights`."""
        base = np.asarray(self.weights)
        out = np.broadcast_to(base, (len(X), len(TARGETS), len(base))).copy()
        shares = np.nan_to_num(X[list(SHARES)].to_numpy(dtype=float), nan=-1.0)  # -1: unknown
        members = np.array([[m.technology.get(t, np.nan) for t in TECHNOLOGIES] for m in self.metadata])
        g = TARGETS.index("generation")
        for mixture in np.unique(shares, axis=0):
            rows = np.all(shares == mixture, axis=1)
            out[rows, g] = technology_weights(base, members, np.where(mixture < 0, np.nan, mixture))
        return out

    def predict_scaled(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Weighted mean of the members' (rows x targets) predictions."""
        dm = xgb.DMatrix(X, feature_names=list(self.metadata[0].feature_names))
        preds = np.stack([b.predict(dm).reshape(len(X), len(TARGETS)) for b in self.boosters], axis=-1)
        total: NDArray[np.float64] = np.sum(self.member_weights(X) * preds, axis=-1)
        return total

    def predict_rows(self, rows: FeatureRows) -> NDArray[np.float64]:
        """kWh per member (rows x targets), never negative."""
        return np.clip(self.predict_scaled(rows.X) * rows.scale, 0.0, None)

    def band_scaled(self, X: pd.DataFrame) -> NDArray[np.float64] | None:
        """Weighted mean of the members' calibrated quantiles (rows x targets x QUANTILES), or
        None without a band. Each member's are sorted, so their weighted mean is too."""
        if not self.bands:
            return None
        dm = xgb.DMatrix(X, feature_names=list(self.metadata[0].feature_names))
        weights = self.member_weights(X)
        total = np.zeros((len(X), len(TARGETS), len(QUANTILES)))
        for m, (meta, band) in enumerate(zip(self.metadata, self.bands, strict=True)):
            for j, booster in enumerate(band):
                q = booster.predict(dm).reshape(len(X), len(QUANTILES)).astype(float)
                total[:, j] += weights[:, j, m, None] * widen(q, meta.band_widening[j])
        return total

    def band_rows(self, rows: FeatureRows) -> NDArray[np.float64] | None:
        """kWh per member (rows x targets x QUANTILES), never negative, never crossing."""
        q = self.band_scaled(rows.X)
        return None if q is None else np.clip(q * rows.scale[:, :, None], 0.0, None)


def technology_weights(
    base: NDArray[np.float64], members: NDArray[np.float64], target: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Ensemble weights for generation: the nearest to `base` (training rows) whose technology
    mix (members: shares, members x TECHNOLOGIES) is the target co-op's, by least squares, then
    clipped at zero. A wind co-op's generation thus comes from the models that saw wind, a PV
    co-op's from those that saw PV. `base` where any mix is unknown."""
    if len(base) == 1 or np.isnan(members).any() or np.isnan(target).any():
        return base
    gram = members.T @ members
    a = base + members @ np.linalg.pinv(gram) @ (target - members.T @ base)
    a = np.clip(a, 0.0, None)
    return a / a.sum() if a.sum() > 0 else base


def predict(forecaster: Forecaster, history: CoopData, origin: int) -> pd.DataFrame:
    """Forecast the 48 h after `origin` from what was known at `origin`.

    Returns one row per period (index `period`): demand and generation in kWh for the co-op and
    per member, their P10/P50/P90 (`demand_p10_kwh` ...; co-op totals) when the models have a
    band, and the member count the totals assume (the last one known).
    """
    rows = build_features(history.known_at(origin), np.array([origin]))
    if np.isnan(rows.scale[:, 0]).any():
        raise ValueError("a forecast needs at least four days of aggregates in the week before it")
    per_member = forecaster.predict_rows(rows)
    frame = pd.DataFrame(
        {
            "demand_pm": per_member[:, 0],
            "generation_pm": per_member[:, 1],
            "members": rows.members,
            "clearsky": rows.X["clearsky"].to_numpy(dtype=float),
        },
        index=pd.Index(rows.period, name="period"),
    )
    frame["demand_kwh"] = frame["demand_pm"] * frame["members"]
    frame["generation_kwh"] = frame["generation_pm"] * frame["members"]
    band = forecaster.band_rows(rows)
    if band is not None:
        for j, target in enumerate(TARGETS):
            for i, level in enumerate(QUANTILES):
                frame[band_column(target, level)] = band[:, j, i] * rows.members
    return frame

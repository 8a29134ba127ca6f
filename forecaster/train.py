"""XGBoost training, pooled and by model federation, into signed artifacts; verified ensembles predict.

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
from .features import FEATURES, HORIZON, TARGETS, WEEK, CoopData, FeatureRows, build_features
from .features import concat_rows as _concat
from .timegrid import HALF_HOUR, noon_origins

Progress = Callable[[str, int, int], None]  # (stage, done, total)
DEFAULT_ROUNDS = 150
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
    """Training input: features X (columns FEATURES) and labels y (rows x targets), no NaN labels."""

    X: pd.DataFrame
    y: NDArray[np.float64]
    feature_names: tuple[str, ...] = FEATURES

    @classmethod
    def from_rows(cls, rows: FeatureRows) -> TrainingSpec:
        # numpy's stubs cannot tell that any(axis=1) of a 2-D array is an array, not a scalar.
        keep = cast(NDArray[np.bool_], ~np.isnan(rows.y).any(axis=1))
        if not keep.any():
            raise ValueError("no training rows with measured targets")
        return cls(rows.X.loc[keep].reset_index(drop=True), rows.y[keep])

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


def training_origins(coop: CoopData, until: int | None = None) -> NDArray[np.int64]:
    """Daily local-noon origins with two weeks of history whose 48 h targets end before `until`."""
    periods = coop.aggregates.index.to_numpy(dtype=np.int64)
    end = int(periods[-1]) + HALF_HOUR if until is None else until
    return noon_origins(int(periods[0]) + 2 * WEEK * HALF_HOUR, end - HORIZON * HALF_HOUR, coop.site.tz)


def training_rows(coop: CoopData, until: int | None = None) -> FeatureRows:
    return build_features(coop, training_origins(coop, until))


def _sign(
    blob: bytes,
    params: dict[str, Any],
    spec: TrainingSpec,
    coop_id: str,
    kind: str,
    contributors: list[str],
    version: int,
    key: Ed25519PrivateKey,
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
    }
    return sign_artifact(blob, meta, key)


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
    blob, used = fit(spec, params, rounds, stage=f"train {coop.coop_id}", **fit_args)
    return _sign(blob, used, spec, coop.coop_id, "local", [coop.coop_id], version, signing_key)


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
    ids = [c.coop_id for c in coops]
    return _sign(blob, used, spec, trainer_id, "pooled", ids, version, signing_key)


def train_federated(
    coops: Sequence[CoopData], signing_keys: Mapping[str, Ed25519PrivateKey], **kwargs: Any
) -> list[ModelArtifact]:
    """Every co-op trains locally with its own key (what each node runs, here in one process)."""
    return [train_local(c, signing_keys[c.coop_id], **kwargs) for c in coops]


@dataclass(frozen=True)
class Forecaster:
    """Verified boosters and their weights (data size); one booster is the pooled case."""

    boosters: tuple[xgb.Booster, ...]
    weights: tuple[float, ...]
    metadata: tuple[ArtifactMetadata, ...]

    @classmethod
    def from_artifacts(
        cls, artifacts: Sequence[ModelArtifact], trusted_keys: Mapping[str, Ed25519PublicKey]
    ) -> Forecaster:
        """Verify every artifact against its trainer's pinned key, then weight by training rows."""
        if not artifacts:
            raise ValueError("no model artifacts")
        boosters = []
        for art in artifacts:
            key = trusted_keys.get(art.metadata.coop_id)
            if key is None:
                raise ArtifactVerificationError(f"no trusted key for co-op {art.metadata.coop_id!r}")
            boosters.append(art.load_booster(key))
        metas = tuple(a.metadata for a in artifacts)
        if any(m.feature_names != FEATURES or m.targets != TARGETS for m in metas):
            raise ValueError("model features or targets disagree with this forecaster's")
        rows = np.array([m.training_rows for m in metas], dtype=float)
        return cls(tuple(boosters), tuple(rows / rows.sum()), metas)

    def predict_scaled(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Weighted mean of the members' (rows x targets) predictions."""
        dm = xgb.DMatrix(X, feature_names=list(self.metadata[0].feature_names))
        preds = [b.predict(dm).reshape(len(X), len(TARGETS)) for b in self.boosters]
        total: NDArray[np.float64] = np.sum([w * p for w, p in zip(self.weights, preds, strict=True)], axis=0)
        return total

    def predict_rows(self, rows: FeatureRows) -> NDArray[np.float64]:
        """kWh per member (rows x targets), never negative."""
        return np.clip(self.predict_scaled(rows.X) * rows.scale, 0.0, None)


def predict(forecaster: Forecaster, history: CoopData, origin: int) -> pd.DataFrame:
    """Forecast the 48 h after `origin` from what was known at `origin`.

    Returns one row per period (index `period`): demand and generation in kWh for the co-op and
    per member, and the member count the totals assume (the last one known).
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
    return frame

"""coopfed.forecaster: simulated co-ops, features, signed XGBoost models, backtests and nudges.

The names below are imported on first use: XGBoost, pandas, scipy and pvlib cost seconds to
import, and most commands that touch this package (a time grid, a model's metadata) need none.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .artifact import ArtifactMetadata, ModelArtifact, sign_artifact
    from .chart import plot_backtest, plot_forecast
    from .errors import ArtifactError, ArtifactFormatError, ArtifactVerificationError
    from .evaluate import BacktestReport, backtest, metrics, precision_recall
    from .features import FEATURES, HORIZON, TARGETS, CoopData, FeatureRows, build_features
    from .nudging import Nudge, Window, nudges, peak_threshold, reference_demand, windows
    from .simulate import (
        CoopSpec,
        MemberReadings,
        SimulatedCoop,
        aggregate_readings,
        default_federation,
        england,
        simulate_coop,
        simulate_federation,
    )
    from .timegrid import Site
    from .train import (
        DEFAULT_PARAMS,
        Forecaster,
        TrainingSpec,
        fit,
        predict,
        resolve_device,
        train_federated,
        train_local,
        train_pooled,
    )

__all__ = [
    "DEFAULT_PARAMS",
    "FEATURES",
    "HORIZON",
    "TARGETS",
    "ArtifactError",
    "ArtifactFormatError",
    "ArtifactMetadata",
    "ArtifactVerificationError",
    "BacktestReport",
    "CoopData",
    "CoopSpec",
    "FeatureRows",
    "Forecaster",
    "MemberReadings",
    "ModelArtifact",
    "Nudge",
    "SimulatedCoop",
    "Site",
    "TrainingSpec",
    "Window",
    "aggregate_readings",
    "backtest",
    "build_features",
    "default_federation",
    "england",
    "fit",
    "metrics",
    "nudges",
    "peak_threshold",
    "plot_backtest",
    "plot_forecast",
    "precision_recall",
    "predict",
    "reference_demand",
    "resolve_device",
    "sign_artifact",
    "simulate_coop",
    "simulate_federation",
    "train_federated",
    "train_local",
    "train_pooled",
    "windows",
]

_HOMES = {
    **dict.fromkeys(["ArtifactError", "ArtifactFormatError", "ArtifactVerificationError"], "errors"),
    **dict.fromkeys(["ArtifactMetadata", "ModelArtifact", "sign_artifact"], "artifact"),
    **dict.fromkeys(["Nudge", "Window", "nudges", "peak_threshold"], "nudging"),
    **dict.fromkeys(["reference_demand", "windows"], "nudging"),
    **dict.fromkeys(["plot_backtest", "plot_forecast"], "chart"),
    **dict.fromkeys(["BacktestReport", "backtest", "metrics", "precision_recall"], "evaluate"),
    **dict.fromkeys(
        ["FEATURES", "HORIZON", "TARGETS", "CoopData", "FeatureRows", "build_features"], "features"
    ),
    **dict.fromkeys(
        ["CoopSpec", "MemberReadings", "SimulatedCoop", "aggregate_readings", "default_federation"],
        "simulate",
    ),
    **dict.fromkeys(["england", "simulate_coop", "simulate_federation"], "simulate"),
    **dict.fromkeys(
        ["DEFAULT_PARAMS", "Forecaster", "TrainingSpec", "fit", "predict", "resolve_device"], "train"
    ),
    **dict.fromkeys(["train_federated", "train_local", "train_pooled"], "train"),
    "Site": "timegrid",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value  # imported once
    return value

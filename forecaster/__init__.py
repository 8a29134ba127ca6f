"""coopfed.forecaster: simulated co-ops, features, signed XGBoost models, backtests and nudges."""

from .artifact import (
    ArtifactError,
    ArtifactFormatError,
    ArtifactMetadata,
    ArtifactVerificationError,
    ModelArtifact,
    sign_artifact,
)
from .chart import plot_backtest, plot_forecast
from .evaluate import BacktestReport, backtest, metrics, precision_recall
from .features import FEATURES, HORIZON, TARGETS, CoopData, FeatureRows, build_features
from .nudges import Nudge, Window, nudges, peak_threshold, reference_demand, windows
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

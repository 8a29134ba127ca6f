"""Forecasting on the node: own and pooled aggregates, signed models, forecasts and nudges."""

import os

# Idle OpenMP threads that spin slow XGBoost down badly on a shared machine; passive ones sleep.
# libgomp reads this once, when XGBoost loads, so it is set before anything here imports it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

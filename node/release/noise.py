"""Calibrated noise on released totals: per-cell sensitivity is one member's largest half-hour."""

from __future__ import annotations

import math

import numpy as np

from coopfed.federation.grants import Noise, NoiseMechanism

GAUSSIAN_DELTA = 1e-5  # the delta of (epsilon, delta) differential privacy for Gaussian noise


def add_noise(kwh: np.ndarray, noise: Noise, sensitivity: float) -> np.ndarray:
    """`kwh` with Laplace or Gaussian noise for `noise.epsilon`, floored at zero."""
    rng = np.random.default_rng()  # seeded from the OS's entropy on every release
    if noise.mechanism is NoiseMechanism.LAPLACE:
        added = rng.laplace(0.0, sensitivity / noise.epsilon, kwh.size)
    else:
        sigma = sensitivity * math.sqrt(2 * math.log(1.25 / GAUSSIAN_DELTA)) / noise.epsilon
        added = rng.normal(0.0, sigma, kwh.size)
    return np.maximum(kwh + added, 0.0)

"""Differentially private totals (OpenDP's Laplace mechanism) and the per-member yearly budget.

Neighbouring datasets differ by one member. One member adds at most `bound` kWh and one to the
member count of each released cell, so over n cells the L1 sensitivity is n x bound for the kWh
vector and n for the counts; half the epsilon goes to each. Every member whose data could be in
a private release is charged its epsilon for the year, and the node refuses a release that would
take any of them past the co-op's yearly budget (set in policy data).
"""

from __future__ import annotations

import numpy as np
import opendp.prelude as dp

dp.enable_features("contrib")  # OpenDP's Laplace mechanism on float vectors

_SPACE = (dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float))


def laplace(values: np.ndarray, sensitivity: float, epsilon: float) -> np.ndarray:
    """`values` with Laplace noise calibrated so that the release is `epsilon`-DP."""
    if values.size == 0:
        return values.astype(float)
    mechanism = dp.m.make_laplace(*_SPACE, scale=sensitivity / epsilon)
    assert mechanism.map(sensitivity) <= epsilon * (1 + 1e-9)  # OpenDP's own accounting agrees
    return np.asarray(mechanism(values.astype(float).tolist()), dtype=float)


def private_cells(
    kwh: np.ndarray, counts: np.ndarray, epsilon: float, bound: float
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy kWh totals (clipped at zero) and noisy member counts (whole, at least zero)."""
    n = kwh.size
    noisy_kwh = np.maximum(laplace(kwh, n * bound, epsilon / 2), 0.0)
    noisy_counts = np.maximum(np.rint(laplace(counts, float(n), epsilon / 2)), 0).astype(np.int64)
    return noisy_kwh, noisy_counts

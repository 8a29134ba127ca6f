"""Shared settings of the forecaster tests: a small three-co-op federation and training params."""

from __future__ import annotations

import datetime as dt

from coopfed.forecaster import CoopSpec, england

START, END = dt.date(2024, 9, 1), dt.date(2025, 1, 1)
ONE_THREAD = {"nthread": 1}  # the test machine is shared: one thread is steadier under load
SMALL_FEDERATION = (
    CoopSpec("riverside", 25, england("Bristol", 51.45, -2.59, 20), 0.35, 0.3, 0.15, seed=11),
    CoopSpec("fellside", 40, england("Kendal", 54.33, -2.75, 60), 0.2, 0.2, 0.1, 1, seed=22),
    CoopSpec("market-town", 80, england("Norwich", 52.63, 1.3, 30), 0.45, 0.35, 0.25, try_region=3, seed=33),
)

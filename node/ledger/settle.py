"""Settlement of half-hourly periods: who bought and sold how much local energy, and for how much.

Per period, each member's **import** is their demand less what they used of their own
generation (generation - export, never below 0), and their **export** is their export reading.
The local energy matched in the period is the smaller of all exports and all imports. The
allocation key shares the matched energy among importers (never more than a member imported);
generators sell it in proportion to what they exported. What is left is bought from or sold to
the grid. Money follows energy at the prices of the run's terms, by the largest-remainder rule
of `money.py`, so every period's transaction sums to zero pence exactly.

A member who holds a dataset anywhere in the run is expected to hold it in every period; a
period where someone's reading is missing is settled on what is there, as provisional, and is
final once complete or once the cut-off after the period has passed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from coopfed.node.ledger.money import apportion, fill, pot, to_wh
from coopfed.node.ledger.terms import Terms
from coopfed.node.storage.ledger import PeriodReadings

HALF_HOUR = 1800
DAY = 86_400


@dataclass(frozen=True)
class Energy:
    """Whole Wh per member (rows) and period (columns), and how many readings each period lacks."""

    member_ids: tuple[str, ...]
    periods: np.ndarray
    imports: np.ndarray
    exports: np.ndarray
    missing: np.ndarray  # members per period lacking an expected reading


def energy(readings: PeriodReadings) -> Energy:
    """Imports and exports in Wh from the readings (kWh, NaN where missing)."""
    wh = {name: to_wh(np.nan_to_num(kwh)) for name, kwh in readings.kwh.items()}
    held = {name: ~np.isnan(kwh) for name, kwh in readings.kwh.items()}
    expected = [h.any(axis=1, keepdims=True) & ~h for h in held.values()]
    missing = np.logical_or.reduce(expected).sum(axis=0) if expected else np.zeros(0, np.int64)
    own_use = np.maximum(wh["generation"] - wh["export"], 0)
    imports = np.maximum(wh["demand"] - own_use, 0)
    return Energy(readings.member_ids, readings.periods, imports, wh["export"], missing.astype(np.int64))


@dataclass(frozen=True)
class PeriodResult:
    """One period's postings, numbered as NewTransaction numbers accounts (member i, kind k:
    4i + k; the co-op's kind j: 4n + j)."""

    period_start: int
    pence: np.ndarray  # int64, 4n + 4, sums to 0
    wh: np.ndarray  # int64, same shape
    missing: int


def settle(energy: Energy, terms: Terms) -> Iterator[PeriodResult]:
    """Each period's result, in period order."""
    tiers = terms.tiers(energy.member_ids)
    for j, period in enumerate(energy.periods.tolist()):
        yield settle_period(
            period, energy.imports[:, j], energy.exports[:, j], tiers, terms, energy.missing[j]
        )


def settle_period(
    period: int,
    imports: np.ndarray,
    exports: np.ndarray,
    tiers: list[np.ndarray | None],
    terms: Terms,
    missing: int = 0,
) -> PeriodResult:
    matched = min(int(imports.sum()), int(exports.sum()))
    bought = allocate(matched, imports, tiers)
    sold = apportion(matched, exports) if matched else np.zeros_like(exports)
    grid_in, grid_out = imports - bought, exports - sold
    local = pot(matched, terms.local_mp)
    charge, credit = apportion(local, bought), apportion(local, sold)
    cost = apportion(pot(int(grid_in.sum()), terms.import_mp), grid_in)
    earned = apportion(pot(int(grid_out.sum()), terms.export_mp), grid_out)
    n = imports.size
    pence = np.empty(4 * n + 4, np.int64)
    wh = np.empty(4 * n + 4, np.int64)
    # debits (+) to what members owe, credits (-) to what they are owed; the co-op's the other side
    pence[0 : 4 * n : 4], wh[0 : 4 * n : 4] = charge, bought
    pence[1 : 4 * n : 4], wh[1 : 4 * n : 4] = -credit, sold
    pence[2 : 4 * n : 4], wh[2 : 4 * n : 4] = cost, grid_in
    pence[3 : 4 * n : 4], wh[3 : 4 * n : 4] = -earned, grid_out
    pence[4 * n :] = (-local, local, -int(cost.sum()), int(earned.sum()))
    wh[4 * n :] = (matched, matched, int(grid_in.sum()), int(grid_out.sum()))
    return PeriodResult(period, pence, wh, int(missing))


def allocate(matched: int, imports: np.ndarray, tiers: list[np.ndarray | None]) -> np.ndarray:
    """Share `matched` Wh among importers tier by tier, capped at each one's import: a tier is
    whole-number weights, a mask (pro rata to import among those it marks) or None (pro rata to
    import among all); a final pro-rata tier takes whatever the others left."""
    bought = np.zeros_like(imports)
    left = matched
    for weights in [*tiers, None]:
        if left == 0:
            break
        room = imports - bought
        if weights is None:
            weights = room
        elif weights.dtype == bool:
            weights = np.where(weights, room, 0)
        got = fill(left, room, weights)
        bought += got
        left -= int(got.sum())
    return bought


def status(period: int, missing: int, now: int, cutoff_days: int) -> str:
    """Final when no reading is missing or the cut-off after the period has passed."""
    return "final" if missing == 0 or now >= period + HALF_HOUR + cutoff_days * DAY else "provisional"

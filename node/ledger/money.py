"""Integer money and energy: the largest-remainder rule, prices, Wh at the ledger's boundary.

No float ever holds money. Prices are exact decimals of pence per kWh (at most three decimal
places), held as integer millipence per kWh; energy is integer watt-hours. An amount owed for
`wh` at price `p` is exactly `wh * p / 1_000_000` pence, and is rounded by apportioning:

**Largest-remainder rule.** A pot shared out in proportion to whole-number weights: the pot is
first fixed (a money pot is the exact total rounded to the nearest penny, half a penny up),
every share gets the whole-number part of its exact share, and the pennies (or watt-hours)
left over go one each to the shares with the largest fractional parts, ties going to the
earlier share in member-id order. The shares always add up to the pot exactly: no penny is
unassigned or assigned twice.

**Readings to Wh.** Readings are kWh floats; each reading becomes the nearest whole Wh, halves to
even (`numpy.rint`), before any arithmetic, so a period's energy is exact from there on.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

MILLI = 1000  # millipence per penny
WH_PER_KWH = 1000
SCALE = MILLI * WH_PER_KWH  # wh * millipence-per-kWh / SCALE = pence


class PriceError(ValueError):
    """A price that is not an exact number of pence per kWh with at most three decimals."""


def millipence(value: Any) -> int:
    """Pence per kWh from policy data (a JSON number) as integer millipence per kWh."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise PriceError(f"a price must be a number of pence per kWh, not {value!r}")
    try:
        exact = Decimal(str(value)) * MILLI
    except InvalidOperation:
        raise PriceError(f"a price must be a number of pence per kWh, not {value!r}") from None
    if not exact.is_finite() or exact != exact.to_integral_value() or exact < 0:
        raise PriceError(f"{value} pence per kWh: prices have at most three decimals and are >= 0")
    return int(exact)


def to_wh(kwh: np.ndarray) -> np.ndarray:
    """kWh readings as whole Wh: the nearest, halves to even; NaN (no reading) stays missing as -1."""
    kwh = np.asarray(kwh, dtype=np.float64)
    out = np.rint(np.nan_to_num(kwh, nan=-0.001) * WH_PER_KWH).astype(np.int64)
    return np.where(np.isnan(kwh), -1, out)


def pot(wh_total: int, price_mp: int) -> int:
    """The exact amount for `wh_total` at `price_mp`, to the nearest penny, half a penny up."""
    return (2 * wh_total * price_mp + SCALE) // (2 * SCALE)


def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Share `total` in proportion to whole-number `weights` by the largest-remainder rule.

    Shares are whole numbers summing to `total`; all-zero weights give all-zero shares, and
    then `total` must be 0.
    """
    weights = np.asarray(weights, dtype=np.int64)
    denominator = int(weights.sum())
    if denominator == 0:
        if total:
            raise ValueError(f"cannot share {total} among no weight")
        return np.zeros(weights.size, np.int64)
    exact = weights * total  # int64: totals and weights of one period stay far below 2^63
    shares = exact // denominator
    left = total - int(shares.sum())
    if left:
        remainders = exact - shares * denominator
        order = np.lexsort((np.arange(weights.size), -remainders))  # largest first, then earlier
        shares[order[:left]] += 1
    return shares


def fill(total: int, caps: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Share `total` in proportion to `weights`, but never more than each one's cap (water-filling).

    A share whose proportional part would pass its cap gets the cap, and the rest is shared again
    among the others, until no cap binds; what no one can take (caps exhausted) stays unshared,
    so the result may sum to less than `total`. Whole numbers throughout, largest remainders last.
    """
    caps = np.asarray(caps, dtype=np.int64)
    weights = np.where(caps > 0, np.asarray(weights, dtype=np.int64), 0)
    shares = np.zeros(caps.size, np.int64)
    active = weights > 0
    left = total
    while left > 0 and active.any():
        w = np.where(active, weights, 0)
        capped = active & (caps * int(w.sum()) <= w * left)
        if not capped.any():
            shares += apportion(left, w)
            return shares
        shares[capped] = caps[capped]
        left -= int(caps[capped].sum())
        active &= ~capped
    return shares


def pounds(pence: int) -> str:
    """£1.23, -£0.05: pence as a person reads money."""
    sign = "-" if pence < 0 else ""
    whole, part = divmod(abs(int(pence)), 100)
    return f"{sign}£{whole:,}.{part:02d}"


def kwh_text(wh: int) -> str:
    """'12.345 kWh': whole Wh as kWh, exactly."""
    sign = "-" if wh < 0 else ""
    whole, part = divmod(abs(int(wh)), WH_PER_KWH)
    return f"{sign}{whole:,}.{part:03d} kWh"

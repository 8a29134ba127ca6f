"""Validation of uploaded meter readings: whole batches checked at once, the first bad row named."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from coopfed.node.errors import InvalidArgument
from coopfed.node.model import DATASETS, HALF_HOUR

# Meters report a half-hour after it ends; allow this much clock skew on top.
CLOCK_SKEW = 60
# The earliest period accepted: 2000-01-01, before any smart meter.
EARLIEST = 946_684_800


@dataclass(frozen=True)
class Batch:
    """Readings of one dataset as arrays, validated."""

    dataset: str
    periods: np.ndarray  # int64 unix seconds, period starts
    kwh: np.ndarray  # float64


def validate_batch(
    index: int, dataset: str, periods: np.ndarray, kwh: np.ndarray, now: float | None = None
) -> Batch:
    """Check one batch; raise InvalidArgument naming `batches[index].<field>[row]`."""
    where = f"batches[{index}]"
    if dataset not in DATASETS:
        raise InvalidArgument(
            f"{where}.dataset: unknown dataset {dataset!r}; known: {', '.join(DATASETS)}",
            code="reading.unknown_dataset",
            field=f"{where}.dataset",
        )
    if len(periods) != len(kwh):
        raise InvalidArgument(
            f"{where}: {len(periods)} periods but {len(kwh)} kWh values",
            code="reading.length_mismatch",
            field=where,
        )
    latest = int(now if now is not None else time.time()) + CLOCK_SKEW - HALF_HOUR
    _first_bad(where, "kwh", ~np.isfinite(kwh), kwh, "is not a finite number", "reading.not_finite")
    _first_bad(where, "kwh", kwh < 0, kwh, "kWh is negative", "reading.negative")
    _first_bad(
        where,
        "period_start_unix",
        periods % HALF_HOUR != 0,
        periods,
        "is not on a half-hour boundary",
        "reading.misaligned",
    )
    _first_bad(
        where,
        "period_start_unix",
        periods > latest,
        periods,
        "is a period that has not ended yet",
        "reading.future",
    )
    _first_bad(
        where,
        "period_start_unix",
        periods < EARLIEST,
        periods,
        "is before 2000-01-01",
        "reading.too_old",
    )
    return Batch(dataset, periods, kwh)


def _first_bad(where: str, name: str, bad: np.ndarray, values: np.ndarray, problem: str, code: str) -> None:
    if bad.any():
        row = int(np.argmax(bad))
        field = f"{where}.{name}[{row}]"
        raise InvalidArgument(f"{field}: {values[row].item()!r} {problem}", code=code, field=field)


def reject_duplicates(batches: list[Batch]) -> None:
    """A period given twice for one dataset in one upload is ambiguous: name the second one."""
    seen: dict[str, np.ndarray] = {}
    for index, batch in enumerate(batches):
        earlier = seen.get(batch.dataset, np.empty(0, dtype=np.int64))
        combined = np.concatenate([earlier, batch.periods])
        _, first = np.unique(combined, return_index=True)
        if len(first) < len(combined):
            repeated = np.ones(len(combined), dtype=bool)
            repeated[first] = False
            row = int(np.argmax(repeated)) - len(earlier)
            field = f"batches[{index}].period_start_unix[{row}]"
            raise InvalidArgument(
                f"{field}: period {batch.periods[row].item()} of {batch.dataset!r} "
                "appears more than once in this upload",
                code="reading.duplicate",
                field=field,
            )
        seen[batch.dataset] = combined

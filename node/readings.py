"""Validation of uploaded meter readings: whole batches checked at once, the first bad row named."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from coopfed.node.errors import InvalidArgument
from coopfed.node.model import DATASETS, HALF_HOUR

# Meters report a half-hour after it ends; allow this much clock skew on top.
CLOCK_SKEW = 60
# The earliest period accepted: 2000-01-01, before any smart meter.
EARLIEST = 946_684_800


class BadReading(InvalidArgument):
    """One reading refused: its batch, column and row, and what is wrong in plain words."""

    def __init__(
        self, batch: int, column: str, row: int, value: float | int, problem: str, code: str
    ) -> None:
        field = f"batches[{batch}].{column}[{row}]"
        shown = _instant(value) if column == "period_start_unix" else repr(value)
        super().__init__(f"{field}: {shown} {problem}", code=code, field=field)
        self.batch, self.column, self.row, self.problem = batch, column, row, problem


def _instant(unix: float | int) -> str:
    """A period start as people read it in an error (unix seconds mean nothing to a member)."""
    try:
        return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{unix} (far out of range)"


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
    checks = (
        ("kwh", ~np.isfinite(kwh), "is not a finite number", "reading.not_finite"),
        ("kwh", kwh < 0, "is negative: kWh cannot be", "reading.negative"),
        (
            "period_start_unix",
            periods % HALF_HOUR != 0,
            "is not the start of a half-hour",
            "reading.misaligned",
        ),
        ("period_start_unix", periods > latest, "is a half-hour that has not ended yet", "reading.future"),
        (
            "period_start_unix",
            periods < EARLIEST,
            "is before 2000, before any smart meter",
            "reading.too_old",
        ),
    )
    for name, bad, problem, code in checks:
        if bad.any():
            row = int(np.argmax(bad))
            values = kwh if name == "kwh" else periods
            raise BadReading(index, name, row, values[row].item(), problem, code)
    return Batch(dataset, periods, kwh)


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
            raise BadReading(
                index,
                "period_start_unix",
                row,
                batch.periods[row].item(),
                f"appears more than once for {batch.dataset} in this upload",
                "reading.duplicate",
            )
        seen[batch.dataset] = combined

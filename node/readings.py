"""Validation of uploaded meter readings: whole batches checked at once, the first bad row named."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from coopfed.node.errors import InvalidArgument
from coopfed.node.model import DATASETS, HALF_HOUR
from coopfed.node.settings import NodeSection

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
    index: int,
    dataset: str,
    periods: np.ndarray,
    kwh: np.ndarray,
    now: float | None = None,
    max_kwh: float = NodeSection.max_kwh_per_half_hour,
) -> Batch:
    """Check one batch; raise InvalidArgument naming `batches[index].<field>[row]`.

    `max_kwh` is the most a household can use or make in a half-hour ([node] max_kwh_per_half_hour)."""
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
            "kwh",
            kwh > max_kwh,
            f"is more than a household can use or make in a half-hour ({max_kwh:g} kWh)",
            "reading.too_large",
        ),
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
    """A period given twice for one dataset in one upload is ambiguous: name the first repeat.

    One sort per dataset over the whole upload, so many small batches cost no more than one."""
    by_dataset: dict[str, list[int]] = {}
    for index, batch in enumerate(batches):
        by_dataset.setdefault(batch.dataset, []).append(index)
    repeats = [repeat for indexes in by_dataset.values() if (repeat := _first_repeat(batches, indexes))]
    if repeats:
        index, row = min(repeats)
        batch = batches[index]
        raise BadReading(
            index,
            "period_start_unix",
            row,
            batch.periods[row].item(),
            f"appears more than once for {batch.dataset} in this upload",
            "reading.duplicate",
        )


def merged(batches: list[Batch]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """One batch per dataset, so the store does one pass per dataset however the upload was cut
    (checked for duplicates first: no period is in two of them)."""
    by_dataset: dict[str, list[Batch]] = {}
    for batch in batches:
        by_dataset.setdefault(batch.dataset, []).append(batch)
    return [
        (dataset, np.concatenate([b.periods for b in group]), np.concatenate([b.kwh for b in group]))
        for dataset, group in by_dataset.items()
    ]


def _first_repeat(batches: list[Batch], indexes: list[int]) -> tuple[int, int] | None:
    """(batch, row) of the first period, in upload order, that an earlier one already gave."""
    periods = np.concatenate([batches[i].periods for i in indexes])
    _, first = np.unique(periods, return_index=True)  # the first of each value (a stable sort)
    if len(first) == len(periods):
        return None
    repeated = np.ones(len(periods), dtype=bool)
    repeated[first] = False
    at = int(np.argmax(repeated))
    ends = np.cumsum([batches[i].periods.size for i in indexes])
    which = int(np.searchsorted(ends, at, side="right"))
    return indexes[which], at - (int(ends[which - 1]) if which else 0)

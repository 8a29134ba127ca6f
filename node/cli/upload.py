"""Reading a member's CSV of half-hourly readings: every row checked, the first problem named by line
and column, before anything is sent."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from coopfed.node.errors import UsageError
from coopfed.node.model import DATASETS
from coopfed.node.readings import BadReading, Batch, reject_duplicates, validate_batch

COLUMNS = ("dataset", "period_start", "kwh")
_FIELD_COLUMN = {"period_start_unix": "period_start", "kwh": "kwh"}


@dataclass
class _Column:
    periods: list[int] = field(default_factory=list)
    kwh: list[float] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    texts: list[dict[str, str]] = field(default_factory=list)  # as written, for messages


def read_readings(path: Path, tz: str) -> list[Batch]:
    """Parse and validate the whole file; raise UsageError naming the line and column at fault.

    A time with a UTC offset (`12:00+02:00`, `12:00Z`) keeps it; a time without one is read on
    the clock of `tz`, and refused where that clock is ambiguous or skips (the clock changes)."""
    zone = _zone(tz)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet's byte-order mark is fine
    except UnicodeDecodeError as exc:
        _fail(path, None, None, f"not UTF-8 text (byte {exc.start}): save it as CSV UTF-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {(exc.strerror or str(exc)).lower()}", code="cli.csv") from exc
    rows = csv.reader(text.splitlines())
    _check_header(path, next(rows, None))
    columns: dict[str, _Column] = {}
    for line, row in enumerate(rows, start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(COLUMNS):
            _fail(
                path,
                line,
                None,
                f"{len(row)} columns where {len(COLUMNS)} are expected ({', '.join(COLUMNS)})",
            )
        dataset, at, kwh = (cell.strip() for cell in row)
        if dataset not in DATASETS:
            _fail(path, line, "dataset", f"{dataset!r} is not a dataset; known: {', '.join(DATASETS)}")
        col = columns.setdefault(dataset, _Column())
        col.periods.append(_period(path, line, at, zone))
        col.kwh.append(_kwh(path, line, kwh))
        col.lines.append(line)
        col.texts.append({"period_start": at, "kwh": kwh})
    if not columns:
        _fail(path, None, None, "no readings below the header")
    return _validated(path, columns)


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz {tz!r}: not a time zone (e.g. Europe/London)", code="cli.tz") from None


def _check_header(path: Path, header: list[str] | None) -> None:
    if header is None:
        _fail(path, None, None, f"the file is empty: expected a header line {','.join(COLUMNS)}")
    names = [h.strip().lower() for h in header]
    if len(names) == 1 and ";" in names[0]:
        _fail(path, 1, None, "columns are separated by ';': save the file with commas (CSV, comma delimited)")
    if names != list(COLUMNS):
        _fail(
            path, 1, None, f"the first line must be the header {','.join(COLUMNS)}, not {','.join(header)!r}"
        )


def _period(path: Path, line: int, text: str, zone: ZoneInfo) -> int:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        _fail(path, line, "period_start", f"{text!r} is not a time; write e.g. 2026-01-15T12:00+00:00")
    if at.tzinfo is None:
        at = _on_clock(path, line, text, at, zone)
    return int(at.timestamp())


def _on_clock(path: Path, line: int, text: str, naive: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time on `zone`, refused when the clocks change make it ambiguous or absent."""
    first, second = naive.replace(tzinfo=zone), naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        gap = first.utcoffset() < second.utcoffset()  # type: ignore[operator]
        happens = "does not exist on" if gap else "happens twice on"
        _fail(path, line, "period_start", f"{text} {happens} the {zone.key} clock (the clocks change that "
              "night): add its UTC offset, e.g. +00:00 or +01:00")  # fmt: skip
    return first


def _kwh(path: Path, line: int, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        _fail(path, line, "kwh", f"{text!r} is not a number of kWh (use a dot for decimals: 0.42)")


def _validated(path: Path, columns: dict[str, _Column]) -> list[Batch]:
    """The node's own checks, run here first so that a refusal names the line, not an array index."""
    names = list(columns)
    try:
        batches = [
            validate_batch(
                i, ds, np.asarray(columns[ds].periods, np.int64), np.asarray(columns[ds].kwh, float)
            )
            for i, ds in enumerate(names)
        ]
        reject_duplicates(batches)
    except BadReading as exc:
        col, name = columns[names[exc.batch]], _FIELD_COLUMN[exc.column]
        _fail(path, col.lines[exc.row], name, f"{col.texts[exc.row][name]} {exc.problem}")
    return batches


def _fail(path: Path, line: int | None, column: str | None, problem: str) -> NoReturn:
    where = f"{path}" + (f", line {line}" if line else "") + (f", column {column}" if column else "")
    raise UsageError(f"{where}: {problem}; nothing was sent", code="cli.csv")

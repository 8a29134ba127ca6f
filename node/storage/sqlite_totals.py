"""Running per-profile totals in SQLite: one row per dataset, profile and UTC day of 48 slots.

A row per period would cost one B-tree update per reading written, which halves ingest speed;
a day row costs one per 48. Sums are little-endian int64 nanowatt-hours (10^-12 kWh), counts
little-endian int32: integer sums are exact, so removing a reading takes away exactly what adding
it put in, whatever else the slot holds.
"""

from __future__ import annotations

import json

import numpy as np

from coopfed.node.model import HALF_HOUR
from coopfed.node.storage.base import InvalidData, PeriodTotals, StorageError
from coopfed.node.storage.connection import Connection

DAY = 86_400
SLOTS = DAY // HALF_HOUR
_SUMS, _COUNTS = np.dtype("<i8"), np.dtype("<i4")
UNITS_PER_KWH = 10**12
# The largest reading the store takes: its units fit int64 with room for several in one slot.
MAX_KWH = 1e6

_DAYS = """SELECT day, kwh_sums, member_counts FROM profile_totals
WHERE dataset_id = ?1 AND profile_key = ?2 AND day IN (SELECT CAST(value AS BIGINT) FROM json_each(?3))"""

_DROP = """DELETE FROM profile_totals
WHERE dataset_id = ?1 AND profile_key = ?2 AND day IN (SELECT CAST(value AS BIGINT) FROM json_each(?3))"""

# ?1 dataset_id, ?2 JSON list of profile ids, ?3 first day, ?4 last day.
_QUERY = """SELECT day, kwh_sums, member_counts FROM profile_totals
WHERE dataset_id = ?1 AND day BETWEEN ?3 AND ?4 AND profile_key IN (
    SELECT profile_key FROM profiles WHERE profile_id IN (SELECT value FROM json_each(?2)))"""

_NEWEST = "SELECT day, member_counts FROM profile_totals WHERE day = (SELECT max(day) FROM profile_totals)"

# One statement for every day row (executemany): PostgreSQL's driver sends them in one pipeline
# of one prepared statement, where a long many-row statement is parsed anew on each call.
_UPSERT = """INSERT INTO profile_totals (dataset_id, profile_key, day, kwh_sums, member_counts)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (dataset_id, profile_key, day)
DO UPDATE SET kwh_sums = excluded.kwh_sums, member_counts = excluded.member_counts"""


def units(kwh: np.ndarray) -> np.ndarray:
    """kWh as whole nanowatt-hours (readings are finite, 0 <= kWh <= MAX_KWH)."""
    return np.rint(np.asarray(kwh, np.float64) * UNITS_PER_KWH).astype(np.int64)


def apply(
    conn: Connection,
    dataset_id: int,
    profile_key: int,
    periods: np.ndarray,
    delta: np.ndarray,
    count: np.ndarray | int,
) -> None:
    """Add `delta` (nanowatt-hours, see `units`) and `count` at `periods` (sorted, unique) to one
    profile's totals of one dataset."""
    if periods.size == 0:
        return
    day, slot = np.divmod(periods, DAY)
    first = np.empty(day.size, bool)
    first[0], first[1:] = True, day[1:] != day[:-1]
    days, row = day[first], np.cumsum(first) - 1
    sums, counts = np.zeros((days.size, SLOTS), np.int64), np.zeros((days.size, SLOTS), np.int64)
    key = (dataset_id, profile_key, json.dumps(days.tolist()))
    if held := conn.execute(_DAYS, key).fetchall():
        at = np.searchsorted(days, [r[0] for r in held])
        sums[at] = np.frombuffer(b"".join(r[1] for r in held), _SUMS).reshape(-1, SLOTS)
        counts[at] = np.frombuffer(b"".join(r[2] for r in held), _COUNTS).reshape(-1, SLOTS)
    cell = (row, slot // HALF_HOUR)
    before = sums[cell]
    sums[cell] += delta  # periods are unique, so no slot is hit twice
    if ((delta > 0) & (sums[cell] < before)).any():  # int64 wrapped round
        raise InvalidData("a half-hour's total would exceed what the store can hold")
    counts[cell] += count
    if (counts < 0).any() or (sums < 0).any() or (sums[counts == 0] != 0).any():
        raise StorageError("profile totals would not match the readings: the store is inconsistent")
    empty = counts.sum(axis=1) == 0
    if empty.any():
        conn.execute(_DROP, (dataset_id, profile_key, json.dumps(days[empty].tolist())))
    _write(conn, dataset_id, profile_key, days[~empty], sums[~empty], counts[~empty])


class Deltas:
    """Changes to the totals gathered over a transaction's uploads, applied once per dataset and
    profile: members' readings of one half-hour add up in one slot."""

    def __init__(self) -> None:
        self._parts: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    def add(
        self, dataset_id: int, profile_key: int, periods: np.ndarray, delta: np.ndarray, count: np.ndarray
    ) -> None:
        self._parts.setdefault((dataset_id, profile_key), []).append((periods, delta, count))

    def apply(self, conn: Connection) -> None:
        for (dataset_id, profile_key), parts in self._parts.items():
            deltas = [d for _, d, _ in parts]
            if len(parts) == 1 or max(int(np.abs(d).max(initial=0)) for d in deltas) * len(parts) >= 2**62:
                for part in parts:  # one part, or sums that could wrap round before apply sees them
                    apply(conn, dataset_id, profile_key, *part)
                continue
            periods, at = np.unique(np.concatenate([p for p, _, _ in parts]), return_inverse=True)
            delta, count = np.zeros(periods.size, np.int64), np.zeros(periods.size, np.int64)
            np.add.at(delta, at, np.concatenate(deltas))
            np.add.at(count, at, np.concatenate([c for _, _, c in parts]))
            apply(conn, dataset_id, profile_key, periods, delta, count)
        self._parts.clear()


def _write(
    conn: Connection,
    dataset_id: int,
    profile_key: int,
    days: np.ndarray,
    sums: np.ndarray,
    counts: np.ndarray,
) -> None:
    sum_bytes, count_bytes = sums.astype(_SUMS).tobytes(), counts.astype(_COUNTS).tobytes()
    sum_size, count_size = SLOTS * _SUMS.itemsize, SLOTS * _COUNTS.itemsize
    conn.executemany(
        _UPSERT,
        [
            (dataset_id, profile_key, day, sum_bytes[i * sum_size : (i + 1) * sum_size],
             count_bytes[i * count_size : (i + 1) * count_size])
            for i, day in enumerate(days.tolist())
        ],
    )  # fmt: skip


def query(conn: Connection, dataset_id: int, profile_ids: list[str], start: int, end: int) -> PeriodTotals:
    """Per-period sums and counts over the profiles, start <= period < end, empty periods left out."""
    first, last = start // DAY, (end - 1) // DAY
    rows = conn.execute(_QUERY, (dataset_id, json.dumps(profile_ids), first, last)).fetchall()
    days = np.array([r[0] for r in rows], np.int64)
    unique, row = np.unique(days, return_inverse=True)
    sums, counts = np.zeros((unique.size, SLOTS), np.int64), np.zeros((unique.size, SLOTS), np.int64)
    if rows:
        np.add.at(sums, row, np.frombuffer(b"".join(r[1] for r in rows), _SUMS).reshape(-1, SLOTS))
        all_counts = np.frombuffer(b"".join(r[2] for r in rows), _COUNTS).reshape(-1, SLOTS)
        np.add.at(counts, row, all_counts)
    periods = (unique[:, None] * DAY + np.arange(SLOTS) * HALF_HOUR).ravel()
    keep = (counts.ravel() > 0) & (periods >= start) & (periods < end)
    kwh = sums.ravel()[keep] / UNITS_PER_KWH
    return PeriodTotals(periods[keep], kwh, counts.ravel()[keep])


def newest_period(conn: Connection) -> int | None:
    """The start of the newest half-hour any profile holds a reading for (days with none are gone)."""
    rows = conn.execute(_NEWEST).fetchall()
    if not rows:
        return None
    counts = np.frombuffer(b"".join(r[1] for r in rows), _COUNTS).reshape(-1, SLOTS).sum(axis=0)
    return int(rows[0][0]) * DAY + int(np.flatnonzero(counts).max()) * HALF_HOUR

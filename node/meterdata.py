"""The bulk meter-data feed: many meters' readings per message, mapped to members by meter key.

A co-op's half-hourly data comes in bulk from its meter-data provider, keyed by meter. Each message
is checked whole as an upload is (`readings.validate_batch`), its meters looked up by their keyed
hash, and its members' readings stored in one transaction through the store's group commit.
Readings of meters no member holds are counted, never stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coopfed.node.errors import InvalidArgument
from coopfed.node.meters import meter_hash
from coopfed.node.metrics import Metrics
from coopfed.node.readings import BadReading, validate_batch
from coopfed.node.storage import PutResult, Store


@dataclass
class Imported:
    """What an import stored and what it left out, summed over its messages."""

    inserted: int = 0
    replaced: int = 0
    unmatched_readings: int = 0
    unmatched_meters: int = 0
    members: int = 0
    messages: int = 0

    def add(self, other: Imported) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class Message:
    """One message's rows, validated: by member, each member's periods sorted and unique."""

    dataset: str
    uploads: list[tuple[str, np.ndarray, np.ndarray]]  # member id, periods, kWh
    unmatched_readings: int
    unmatched_meters: int


@dataclass(frozen=True)
class MeterFeed:
    """The feed's collaborators: the store, the folder whose meter key hashes meter ids, the
    largest half-hour reading a meter can give, and the metrics that count stored readings."""

    store: Store
    base_dir: Path
    max_kwh: float
    metrics: Metrics


def check(
    feed: MeterFeed, index: int, dataset: str, meter_ids: Sequence[str], periods: np.ndarray, kwh: np.ndarray
) -> Message:
    """Validate message `index` and map its meters to members; InvalidArgument naming the row."""
    where = f"batches[{index}]"
    if len(meter_ids) != len(periods):
        raise InvalidArgument(
            f"{where}: {len(meter_ids)} meter ids but {len(periods)} periods",
            code="reading.length_mismatch",
            field=where,
        )
    validate_batch(index, dataset, periods, kwh, max_kwh=feed.max_kwh)
    # fixed-width strings, not a Python object per row: a message holds tens of thousands
    names, which = np.unique(np.asarray(meter_ids, dtype=str), return_inverse=True)
    hashes = [_hash(feed.base_dir, index, str(name), meter_ids) for name in names]
    holders = feed.store.meter_holders(hashes)
    owner = np.array([holders.get(h, "") for h in hashes], dtype=str)[which]
    matched = owner != ""
    order = np.lexsort((periods[matched], owner[matched]))
    rows = np.flatnonzero(matched)[order]
    by_member, at = np.unique(owner[rows], return_index=True)
    ends = [*at[1:], rows.size][: at.size]
    repeat = (owner[rows[1:]] == owner[rows[:-1]]) & (periods[rows[1:]] == periods[rows[:-1]])
    if repeat.any():
        row = int(min(rows[1:][repeat]))
        raise BadReading(
            index, "period_start_unix", row, int(periods[row]),
            f"appears more than once for meter {meter_ids[row]} in this message", "reading.duplicate",
        )  # fmt: skip
    uploads = [
        (str(m), periods[rows[s:e]], kwh[rows[s:e]]) for m, s, e in zip(by_member, at, ends, strict=True)
    ]
    unknown = {h for h in hashes if h not in holders}
    return Message(dataset, uploads, int((~matched).sum()), len(unknown))


def _hash(base_dir: Path, index: int, meter_id: str, meter_ids: Sequence[str]) -> bytes:
    try:
        hashed = meter_hash(base_dir, meter_id)
    except InvalidArgument:
        hashed = None
    if hashed is None:
        problem = "is not a meter id (an MPAN or a meter serial: letters, digits and '-')"
        row = list(meter_ids).index(meter_id)
        field = f"batches[{index}].meter_ids[{row}]"
        raise InvalidArgument(f"{field}: {meter_id!r} {problem}", code="reading.meter_id", field=field)
    return hashed


def store(feed: MeterFeed, message: Message) -> Imported:
    """Store one checked message in one transaction; members erased meanwhile count as unmatched."""
    results = feed.store.put_readings_of(
        [(member, [(message.dataset, p, k)]) for member, p, k in message.uploads]
    )
    done = Imported(
        unmatched_readings=message.unmatched_readings, unmatched_meters=message.unmatched_meters, messages=1
    )
    for (_, periods, _), result in zip(message.uploads, results, strict=True):
        if isinstance(result, PutResult):
            done.inserted += result.inserted
            done.replaced += result.replaced
            done.members += 1
        else:
            done.unmatched_readings += periods.size
            done.unmatched_meters += 1
    feed.metrics.stored(done.inserted + done.replaced)
    return done

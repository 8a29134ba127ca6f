"""Child process of the crash test: writes numbered uploads and reports each one acknowledged."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from coopfed.node.model import HALF_HOUR, ConsentLevel, ConsentSettings
from coopfed.node.storage import PostgresStore, SqliteStore, Store

T0 = 1_704_067_200  # 2024-01-01 00:00 UTC
MEMBERS = 4
PER_BATCH = 3_000


def upload(i: int) -> tuple[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    """Upload number i: its member, and two datasets over periods no other upload uses."""
    first = (i // MEMBERS) * PER_BATCH
    periods = T0 + HALF_HOUR * np.arange(first, first + PER_BATCH, dtype=np.int64)
    kwh = i + np.arange(PER_BATCH) / PER_BATCH
    return f"m{i % MEMBERS}", [("demand", periods, kwh), ("generation", periods, kwh * 2)]


def opened(target: str, synchronous: str = "FULL") -> Store:
    """The store at target: a PostgreSQL URL, or a SQLite file."""
    if target.startswith("postgresql://"):
        return PostgresStore(target)
    return SqliteStore(Path(target), synchronous=synchronous)  # type: ignore[arg-type]


def main(target: str, synchronous: str) -> None:
    with opened(target, synchronous) as store:
        for m in range(MEMBERS):
            store.create_member(f"m{m}", "x", ConsentSettings(level=ConsentLevel.GREEN), admitted_by="test")
        print("ready", flush=True)
        i = 0
        while True:
            member, batches = upload(i)
            store.put_readings(member, batches)
            print(i, flush=True)  # acknowledged only once put_readings has returned
            i += 1


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

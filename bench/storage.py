"""Storage throughput: put_readings against a plain executemany baseline, and profile totals."""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from coopfed.node.model import HALF_HOUR, ConsentLevel, ConsentSettings, Flow
from coopfed.node.storage import PostgresStore, SqliteStore, Store
from coopfed.node.storage.postgres import copy_data

_COPY_BARE = "COPY bench_readings FROM STDIN (FORMAT BINARY)"
START = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())


def make_profiles() -> list[ConsentSettings]:
    """Ten distinct consent profiles."""
    flows = sorted(Flow)
    amber = [
        ConsentSettings(level=ConsentLevel.AMBER, choices={"demand": frozenset(flows[:i])})
        for i in range(1, 6)
    ]
    return amber + [ConsentSettings(level=ConsentLevel.GREEN, persona=f"p{i}") for i in range(5)]


def workload(members: int, days: int, seed: int = 7) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    periods = START + HALF_HOUR * np.arange(days * 48, dtype=np.int64)
    return periods, [rng.gamma(2.0, 0.15, periods.size) for _ in range(members)]


def baseline(path: Path, sync: str, periods: np.ndarray, kwh: list[np.ndarray]) -> float:
    """Readings per second of plain executemany into a bare table, per-member transactions."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {sync}")
    conn.execute("CREATE TABLE readings (member INTEGER, dataset INTEGER, period INTEGER, kwh REAL)")
    plist = periods.tolist()
    began = time.perf_counter()
    for member, values in enumerate(kwh):
        conn.execute("BEGIN")
        rows = zip([member] * len(plist), [1] * len(plist), plist, values.tolist(), strict=True)
        conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - began
    conn.close()
    return len(kwh) * periods.size / elapsed


def ingest(store: Store, periods: np.ndarray, kwh: list[np.ndarray]) -> float:
    """Readings per second through put_readings, one call per member."""
    profiles = make_profiles()
    for member in range(len(kwh)):
        store.create_member(
            f"m{member}", f"Member {member}", profiles[member % len(profiles)], admitted_by="bench"
        )
    began = time.perf_counter()
    for member, values in enumerate(kwh):
        result = store.put_readings(f"m{member}", [("demand", periods, values)])
        assert result.inserted == periods.size
    return len(kwh) * periods.size / (time.perf_counter() - began)


def copy_baseline(url: str, periods: np.ndarray, kwh: list[np.ndarray]) -> float:
    """Readings per second of COPY alone into a bare table, per-member transactions."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_readings (period_start BIGINT, kwh DOUBLE PRECISION)")
        began = time.perf_counter()
        for values in kwh:
            with (
                conn.transaction(),
                conn.cursor().copy("COPY bench_readings FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.write(copy_data(periods, values))
        elapsed = time.perf_counter() - began
        conn.execute("DROP TABLE bench_readings")
    return len(kwh) * periods.size / elapsed


def postgresql(url: str, periods: np.ndarray, kwh: list[np.ndarray]) -> None:
    """put_readings on PostgreSQL (COPY, upsert, totals, one transaction) against COPY alone."""
    base = copy_baseline(url, periods, kwh)
    with PostgresStore(url) as store:
        ours = ingest(store, periods, kwh)
        fast = time_totals(store)[0]
    print(
        f"postgresql put_readings {ours:>10,.0f} readings/s | baseline COPY into a bare table "
        f"{base:>10,.0f}/s | ratio {ours / base:.2f}"
    )
    print(f"postgresql profile_totals, 1 year x 10 profiles: {fast * 1e3:.1f} ms")


def time_totals(store: Store, repeats: int = 5) -> tuple[float, float, int]:
    """Seconds for one year x 10 profiles from the totals, and from the raw readings."""
    year = START + HALF_HOUR * np.arange(365 * 48, dtype=np.int64)
    rng = np.random.default_rng(1)
    for i, settings in enumerate(make_profiles()):  # one year-long member per profile
        store.create_member(f"year{i}", "Year", settings, admitted_by="bench")
        store.put_readings(f"year{i}", [("demand", year, rng.gamma(2.0, 0.15, year.size))])
    ids = [p.profile_id for p in store.profiles()]
    end = int(year[-1]) + HALF_HOUR
    fast, slow = [], []
    for _ in range(repeats):
        began = time.perf_counter()
        totals = store.profile_totals(ids, "demand", START, end)
        fast.append(time.perf_counter() - began)
    if not isinstance(store, SqliteStore):
        return statistics.median(fast), 0.0, totals.period_start.size
    conn = sqlite3.connect(store.path)
    for _ in range(repeats):
        began = time.perf_counter()
        raw = conn.execute(
            "SELECT period_start, sum(kwh), count(*) FROM readings WHERE dataset_id = 1"
            " AND period_start >= ? AND period_start < ? GROUP BY period_start",
            (START, end),
        ).fetchall()
        slow.append(time.perf_counter() - began)
    conn.close()
    assert len(raw) == totals.period_start.size == year.size
    assert np.allclose([r[1] for r in raw], totals.kwh_sum)
    return statistics.median(fast), statistics.median(slow), totals.period_start.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs each")
    parser.add_argument("--postgresql", metavar="URL", help="also measure PostgreSQL, in this empty database")
    args = parser.parse_args()
    periods, kwh = workload(args.members, args.days)
    n = args.members * periods.size
    print(f"{n:,} readings: {args.members} members x {args.days} days x 48, one dataset")
    print(f"best of {args.repeats} runs, baseline and put_readings taking turns")
    for sync in ("NORMAL", "FULL"):
        base, ours = [], []
        for run in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:  # one run's files at a time on disk
                base.append(baseline(Path(tmp) / "base.db", sync, periods, kwh))
                with SqliteStore(Path(tmp) / "store.db", synchronous=sync) as store:
                    ours.append(ingest(store, periods, kwh))
                    if sync == "NORMAL" and run == 0:
                        fast, slow, rows = time_totals(store)
        print(
            f"synchronous={sync:<6} put_readings {max(ours):>10,.0f} readings/s | baseline "
            f"executemany into a bare table {max(base):>10,.0f}/s | ratio {max(ours) / max(base):.2f}"
        )
    print(
        f"profile_totals, 1 year x 10 profiles ({rows:,} periods): {fast * 1e3:.1f} ms | "
        f"same sums from raw readings {slow * 1e3:.1f} ms | ratio {slow / fast:.1f}x faster"
    )
    if args.postgresql:
        postgresql(args.postgresql, periods, kwh)


if __name__ == "__main__":
    main()

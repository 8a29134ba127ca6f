"""Ledger settlement: a month for 1,000 members against a plain SQL sum of the same readings.

Every member has a demand reading each half-hour (1,000 x 1,440 = 1.44 M readings for 30 days);
every third member also generates and exports (their generation and export readings come on
top). Target: settling the month takes under 10 s, and every period balances to the penny.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from coopfed.node.model import HALF_HOUR, ConsentSettings
from coopfed.node.runtime import init_node, open_node
from coopfed.node.services import books_of
from coopfed.node.settings import load_settings

START = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
TARGET_S = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    periods = START + HALF_HOUR * np.arange(args.days * 48, dtype=np.int64)
    end = int(periods[-1]) + HALF_HOUR
    with tempfile.TemporaryDirectory() as tmp:
        config = init_node(Path(tmp) / "coop", node_id="bench", name="Bench", listen="127.0.0.1:0")
        settings = load_settings(config, environ={"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL"})
        with open_node(settings) as node:
            readings = 0
            for i in range(args.members):
                member = f"m-{i:05d}"
                node.store.create_member(member, member, ConsentSettings(), admitted_by="bench")
                batches = [("demand", periods, rng.gamma(2.0, 0.15, periods.size))]
                if i % 3 == 0:
                    gen = np.clip(rng.normal(0.6, 0.4, periods.size), 0, None)
                    batches += [("generation", periods, gen), ("export", periods, gen * 0.7)]
                node.store.put_readings(member, batches)
                readings += sum(b[1].size for b in batches)
            db = settings.path(settings.storage.path)
            t0 = time.perf_counter()
            with sqlite3.connect(db) as conn:
                sums = conn.execute(
                    "SELECT dataset_id, sum(kwh) FROM readings WHERE period_start >= ? AND period_start < ? "
                    "GROUP BY dataset_id",
                    (START, end),
                ).fetchall()
            sql_s = time.perf_counter() - t0
            books = books_of(node)
            t0 = time.perf_counter()
            done = books.settle(START, end, now=end)
            settle_s = time.perf_counter() - t0
            ledger = books.ledger
            with sqlite3.connect(db) as conn:
                unbalanced_periods = conn.execute(
                    "SELECT count(*) FROM (SELECT t.period_start FROM ledger_transactions t LEFT JOIN "
                    "(SELECT txn_key, sum(local_bought + local_credit + grid_import + grid_export) AS pence "
                    "FROM ledger_lines GROUP BY txn_key) l USING (txn_key) GROUP BY t.period_start HAVING "
                    "sum(coalesce(l.pence, 0) + local_sales + local_payouts + grid_purchases + grid_sales))"
                ).fetchone()[0]
            unbalanced = len(ledger.unbalanced()) + unbalanced_periods
    kwh = {d: round(s) for d, s in sums}
    print(
        f"{args.members:,} members, {periods.size:,} half-hours, {readings:,} readings (kWh by dataset {kwh})"
    )
    print(f"plain SQL sum of the same readings: {sql_s:.3f} s")
    print(f"settlement: {settle_s:.2f} s ({done.settled:,} periods settled, {done.provisional} provisional)")
    print(f"settlement / SQL sum: {settle_s / sql_s:,.0f}x")
    print(f"periods out of balance: {unbalanced}")
    ok = settle_s < TARGET_S and unbalanced == 0 and done.settled == periods.size
    print(f"{'PASS' if ok else 'FAIL'}: settlement under {TARGET_S:.0f} s and every period balanced")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

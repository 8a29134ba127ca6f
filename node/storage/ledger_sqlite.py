"""SQLite backend of the ledger store, in the node's database beside the member store."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import numpy as np

from coopfed.node.storage.base import InvalidData
from coopfed.node.storage.connection import Connection
from coopfed.node.storage.governance import Events
from coopfed.node.storage.governance_sqlite import SqlGovernanceStore
from coopfed.node.storage.ledger import (
    COOP_KINDS,
    MEMBER_KINDS,
    JournalLine,
    LedgerStore,
    NewTransaction,
    PeriodReadings,
    PeriodState,
    Run,
)
from coopfed.node.storage.sql import SqlStore

_DATASETS = ("demand", "generation", "export")

_MEMBERS_WITH_READINGS = """SELECT m.member_key, m.member_id FROM members m
WHERE m.erased_at IS NULL AND EXISTS (SELECT 1 FROM readings r WHERE r.member_key = m.member_key
    AND r.dataset_id = ? AND r.period_start >= ? AND r.period_start < ?)"""
_READINGS = """SELECT period_start, kwh FROM readings
WHERE member_key = ? AND dataset_id = ? AND period_start >= ? AND period_start < ?"""
_STATES = """SELECT t.period_start, t.txn_key, t.status FROM ledger_transactions t
WHERE t.period_start >= ? AND t.period_start < ?
    AND t.txn_key = (SELECT max(txn_key) FROM ledger_transactions u WHERE u.period_start = t.period_start)"""
# A line's four accounts (MEMBER_KINDS order) in pence, then in Wh; the co-op side's likewise.
_JOURNAL = """SELECT * FROM (
    SELECT t.txn_key, 0 AS side, l.account_key, t.period_start, t.status, t.corrects, r.run_id,
        CASE WHEN a.anonymous = 1 THEN 'erased-' || a.account_key ELSE m.member_id END,
        local_bought, local_credit, grid_import, grid_export,
        local_bought_wh, local_credit_wh, grid_import_wh, grid_export_wh
    FROM ledger_transactions t JOIN ledger_runs r USING (run_key)
    JOIN ledger_lines l USING (txn_key) JOIN ledger_accounts a USING (account_key)
    LEFT JOIN members m ON m.member_key = a.member_key
    WHERE t.period_start >= :start AND t.period_start < :end
        AND (CAST(:member AS TEXT) IS NULL OR m.member_id = :member)
    UNION ALL
    SELECT t.txn_key, 1, 0, t.period_start, t.status, t.corrects, r.run_id, 'coop',
        local_sales, local_payouts, grid_purchases, grid_sales,
        local_sales_wh, local_payouts_wh, grid_purchases_wh, grid_sales_wh
    FROM ledger_transactions t JOIN ledger_runs r USING (run_key)
    WHERE t.period_start >= :start AND t.period_start < :end AND CAST(:member AS TEXT) IS NULL
) AS journal ORDER BY 1, 2, 3"""
_UNBALANCED = """SELECT t.txn_key FROM ledger_transactions t
LEFT JOIN (SELECT txn_key, sum(local_bought + local_credit + grid_import + grid_export) AS pence
    FROM ledger_lines WHERE txn_key >= :first GROUP BY txn_key) l USING (txn_key)
WHERE t.txn_key >= :first
    AND coalesce(l.pence, 0) + t.local_sales + t.local_payouts + t.grid_purchases + t.grid_sales != 0
ORDER BY t.txn_key"""
_POSTED_LINES = """SELECT t.period_start, l.account_key,
    sum(local_bought), sum(local_credit), sum(grid_import), sum(grid_export),
    sum(local_bought_wh), sum(local_credit_wh), sum(grid_import_wh), sum(grid_export_wh)
FROM ledger_transactions t JOIN ledger_lines l USING (txn_key)
WHERE t.period_start IN (SELECT CAST(value AS BIGINT) FROM json_each(?))
GROUP BY t.period_start, l.account_key"""
_POSTED_COOP = """SELECT period_start,
    sum(local_sales), sum(local_payouts), sum(grid_purchases), sum(grid_sales),
    sum(local_sales_wh), sum(local_payouts_wh), sum(grid_purchases_wh), sum(grid_sales_wh)
FROM ledger_transactions WHERE period_start IN (SELECT CAST(value AS BIGINT) FROM json_each(?))
GROUP BY period_start"""
_MEMBER_TOTALS = """SELECT sum(local_bought), sum(local_credit), sum(grid_import), sum(grid_export),
    sum(local_bought_wh), sum(local_credit_wh), sum(grid_import_wh), sum(grid_export_wh)
FROM ledger_transactions t JOIN ledger_lines l USING (txn_key)
JOIN ledger_accounts a USING (account_key) LEFT JOIN members m ON m.member_key = a.member_key
WHERE t.period_start >= ? AND t.period_start < ? AND (CAST(? AS TEXT) IS NULL OR m.member_id = ?)"""
_COOP_TOTALS = """SELECT sum(local_sales), sum(local_payouts), sum(grid_purchases), sum(grid_sales),
    sum(local_sales_wh), sum(local_payouts_wh), sum(grid_purchases_wh), sum(grid_sales_wh)
FROM ledger_transactions WHERE period_start >= ? AND period_start < ?"""
_INSERT_TRANSACTION = """INSERT INTO ledger_transactions (run_key, period_start, status, corrects, missing,
    local_sales, local_payouts, grid_purchases, grid_sales,
    local_sales_wh, local_payouts_wh, grid_purchases_wh, grid_sales_wh)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_INSERT_LINE = "INSERT INTO ledger_lines VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


class SqlLedgerStore(LedgerStore):
    """Ledger tables in the node's database beside the member store, on its connections."""

    def __init__(self, store: SqlStore, governance: SqlGovernanceStore | None = None) -> None:
        self._store = store
        # The node's own decision-log store, so a run's entries are chained onto the head it
        # signed and its next head is signed too; a fresh one (unsigned heads) for tools and tests.
        self._governance = governance or SqlGovernanceStore(store)

    def period_readings(self, start: int, end: int) -> PeriodReadings:
        periods = np.arange(start - start % 1800 + (1800 if start % 1800 else 0), end, 1800, dtype=np.int64)
        ids = [self._store._dataset_id(name) for name in _DATASETS]
        with self._store._read() as conn:
            conn.execute("BEGIN")  # one snapshot
            found: dict[int, str] = {}
            for dataset_id in ids:
                found |= dict(conn.execute(_MEMBERS_WITH_READINGS, (dataset_id, start, end)).fetchall())
            members = sorted(found.items(), key=lambda kv: kv[1])
            kwh = {name: np.full((len(members), periods.size), np.nan) for name in _DATASETS}
            for row, (member_key, _) in enumerate(members):
                for name, dataset_id in zip(_DATASETS, ids, strict=True):
                    got = conn.execute(_READINGS, (member_key, dataset_id, start, end)).fetchall()
                    if got:
                        at, values = np.array(got, np.float64).T
                        kwh[name][row, (at.astype(np.int64) - periods[0]) // 1800] = values
        return PeriodReadings(tuple(mid for _, mid in members), periods, kwh)

    def period_states(self, start: int, end: int) -> dict[int, PeriodState]:
        with self._store._read() as conn:
            rows = conn.execute(_STATES, (start, end)).fetchall()
        return {period: PeriodState(txn, status) for period, txn, status in rows}

    def posted(
        self, member_ids: Sequence[str], periods: Sequence[int]
    ) -> dict[int, dict[int, tuple[int, int]]]:
        out: dict[int, dict[int, tuple[int, int]]] = {int(p): {} for p in periods}
        if not out:
            return out
        wanted = json.dumps(list(out))
        with self._store._read() as conn:
            conn.execute("BEGIN")
            index = _account_index(conn, member_ids)
            lines = conn.execute(
                _POSTED_LINES,
                (wanted,),
            ).fetchall()
            coop = conn.execute(
                _POSTED_COOP,
                (wanted,),
            ).fetchall()
        for period, account_key, *sums in lines:
            if account_key in index:
                _add(out[period], 4 * index[account_key], sums)
        for period, *sums in coop:
            _add(out[period], 4 * len(member_ids), sums)
        return out

    def post(
        self, run: Run, member_ids: Sequence[str], transactions: Sequence[NewTransaction], log: Events
    ) -> int:
        for txn in transactions:
            if int(txn.pence.sum()) != 0:
                raise InvalidData(f"the transaction of period {txn.period_start} does not balance")
        n = len(member_ids)
        with self._governance._write() as conn:  # the decision log's transaction: its head moves too
            keys = _ensure_accounts(conn, member_ids)
            run_key = conn.execute(
                "INSERT INTO ledger_runs (run_id, at, period_start, period_end, decision_id, revision, "
                "terms_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run.run_id, run.at, run.period_start, run.period_end, run.decision_id, run.revision,
                 run.terms_json),
            ).lastrowid  # fmt: skip
            first = None
            for txn in transactions:
                members, coop = _wide(txn, n)
                txn_key = conn.execute(
                    _INSERT_TRANSACTION,
                    (run_key, txn.period_start, txn.status, txn.corrects, txn.missing, *coop.tolist()),
                ).lastrowid
                first = txn_key if first is None else first
                touched = np.flatnonzero(members.any(axis=1))
                rows = np.column_stack([np.full(touched.size, txn_key), keys[touched], members[touched]])
                conn.executemany(_INSERT_LINE, rows.tolist())
            # the deferred check: what was written balances, or the run is not committed
            if first is not None and conn.execute(_UNBALANCED, {"first": first}).fetchone():
                raise InvalidData("a transaction of the run does not balance as written")
            self._governance._append(conn, log)  # the run and its decision commit together
        return len(transactions)

    def journal(self, start: int, end: int, member_id: str | None = None) -> Iterator[JournalLine]:
        kinds = {0: MEMBER_KINDS, 1: COOP_KINDS}
        with self._store._read() as conn:
            conn.execute("BEGIN")
            cursor = conn.execute(_JOURNAL, {"start": start, "end": end, "member": member_id})
            while rows := cursor.fetchmany(5000):
                for txn, side, _, period, status, corrects, run_id, account, *amounts in rows:
                    for k, kind in enumerate(kinds[side]):
                        if amounts[k] or amounts[k + 4]:
                            yield JournalLine(
                                txn,
                                period,
                                status,
                                corrects,
                                run_id,
                                account,
                                kind,
                                amounts[k],
                                amounts[k + 4],
                            )

    def totals(self, start: int, end: int, member_id: str | None = None) -> dict[str, tuple[int, int]]:
        with self._store._read() as conn:
            conn.execute("BEGIN")
            mine = conn.execute(
                _MEMBER_TOTALS,
                (start, end, member_id, member_id),
            ).fetchone()
            coop = conn.execute(
                _COOP_TOTALS,
                (start, end),
            ).fetchone()
        out: dict[str, tuple[int, int]] = {}
        for kinds, sums in [(MEMBER_KINDS, mine), *([(COOP_KINDS, coop)] if member_id is None else [])]:
            for k, kind in enumerate(kinds):
                if sums[k] or sums[k + 4]:
                    out[kind] = (sums[k], sums[k + 4])
        return out

    def unbalanced(self) -> list[int]:
        with self._store._read() as conn:
            rows = conn.execute(_UNBALANCED, {"first": 0}).fetchall()
        return [txn for (txn,) in rows]

    def runs(self, limit: int = 20) -> list[Run]:
        with self._store._read() as conn:
            rows = conn.execute(
                "SELECT run_id, at, period_start, period_end, decision_id, revision, terms_json "
                "FROM ledger_runs ORDER BY run_key DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [Run(*row) for row in rows]


def _wide(txn: NewTransaction, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A transaction's postings as lines: (members x 8: four pence then four Wh), the co-op's 8."""
    wide = np.zeros((n + 1) * 8, np.int64)
    slot = txn.accounts // 4 * 8 + txn.accounts % 4  # account 4i + k -> row i, column k
    wide[slot] = txn.pence
    wide[slot + 4] = txn.wh
    rows = wide.reshape(n + 1, 8)
    return rows[:n], rows[n]


def _add(into: dict[int, tuple[int, int]], base: int, sums: Sequence[int]) -> None:
    """Sums of four pence and four Wh columns as accounts base..base+3, those not all zero."""
    for k in range(4):
        if sums[k] or sums[k + 4]:
            into[base + k] = (sums[k], sums[k + 4])


def _member_keys(conn: Connection, member_ids: Sequence[str]) -> list[int]:
    keys = dict(conn.execute("SELECT member_id, member_key FROM members WHERE erased_at IS NULL"))
    missing = [m for m in member_ids if m not in keys]
    if missing:
        raise InvalidData(f"no member {missing[0]!r} to post to (unknown or erased)")
    return [keys[m] for m in member_ids]


def _ensure_accounts(conn: Connection, member_ids: Sequence[str]) -> np.ndarray:
    """Each member's account key, in member_ids order, created where missing."""
    members = _member_keys(conn, member_ids)
    conn.executemany(
        "INSERT INTO ledger_accounts (member_key) VALUES (?) ON CONFLICT DO NOTHING", [(m,) for m in members]
    )
    index = {v: k for k, v in _account_index(conn, member_ids).items()}
    return np.array([index[i] for i in range(len(member_ids))], dtype=np.int64)


def _account_index(conn: Connection, member_ids: Sequence[str]) -> dict[int, int]:
    """account_key -> the member's row in member_ids, for the accounts that exist."""
    rows = {m: i for i, m in enumerate(member_ids)}
    return {
        key: rows[member_id]
        for key, member_id in conn.execute(
            "SELECT a.account_key, m.member_id FROM ledger_accounts a JOIN members m USING (member_key)"
        )
        if member_id in rows
    }


# The same ledger on either backend: it runs on the member store's connections.
SqliteLedgerStore = PostgresLedgerStore = SqlLedgerStore

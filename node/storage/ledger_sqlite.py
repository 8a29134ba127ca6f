"""SQLite backend of the ledger store, in the node's database beside the member store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence

import numpy as np

from coopfed.node.storage.base import InvalidData
from coopfed.node.storage.governance import Events
from coopfed.node.storage.governance_sqlite import SqliteGovernanceStore
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
from coopfed.node.storage.sqlite import SqliteStore

_DATASETS = ("demand", "generation", "export")
_READING = np.dtype([("member", "i8"), ("dataset", "i8"), ("period", "i8"), ("kwh", "f8")])

_MEMBERS_WITH_READINGS = """SELECT m.member_key, m.member_id FROM members m
WHERE m.erased_at IS NULL AND EXISTS (SELECT 1 FROM readings r WHERE r.member_key = m.member_key
    AND r.dataset_id = ? AND r.period_start >= ? AND r.period_start < ?)"""
_READINGS = """SELECT member_key, dataset_id, period_start, kwh FROM readings
WHERE member_key = ? AND dataset_id = ? AND period_start >= ? AND period_start < ?"""
_STATES = """SELECT t.period_start, t.txn_key, t.status FROM ledger_transactions t
WHERE t.period_start >= ? AND t.period_start < ?
    AND t.txn_key = (SELECT max(txn_key) FROM ledger_transactions u WHERE u.period_start = t.period_start)"""
_JOURNAL = """SELECT t.txn_key, t.period_start, t.status, t.corrects, r.run_id,
    CASE WHEN a.anonymous = 1 THEN 'erased-' || a.account_key
        WHEN a.member_key IS NULL THEN 'coop' ELSE m.member_id END,
    a.kind, p.pence, p.wh
FROM ledger_transactions t JOIN ledger_runs r USING (run_key)
JOIN ledger_postings p USING (txn_key) JOIN ledger_accounts a USING (account_key)
LEFT JOIN members m ON m.member_key = a.member_key
WHERE t.period_start >= ? AND t.period_start < ? AND (? IS NULL OR m.member_id = ?)
ORDER BY t.txn_key, a.account_key"""


class SqliteLedgerStore(LedgerStore):
    """Ledger tables in the node's SQLite file, sharing the node store's writer and readers."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._governance = SqliteGovernanceStore(store)

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
                    got = np.array(
                        conn.execute(_READINGS, (member_key, dataset_id, start, end)).fetchall(), _READING
                    )
                    kwh[name][row, (got["period"] - periods[0]) // 1800] = got["kwh"]
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
        with self._store._read() as conn:
            conn.execute("BEGIN")
            index = _account_index(conn, member_ids)
            rows = conn.execute(
                """SELECT t.period_start, p.account_key, sum(p.pence), sum(p.wh)
                FROM ledger_transactions t JOIN ledger_postings p USING (txn_key)
                WHERE t.period_start IN (SELECT value FROM json_each(?))
                GROUP BY t.period_start, p.account_key""",
                (json.dumps(list(out)),),
            ).fetchall()
        for period, account_key, pence, wh in rows:
            if account_key in index:
                out[period][index[account_key]] = (pence, wh)
        return out

    def post(
        self, run: Run, member_ids: Sequence[str], transactions: Sequence[NewTransaction], log: Events
    ) -> int:
        for txn in transactions:
            if int(txn.pence.sum()) != 0:
                raise InvalidData(f"the transaction of period {txn.period_start} does not balance")
        with self._store._write() as conn:
            keys = _ensure_accounts(conn, member_ids)
            run_key = conn.execute(
                "INSERT INTO ledger_runs (run_id, at, period_start, period_end, decision_id, revision, "
                "terms_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run.run_id, run.at, run.period_start, run.period_end, run.decision_id, run.revision,
                 run.terms_json),
            ).lastrowid  # fmt: skip
            for txn in transactions:
                txn_key = conn.execute(
                    "INSERT INTO ledger_transactions (run_key, period_start, status, corrects, missing) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (run_key, txn.period_start, txn.status, txn.corrects, txn.missing),
                ).lastrowid
                conn.executemany(
                    "INSERT INTO ledger_postings (txn_key, account_key, pence, wh) VALUES (?, ?, ?, ?)",
                    zip([txn_key] * txn.accounts.size, keys[txn.accounts].tolist(), txn.pence.tolist(),
                        txn.wh.tolist(), strict=True),
                )  # fmt: skip
            self._governance._append(conn, log)  # the run and its decision commit together
        return len(transactions)

    def journal(self, start: int, end: int, member_id: str | None = None) -> Iterator[JournalLine]:
        with self._store._read() as conn:
            conn.execute("BEGIN")
            cursor = conn.execute(_JOURNAL, (start, end, member_id, member_id))
            while rows := cursor.fetchmany(5000):
                yield from (JournalLine(*row) for row in rows)

    def totals(self, start: int, end: int, member_id: str | None = None) -> dict[str, tuple[int, int]]:
        with self._store._read() as conn:
            rows = conn.execute(
                """SELECT a.kind, sum(p.pence), sum(p.wh) FROM ledger_transactions t
                JOIN ledger_postings p USING (txn_key) JOIN ledger_accounts a USING (account_key)
                LEFT JOIN members m ON m.member_key = a.member_key
                WHERE t.period_start >= ? AND t.period_start < ? AND (? IS NULL OR m.member_id = ?)
                GROUP BY a.kind""",
                (start, end, member_id, member_id),
            ).fetchall()
        return {kind: (pence, wh) for kind, pence, wh in rows}

    def unbalanced(self) -> list[int]:
        with self._store._read() as conn:
            rows = conn.execute(
                "SELECT txn_key FROM ledger_postings GROUP BY txn_key HAVING sum(pence) != 0"
            ).fetchall()
        return [txn for (txn,) in rows]

    def runs(self, limit: int = 20) -> list[Run]:
        with self._store._read() as conn:
            rows = conn.execute(
                "SELECT run_id, at, period_start, period_end, decision_id, revision, terms_json "
                "FROM ledger_runs ORDER BY run_key DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [Run(*row) for row in rows]


def _member_keys(conn: sqlite3.Connection, member_ids: Sequence[str]) -> list[int]:
    keys = dict(conn.execute("SELECT member_id, member_key FROM members WHERE erased_at IS NULL"))
    missing = [m for m in member_ids if m not in keys]
    if missing:
        raise InvalidData(f"no member {missing[0]!r} to post to (unknown or erased)")
    return [keys[m] for m in member_ids]


def _ensure_accounts(conn: sqlite3.Connection, member_ids: Sequence[str]) -> np.ndarray:
    """Account keys in NewTransaction's numbering, created where missing."""
    members = _member_keys(conn, member_ids)
    conn.executemany(
        "INSERT OR IGNORE INTO ledger_accounts (member_key, kind) VALUES (?, ?)",
        [(m, k) for m in members for k in MEMBER_KINDS],
    )
    for kind in COOP_KINDS:
        if not conn.execute(
            "SELECT 1 FROM ledger_accounts WHERE kind = ? AND member_key IS NULL AND anonymous = 0", (kind,)
        ).fetchone():
            conn.execute("INSERT INTO ledger_accounts (kind) VALUES (?)", (kind,))
    index = {v: k for k, v in _account_index(conn, member_ids).items()}
    return np.array([index[i] for i in range(len(index))], dtype=np.int64)


def _account_index(conn: sqlite3.Connection, member_ids: Sequence[str]) -> dict[int, int]:
    """account_key -> NewTransaction's account number, for the accounts that exist."""
    rows = {m: i for i, m in enumerate(member_ids)}
    n = len(member_ids)
    index = {}
    for key, member_id, kind in conn.execute(
        "SELECT a.account_key, m.member_id, a.kind FROM ledger_accounts a "
        "LEFT JOIN members m ON m.member_key = a.member_key WHERE a.anonymous = 0"
    ):
        if member_id is None:
            index[key] = 4 * n + COOP_KINDS.index(kind)
        elif member_id in rows:
            index[key] = 4 * rows[member_id] + MEMBER_KINDS.index(kind)
    return index

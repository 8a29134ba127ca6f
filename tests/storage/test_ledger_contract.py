"""The contract every ledger backend keeps: readings per period, balanced append-only postings,
corrections summed with what they correct, erasure that anonymises and still balances."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from coopfed.node.model import ConsentSettings
from coopfed.node.storage import InvalidData, StorageError, Store
from coopfed.node.storage.ledger import LedgerStore, NewTransaction, Run

from .backends import BACKENDS, LEDGER_BACKENDS

T0 = 1704067200  # 2024-01-01T00:00:00Z


@pytest.fixture(params=sorted(LEDGER_BACKENDS))
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, LedgerStore]]:
    with BACKENDS[request.param](tmp_path) as store:
        for member in ("alice", "bob"):
            store.create_member(member, member, ConsentSettings(), admitted_by="test")
        yield store, LEDGER_BACKENDS[request.param](store)


def _run(n: int = 0) -> Run:
    return Run(f"run-{n}", "2024-02-01T00:00:00+00:00", T0, T0 + 3600, f"d-{n}", "rev", json.dumps({"n": n}))


def _txn(period: int, pence: list[int], corrects: int | None = None, status: str = "final") -> NewTransaction:
    # alice's local_bought, bob's local_credit, and the co-op's local_sales / local_payouts
    accounts = np.array([0, 5, 8, 9][: len(pence)], np.int64)
    return NewTransaction(
        period, status, corrects, 0, accounts, np.array(pence, np.int64), np.ones(len(pence), np.int64)
    )


def test_readings_come_per_member_and_period_with_gaps_as_nan(stores: tuple[Store, LedgerStore]) -> None:
    store, ledger = stores
    periods = T0 + 1800 * np.arange(3, dtype=np.int64)
    store.put_readings("alice", [("demand", periods[[0, 2]], np.array([1.5, 2.5]))])
    store.put_readings("bob", [("export", periods, np.array([0.1, 0.2, 0.3]))])
    got = ledger.period_readings(T0, T0 + 3 * 1800)
    assert got.member_ids == ("alice", "bob")
    assert got.periods.tolist() == periods.tolist()
    assert got.kwh["demand"][0].tolist()[::2] == [1.5, 2.5]
    assert np.isnan(got.kwh["demand"][0, 1])
    assert np.isnan(got.kwh["demand"][1]).all()
    assert got.kwh["export"][1].tolist() == [0.1, 0.2, 0.3]


def test_posted_transactions_sum_with_their_corrections(stores: tuple[Store, LedgerStore]) -> None:
    _, ledger = stores
    ledger.post(_run(0), ["alice", "bob"], [_txn(T0, [10, -10, -10, 10], status="provisional")], [])
    [(period, state)] = ledger.period_states(T0, T0 + 3600).items()
    assert (period, state.status) == (T0, "provisional")
    ledger.post(_run(1), ["alice", "bob"], [_txn(T0, [2, -2], corrects=state.latest)], [])
    assert ledger.period_states(T0, T0 + 3600)[T0].status == "final"
    assert ledger.posted(["alice", "bob"], [T0])[T0] == {0: (12, 2), 5: (-12, 2), 8: (-10, 1), 9: (10, 1)}
    lines = list(ledger.journal(T0, T0 + 3600, "alice"))
    assert [(line.pence, line.corrects) for line in lines] == [(10, None), (2, state.latest)]
    assert ledger.totals(T0, T0 + 3600, "alice") == {"local_bought": (12, 2)}
    assert ledger.unbalanced() == []
    assert [r.run_id for r in ledger.runs()] == ["run-1", "run-0"]


def test_an_unbalanced_transaction_writes_nothing(stores: tuple[Store, LedgerStore]) -> None:
    _, ledger = stores
    with pytest.raises(InvalidData, match="does not balance"):
        ledger.post(_run(), ["alice", "bob"], [_txn(T0, [10, -10]), _txn(T0 + 1800, [10, -9])], [])
    assert ledger.runs() == []
    assert ledger.period_states(T0, T0 + 3600) == {}


def test_history_cannot_be_edited(stores: tuple[Store, LedgerStore]) -> None:
    store, ledger = stores
    ledger.post(_run(), ["alice", "bob"], [_txn(T0, [10, -10])], [])
    for sql in ("UPDATE ledger_lines SET local_bought = 0", "DELETE FROM ledger_transactions"):
        with pytest.raises(StorageError, match="append-only"), store._write() as conn:  # type: ignore[attr-defined]
            conn.execute(sql)
    assert ledger.totals(T0, T0 + 3600)["local_bought"] == (10, 1)


def test_erasure_moves_entries_to_an_anonymous_account_and_still_balances(
    stores: tuple[Store, LedgerStore],
) -> None:
    store, ledger = stores
    ledger.post(_run(), ["alice", "bob"], [_txn(T0, [10, -10, -10, 10])], [])
    store.erase_member("bob")
    accounts = {line.account for line in ledger.journal(T0, T0 + 3600)}
    assert "bob" not in accounts
    assert "alice" in accounts
    assert "coop" in accounts
    [anonymous] = [a for a in accounts if a.startswith("erased-")]
    assert list(ledger.journal(T0, T0 + 3600, "bob")) == []
    assert ledger.totals(T0, T0 + 3600)["local_credit"] == (-10, 1)
    assert ledger.unbalanced() == []
    assert anonymous


def test_posting_to_an_erased_member_is_refused(stores: tuple[Store, LedgerStore]) -> None:
    store, ledger = stores
    store.erase_member("bob")
    with pytest.raises(InvalidData, match="bob"):
        ledger.post(_run(), ["alice", "bob"], [_txn(T0, [10, -10])], [])

"""Settlement runs on a real node: first settlement, late data, corrections, cut-off, erasure, the log."""

from __future__ import annotations

import json

import numpy as np

from coopfed.node.ledger.run import TERMS_CHANGED_PATH
from coopfed.node.ledger.terms import TERMS_PATH
from coopfed.node.policy import load_policies, make_engine
from coopfed.node.runtime import Node
from coopfed.node.services import books_of

from .conftest import DAY, PERIODS, T0, add_member


def _neighbourhood(node: Node) -> None:
    add_member(node, "ann", demand=1.0)
    add_member(node, "bea", demand=0.5)
    add_member(node, "sol", demand=0.2, generation=1.2, export=1.0)  # uses 0.2 of its own


def test_a_day_settles_in_balance_with_local_energy_first(node: Node) -> None:
    _neighbourhood(node)
    summary = books_of(node).settle(T0, T0 + DAY, now=T0 + DAY)
    assert (summary.settled, summary.corrected, summary.provisional, summary.members) == (48, 0, 0, 3)
    ledger = books_of(node).ledger
    # 1.0 kWh exported per half-hour, shared 2:1 between ann and bea; 0.5 kWh left to buy from the grid
    ann = ledger.totals(T0, T0 + DAY, "ann")
    assert ann["local_bought"][1] == 48 * 667
    assert ann["grid_import"][1] == 48 * 333
    assert ledger.totals(T0, T0 + DAY, "sol")["local_credit"] == (-48 * 18, 48 * 1000)  # 18p a kWh
    assert ledger.unbalanced() == []
    assert books_of(node).settle(T0, T0 + DAY, now=T0 + DAY).settled == 0  # nothing posted twice


def test_late_data_corrects_and_never_edits(node: Node) -> None:
    _neighbourhood(node)
    # bea's readings of two periods arrive late
    held = np.ones(PERIODS.size, bool)
    held[[10, 11]] = False
    node.store.create_member("eve", "eve", node.store.get_member("ann").settings, admitted_by="test")
    node.store.put_readings("eve", [("demand", PERIODS[held], np.full(int(held.sum()), 0.5))])
    first = books_of(node).settle(T0, T0 + DAY, now=T0 + DAY)
    assert (first.settled, first.provisional) == (48, 2)
    ledger = books_of(node).ledger
    before = list(ledger.journal(T0, T0 + DAY))
    node.store.put_readings("eve", [("demand", PERIODS[~held], np.array([0.5, 0.5]))])
    second = books_of(node).settle(T0, T0 + DAY, now=T0 + DAY)
    assert (second.settled, second.corrected, second.provisional) == (0, 2, 0)
    after = list(ledger.journal(T0, T0 + DAY))
    assert after[: len(before)] == before  # history untouched
    corrections = after[len(before) :]
    assert {line.corrects for line in corrections} <= {line.txn for line in before}
    assert {line.status for line in corrections} == {"final"}
    eve = ledger.totals(T0, T0 + DAY, "eve")
    assert eve["local_bought"][1] + eve["grid_import"][1] == 48 * 500  # every half-hour now
    assert ledger.unbalanced() == []


def test_the_cut_off_makes_a_period_final_without_its_data(node: Node) -> None:
    _neighbourhood(node)
    node.store.create_member("eve", "eve", node.store.get_member("ann").settings, admitted_by="test")
    node.store.put_readings("eve", [("demand", PERIODS[1:], np.full(47, 0.5))])
    assert books_of(node).settle(T0, T0 + DAY, now=T0 + DAY).provisional == 1
    assert books_of(node).settle(T0, T0 + DAY, now=T0 + 15 * DAY).provisional == 0
    [state] = [s for p, s in books_of(node).ledger.period_states(T0, T0 + DAY).items() if p == T0]
    assert state.status == "final"


def test_erasure_keeps_the_books_balanced(node: Node) -> None:
    _neighbourhood(node)
    books_of(node).settle(T0, T0 + DAY, now=T0 + DAY)
    ledger = books_of(node).ledger
    total = ledger.totals(T0, T0 + DAY)
    node.store.erase_member("sol")
    assert ledger.totals(T0, T0 + DAY) == total
    assert list(ledger.journal(T0, T0 + DAY, "sol")) == []
    assert any(line.account.startswith("erased-") for line in ledger.journal(T0, T0 + DAY))
    assert ledger.unbalanced() == []


def test_every_run_and_every_change_of_terms_is_in_the_decision_log(node: Node) -> None:
    _neighbourhood(node)
    first = books_of(node).settle(T0, T0 + DAY, now=T0 + DAY)
    entry = json.loads(node.governance.decision_entry(first.decision_id))
    assert entry["path"] == TERMS_PATH
    assert entry["revision"] == node.policy.revision
    assert entry["result"]["key"] == "pro_rata"
    assert entry["input"]["run_id"] == first.run_id
    assert not first.terms_changed
    folder = node.settings.path(node.settings.policy.dir)
    data = json.loads((folder / "data.json").read_text())
    data["ledger"]["prices_pence_per_kwh"]["local"] = 20
    (folder / "data.json").write_text(json.dumps(data))
    policies = load_policies(folder)
    node.policy.swap(make_engine("embedded", policies), policies)
    second = books_of(node).settle(T0, T0 + DAY, now=T0 + DAY)
    assert second.terms_changed
    assert second.revision != first.revision
    changes = [
        json.loads(e) for e in node.governance.decision_log() if json.loads(e)["path"] == TERMS_CHANGED_PATH
    ]
    [change] = changes
    assert change["result"]["before"]["prices_pence_per_kwh"]["local"] == "18"
    assert change["result"]["after"]["prices_pence_per_kwh"]["local"] == "20"
    assert change["result"]["before_revision"] == first.revision
    assert change["revision"] == second.revision


def test_a_run_moves_the_signed_head_so_the_node_keeps_logging_onto_it(node: Node) -> None:
    _neighbourhood(node)
    before = node.governance.signed_head()
    books_of(node).settle(T0, T0 + DAY, now=T0 + DAY)
    assert node.governance.signed_head() not in ("", before)  # the run's entries are under a signed head
    event = {"decision_id": "after-run", "path": "p", "input": {}, "result": {}, "timestamp": "t"}
    [logged] = node.governance.append_decisions([event])  # not refused as a head changed behind its back
    assert logged["decision_id"] == "after-run"

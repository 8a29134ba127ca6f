"""A settlement run: ask the policy for the terms, settle every period, post what changed, log it.

Re-settling never edits history. A period not settled before gets its settlement; a
provisional one whose figures or status changed gets a correction: the difference between the
new figures and everything posted for it so far, naming the transaction it corrects. A final
period is closed. The run, its transactions and its decision-log entries (the run's terms with
their policy revision, and a change of prices or key against the previous run) commit together.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from coopfed.node.decisionlog import DecisionLog
from coopfed.node.errors import FailedPrecondition, InvalidArgument
from coopfed.node.ledger.settle import PeriodResult, energy, settle, status
from coopfed.node.ledger.terms import TERMS_PATH, Terms
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.storage import Store
from coopfed.node.storage.governance import GovernanceStore
from coopfed.node.storage.governance_sqlite import SqlGovernanceStore
from coopfed.node.storage.ledger import LedgerStore, NewTransaction, PeriodState, Run
from coopfed.node.storage.ledger_sqlite import SqlLedgerStore
from coopfed.node.storage.sql import SqlStore

TERMS_CHANGED_PATH = "coopfed/ledger/terms_changed"


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    decision_id: str
    revision: str
    terms: Terms
    periods: int
    settled: int  # periods settled for the first time
    corrected: int  # corrections posted
    provisional: int  # periods still provisional after the run
    members: int
    terms_changed: bool


def ledger_of(store: Store, governance: GovernanceStore | None) -> LedgerStore:
    """The ledger beside the node's store (and its decision log, where given)."""
    if not isinstance(store, SqlStore):
        raise FailedPrecondition("the ledger needs the SQLite or PostgreSQL store", code="ledger.store")
    return SqlLedgerStore(store, governance if isinstance(governance, SqlGovernanceStore) else None)


def decide_terms(
    policy: PolicyHolder, start: int, end: int
) -> tuple[Terms, dict[str, Any], dict[str, Any], str]:
    """(terms, policy input, result, revision): one decision for the run's span."""
    query = {"period_start": start, "period_end": end}
    result, revision = policy.decide(TERMS_PATH, query)
    return Terms.from_decision(result), query, result, revision


def settle_span(
    ledger: LedgerStore,
    policy: PolicyHolder,
    decision_log: DecisionLog,
    start: int,
    end: int,
    *,
    now: int | None = None,
) -> RunSummary:
    """Settle the periods in [start, end) (unix seconds on the half hour)."""
    if start % 1800 or end % 1800 or end <= start:
        raise InvalidArgument(
            "a settlement run covers whole half-hours, ending after it starts", code="ledger.span"
        )
    now = int(datetime.now(UTC).timestamp()) if now is None else now
    terms, query, result, revision = decide_terms(policy, start, end)
    found = energy(ledger.period_readings(start, end))
    states = ledger.period_states(start, end)
    open_periods = [p for p, s in states.items() if s.status == "provisional"]
    posted = ledger.posted(found.member_ids, open_periods)
    transactions = [
        txn
        for result_ in settle(found, terms)
        if (txn := _transaction(result_, states.get(result_.period_start), posted, now, terms)) is not None
    ]
    previous = ledger.runs(limit=1)
    changed = bool(previous) and json.loads(previous[0].terms_json) != terms.public()
    at = datetime.now(UTC).isoformat(timespec="microseconds")
    run = Run(str(uuid.uuid4()), at, start, end, "", revision, terms.to_json())
    events = _events(decision_log, run, query, result, revision, terms, previous[0] if changed else None)
    run = replace(run, decision_id=events[0]["decision_id"])
    ledger.post(run, found.member_ids, transactions, events)
    still = sum(1 for s in ledger.period_states(start, end).values() if s.status == "provisional")
    return RunSummary(
        run.run_id, run.decision_id, revision, terms, int(found.periods.size),
        sum(1 for t in transactions if t.corrects is None),
        sum(1 for t in transactions if t.corrects is not None), still, len(found.member_ids), changed,
    )  # fmt: skip


def _transaction(
    result: PeriodResult,
    state: PeriodState | None,
    posted: dict[int, dict[int, tuple[int, int]]],
    now: int,
    terms: Terms,
) -> NewTransaction | None:
    """What to post for one period: its settlement, a correction, or nothing."""
    new_status = status(result.period_start, result.missing, now, terms.cutoff_days)
    pence, wh = result.pence.copy(), result.wh.copy()
    if state is not None:
        if state.status == "final":
            return None
        for account, (p, w) in posted.get(result.period_start, {}).items():
            pence[account] -= p
            wh[account] -= w
    changed = np.flatnonzero((pence != 0) | (wh != 0))
    if state is not None and changed.size == 0 and new_status == state.status:
        return None
    return NewTransaction(
        result.period_start, new_status, None if state is None else state.latest, result.missing,
        changed.astype(np.int64), pence[changed], wh[changed],
    )  # fmt: skip


def _events(
    decision_log: DecisionLog,
    run: Run,
    query: dict[str, Any],
    result: dict[str, Any],
    revision: str,
    terms: Terms,
    previous: Run | None,
) -> list[dict[str, Any]]:
    events = [decision_log.event(TERMS_PATH, {**query, "run_id": run.run_id}, result, revision)]
    if previous is not None:
        change = {"before": json.loads(previous.terms_json), "after": terms.public(),
                  "before_revision": previous.revision}  # fmt: skip
        events.append(decision_log.event(TERMS_CHANGED_PATH, {"run_id": run.run_id}, change, revision))
    return events

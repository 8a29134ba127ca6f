"""The co-op's books on one node: settlement runs, statements and the journal, and who may read
which: a member their own statement, the board any statement and the journal."""

from __future__ import annotations

from itertools import islice

from coopfed.node.auth import Principal
from coopfed.node.decisionlog import DecisionLog
from coopfed.node.errors import PermissionDenied
from coopfed.node.ledger.run import RunSummary, decide_terms, ledger_of, settle_span
from coopfed.node.ledger.statement import Statement, statement
from coopfed.node.paging import Page
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.storage import Store
from coopfed.node.storage.governance import GovernanceStore
from coopfed.node.storage.ledger import JournalLine

BOARD = "board"
MAX_PAGE = 10_000
DEFAULT_PAGE = 1_000


def board_only(who: Principal, what: str) -> None:
    if who.kind != BOARD:
        raise PermissionDenied(f"only the board may {what}", code="ledger.board_only")


class Books:
    """The ledger beside the node's store, settled on the terms the policy in force decides."""

    def __init__(
        self,
        *,
        store: Store,
        governance: GovernanceStore | None,
        policy: PolicyHolder,
        decision_log: DecisionLog,
    ) -> None:
        self.store, self.policy, self.decision_log = store, policy, decision_log
        self.ledger = ledger_of(store, governance)

    def settle(self, start: int, end: int, *, now: int | None = None) -> RunSummary:
        return settle_span(self.ledger, self.policy, self.decision_log, start, end, now=now)

    def statement(self, start: int, end: int, member_id: str = "") -> Statement:
        """The member's statement, or the co-op's (member_id empty)."""
        if member_id:
            self.store.get_member(member_id)  # NotFound in plain words
        terms = decide_terms(self.policy, start, end)[0]
        return statement(self.ledger, start, end, member_id or None, terms)

    def statement_for(self, who: Principal, member_id: str, start: int, end: int) -> Statement:
        """A member's own statement; the board's choice of member, or the co-op's (member_id empty)."""
        if who.kind != BOARD:
            if member_id and member_id != who.id:
                raise PermissionDenied("a member may see only their own statement", code="ledger.not_owner")
            member_id = who.id
        return self.statement(start, end, member_id)

    def journal_page(self, start: int, end: int, member_id: str, page: Page) -> tuple[list[JournalLine], str]:
        """One page of postings and the token of the next ('' after the last). The journal is
        append-only and read in posting order, so a token (the postings already read) stays valid."""
        if member_id:
            self.store.get_member(member_id)
        (offset,) = page.after or (0,)
        lines = list(islice(self.ledger.journal(start, end, member_id or None), offset, offset + page.fetch))
        return page.cut(lines, lambda _: (offset + page.size,))

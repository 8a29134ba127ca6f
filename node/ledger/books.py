"""Who may read which books: a member their own statement, the board any statement and the journal."""

from __future__ import annotations

from itertools import islice

from coopfed.node.auth import Principal
from coopfed.node.errors import PermissionDenied
from coopfed.node.ledger.run import decide_terms, ledger_of
from coopfed.node.ledger.statement import Statement, statement
from coopfed.node.paging import Page
from coopfed.node.runtime import Node
from coopfed.node.storage.ledger import JournalLine

BOARD = "board"
MAX_PAGE = 10_000
DEFAULT_PAGE = 1_000


def board_only(who: Principal, what: str) -> None:
    if who.kind != BOARD:
        raise PermissionDenied(f"only the board may {what}", code="ledger.board_only")


def statement_for(node: Node, who: Principal, member_id: str, start: int, end: int) -> Statement:
    """A member's own statement; the board's choice of member, or the co-op's (member_id empty)."""
    if who.kind != BOARD:
        if member_id and member_id != who.id:
            raise PermissionDenied("a member may see only their own statement", code="ledger.not_owner")
        member_id = who.id
    if member_id:
        node.store.get_member(member_id)  # NotFound in plain words
    terms = decide_terms(node, start, end)[0]
    return statement(ledger_of(node), start, end, member_id or None, terms)


def journal_page(
    node: Node, start: int, end: int, member_id: str, page: Page
) -> tuple[list[JournalLine], str]:
    """One page of postings and the token of the next ('' after the last). The journal is
    append-only and read in posting order, so a token (the postings already read) stays valid."""
    if member_id:
        node.store.get_member(member_id)
    (offset,) = page.after or (0,)
    lines = list(islice(ledger_of(node).journal(start, end, member_id or None), offset, offset + page.fetch))
    return page.cut(lines, lambda _: (offset + page.size,))

"""The demo's ledger: settle each co-op's weeks, print its totals and one member's statement."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console

from coopfed.node.ledger.books import Books
from coopfed.node.ledger.money import kwh_text, pounds
from coopfed.node.ledger.statement import statement


def show_ledger(coops: Sequence[tuple[str, Books]], start: int, end: int, console: Console) -> None:
    """Settle [start, end) on every co-op's node (id, books); the co-op's totals and its first
    member's statement."""
    console.print("\n[bold]Local energy ledger[/bold]")
    for node_id, books in coops:
        done = books.settle(start, end)
        coop = statement(books.ledger, start, end, None, done.terms)
        console.print(
            f"  {node_id}: {done.settled:,} half-hours settled for {done.members} members "
            f"(shared {done.terms.key_title}); {kwh_text(coop.local_bought_wh)} traded locally for "
            f"{pounds(coop.local_bought_pence)}, {coop.coop_local_share:.0%} of demand met locally",
            markup=False,
        )
    node_id, books = coops[0]
    member = next(
        (line.account for line in books.ledger.journal(start, end) if line.kind == "local_credit"), None
    )
    if member is None:
        return
    mine = books.statement(start, end, member)
    console.print(f"  statement of {node_id} member {member}:", markup=False)
    for label, text in mine.lines().items():
        console.print(f"    {label}: {text}", markup=False)
